//! The control socket of a running `synguard run` (`paths::control_socket`, one per instance,
//! all served by its process): `synguard reload` asks through it and gets the outcome back
//! (applied, refused with the reason, or applied except what needs a restart). One line each
//! way: the request word, then the reply as JSON. Owner of that format, both ends.

use std::{
    io::{self, BufRead as _, BufReader, Write as _},
    os::unix::{fs::MetadataExt as _, net::UnixStream as StdStream},
    path::{Path, PathBuf},
    time::Duration,
};

use log::{debug, warn};
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _},
    net::{UnixListener, UnixStream},
    sync::mpsc,
    task::JoinHandle,
};

use crate::{
    host::io::{PathError, io_err},
    state::paths::{self, Key},
};

/// The request `synguard reload` sends.
pub const RELOAD: &str = "reload";
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// What came of a reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The new configuration is in effect.
    Applied,
    /// Nothing changed; `message` says why.
    Refused,
    /// Applied, except the settings in `restart`, which keep their running value.
    NeedsRestart,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub pid: u32,
    pub outcome: Outcome,
    pub message: String,
    #[serde(default)]
    pub restart: Vec<String>,
}

impl Reply {
    /// The answer to a request this process does not know.
    pub fn unknown(request: &str) -> Reply {
        Reply {
            pid: std::process::id(),
            outcome: Outcome::Refused,
            message: format!("unknown request {request:?}"),
            restart: Vec::new(),
        }
    }
}

/// The sockets of one process, and the requests arriving on them.
pub struct Control {
    /// Each socket's path and inode: removed at exit only if still ours (a successor may have
    /// bound its own meanwhile).
    sockets: Vec<(PathBuf, u64)>,
    tasks: Vec<JoinHandle<()>>,
    /// Clients whose request line has arrived, with it.
    requests: mpsc::Receiver<(UnixStream, String)>,
}

impl Control {
    /// Binds a socket for every instance, replacing what a dead process left.
    pub fn bind(run_dir: &Path, keys: &[Key]) -> Result<Control, PathError> {
        let (tx, requests) = mpsc::channel(4);
        let mut control = Control {
            sockets: Vec::new(),
            tasks: Vec::new(),
            requests,
        };
        for key in keys {
            let path = paths::control_socket(run_dir, key);
            // A socket file of a dead process refuses connections; ours replaces it.
            let _ = std::fs::remove_file(&path);
            let listener = UnixListener::bind(&path).map_err(io_err("cannot bind", &path))?;
            let ino = std::fs::metadata(&path)
                .map_err(io_err("cannot stat", &path))?
                .ino();
            control.sockets.push((path, ino));
            let tx = tx.clone();
            control.tasks.push(tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    // Each request is read in a task of its own, not in `next`: the daemon's
                    // loop awaits `next` in a `select!`, which drops what it awaits whenever
                    // another branch (a tick) is ready first, and a client whose request was
                    // still on its way had its connection closed unanswered.
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        if let Some(request) = request_of(stream).await {
                            let _ = tx.send(request).await;
                        }
                    });
                }
            }));
        }
        Ok(control)
    }

    /// The next client, with its request; pending forever without sockets. Cancel-safe (a
    /// channel's `recv`): a `select!` may drop it and call it again without losing a client.
    pub async fn next(&mut self) -> (UnixStream, String) {
        match self.requests.recv().await {
            Some(request) => request,
            None => std::future::pending().await,
        }
    }
}

/// A client's request line, read within [`REQUEST_TIMEOUT`]; None (and the connection closed)
/// when it sends none.
async fn request_of(mut stream: UnixStream) -> Option<(UnixStream, String)> {
    match tokio::time::timeout(REQUEST_TIMEOUT, read_line(&mut stream)).await {
        Ok(Ok(line)) => Some((stream, line)),
        Ok(Err(e)) => {
            debug!("control request: {e}");
            None
        }
        Err(_) => {
            debug!("control client sent nothing");
            None
        }
    }
}

async fn read_line(stream: &mut UnixStream) -> io::Result<String> {
    let mut line = String::new();
    tokio::io::BufReader::new(stream)
        .read_line(&mut line)
        .await?;
    Ok(line.trim().to_string())
}

/// Sends the reply; a client that left is not an error worth more than a debug line.
pub async fn answer(mut stream: UnixStream, reply: &Reply) {
    let text = serde_json::to_string(reply).expect("reply serialises") + "\n";
    if let Err(e) = stream.write_all(text.as_bytes()).await {
        debug!("control reply: {e}");
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
        for (path, ino) in &self.sockets {
            if std::fs::metadata(path).is_ok_and(|m| m.ino() == *ino)
                && let Err(e) = std::fs::remove_file(path)
            {
                warn!("cannot remove {}: {e}", path.display());
            }
        }
    }
}

/// The client side: sends `request` on the socket at `path` and waits at most `timeout` for the
/// reply.
pub fn ask(path: &Path, request: &str, timeout: Duration) -> io::Result<Reply> {
    let mut stream = StdStream::connect(path)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(format!("{request}\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    if line.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the daemon closed the connection without an answer",
        ));
    }
    serde_json::from_str(&line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run directory of its own (`name`), with one instance's socket bound: (directory,
    /// control, socket path).
    fn bound(name: &str, instance: u32) -> (PathBuf, Control, PathBuf) {
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let key = Key::scoped(1, "eth0", instance);
        std::fs::create_dir_all(paths::netns_dir(&dir, 1)).unwrap();
        let control = Control::bind(&dir, std::slice::from_ref(&key)).unwrap();
        let path = paths::control_socket(&dir, &key);
        (dir, control, path)
    }

    #[tokio::test]
    async fn a_request_gets_its_reply_and_the_socket_goes_at_exit() {
        let (dir, mut control, path) = bound("sg-control", 2);
        let client = {
            let path = path.clone();
            std::thread::spawn(move || ask(&path, RELOAD, Duration::from_secs(5)))
        };
        let (stream, request) = control.next().await;
        assert_eq!(request, RELOAD);
        let reply = Reply {
            pid: 7,
            outcome: Outcome::Refused,
            message: "ports: 70000 is not a port".into(),
            restart: vec![],
        };
        answer(stream, &reply).await;
        assert_eq!(client.join().unwrap().unwrap(), reply);
        drop(control);
        assert!(!path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// As the daemon's loop awaits `next`: in a `select!` beside a timer that fires many times
    /// while a slow client is still writing its request. The client gets its answer.
    #[tokio::test]
    async fn a_slow_client_is_answered_while_other_branches_fire() {
        let (dir, mut control, path) = bound("sg-control-slow", 3);
        let client = std::thread::spawn(move || {
            let mut s = StdStream::connect(&path)?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            std::thread::sleep(Duration::from_millis(300));
            s.write_all(format!("{RELOAD}\n").as_bytes())?;
            let mut line = String::new();
            BufReader::new(s).read_line(&mut line)?;
            io::Result::Ok(line)
        });
        let mut ticks = 0;
        let serve = async {
            loop {
                tokio::select! {
                    got = control.next() => break got,
                    _ = tokio::time::sleep(Duration::from_millis(10)) => ticks += 1,
                }
            }
        };
        let (stream, request) = tokio::time::timeout(Duration::from_secs(5), serve)
            .await
            .expect("the request was lost while the timer fired");
        assert!(
            ticks >= 10,
            "the timer fired {ticks} times while the client wrote"
        );
        assert_eq!(request, RELOAD);
        answer(stream, &Reply::unknown("x")).await;
        let line = client.join().unwrap().unwrap();
        assert!(line.contains("\"outcome\":\"refused\""), "{line}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
