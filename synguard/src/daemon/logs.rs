//! The XDP programs' own log records (aya-log ring buffers), forwarded to `log`.

use std::{io, task::Poll};

use anyhow::Context as _;
use tokio::io::unix::AsyncFd;

use crate::datapath::load::ProgramLogger;

/// Waits until one of the programs' log ring buffers has records and forwards them to `log`;
/// never returns when there are none, so `select!` simply ignores it.
pub async fn forward(loggers: &mut [AsyncFd<ProgramLogger>]) -> io::Result<()> {
    if loggers.is_empty() {
        return std::future::pending().await;
    }
    std::future::poll_fn(|cx| {
        for fd in loggers.iter_mut() {
            match fd.poll_read_ready_mut(cx) {
                Poll::Ready(Ok(mut guard)) => {
                    guard.get_inner_mut().flush();
                    guard.clear_ready();
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        Poll::Pending
    })
    .await
}

/// Drains what the programs logged last, before the ring buffers go away.
pub fn flush(loggers: &mut [AsyncFd<ProgramLogger>]) {
    for fd in loggers.iter_mut() {
        fd.get_mut().flush();
    }
}

pub fn watch(logger: ProgramLogger) -> anyhow::Result<AsyncFd<ProgramLogger>> {
    // SAFETY: the logger owns its ring buffer's fd; it stays open and unchanged until the
    // AsyncFd (which owns the logger) is dropped.
    unsafe { AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
        .context("cannot watch the XDP program's log buffer")
}
