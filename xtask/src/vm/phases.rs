//! How long each phase took, printed as it ends and summed up at the end.

use std::time::{Duration, Instant};

pub struct Phases {
    start: Instant,
    current: Option<(String, Instant)>,
    done: Vec<(String, Duration)>,
}

impl Phases {
    pub fn new() -> Phases {
        Phases {
            start: Instant::now(),
            current: None,
            done: Vec::new(),
        }
    }

    /// Ends the current phase (if any) and starts `name`.
    pub fn begin(&mut self, name: &str) {
        self.end();
        eprintln!("vm: == {name}");
        self.current = Some((name.to_string(), Instant::now()));
    }

    pub fn end(&mut self) {
        if let Some((name, t)) = self.current.take() {
            let d = t.elapsed();
            eprintln!("vm: == {name}: {:.1} s", d.as_secs_f64());
            self.done.push((name, d));
        }
    }

    /// The table of phases and the total.
    pub fn summary(&mut self) -> String {
        self.end();
        let mut s = String::from("phase timings:\n");
        for (name, d) in &self.done {
            s += &format!("  {name:<44} {:>7.1} s\n", d.as_secs_f64());
        }
        s += &format!(
            "  {:<44} {:>7.1} s\n",
            "total",
            self.start.elapsed().as_secs_f64()
        );
        s
    }
}
