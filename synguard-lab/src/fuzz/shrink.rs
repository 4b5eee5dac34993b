//! Shrinking a violating frame while it still violates.

use anyhow::Result;

use super::{Fuzzer, generate};

impl Fuzzer {
    /// Whether `frame` (split after `first` bytes while it is longer) still violates.
    fn violates(&mut self, frame: &[u8], first: Option<u32>) -> Result<bool> {
        let first = first.filter(|&n| (n as usize) < frame.len());
        Ok(self.one(frame, first)?.0.is_err())
    }

    /// Shrinks a violating frame: cuts the tail while it still violates, then zeroes each byte
    /// that can be zeroed.
    pub(super) fn minimise(&mut self, frame: &[u8], first: Option<u32>) -> Result<Vec<u8>> {
        let mut f = frame.to_vec();
        if f.is_empty() || !self.violates(&f, first)? {
            return Ok(f);
        }
        let mut step = f.len() / 2;
        while step > 0 {
            while f.len() >= generate::MIN_FRAME + step
                && self.violates(&f[..f.len() - step], first)?
            {
                f.truncate(f.len() - step);
            }
            step /= 2;
        }
        for i in 0..f.len() {
            if f[i] != 0 {
                let mut g = f.clone();
                g[i] = 0;
                if self.violates(&g, first)? {
                    f = g;
                }
            }
        }
        Ok(f)
    }
}
