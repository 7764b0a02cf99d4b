//! `--alarm-socket`: other programs raise alarms by name (the standalone `uwsgi.alarm()`).
//!
//! Role: [`AlarmSocket`] owns one bound unix datagram socket; each datagram is `NAME MESSAGE`
//! ([`split_raise`]) and raises alarm NAME with MESSAGE. A client that bound an address
//! (`logalarm raise`, see `raise.rs`) gets an answer: `ok`, or why not.
//! Invariants: one datagram raises at most one alarm; an unknown name or a malformed datagram is
//! reported and answered, never fatal.
//! Who may raise: the socket is created mode 0600 (under a umask of 0177, so there is no moment
//! when it is open to others): logalarm's own user and root. A path where a live socket answers
//! (another logalarm) is refused at start-up; a stale socket file is replaced. At exit the file
//! is removed only if it is still the socket this instance bound (same device and inode), so an
//! instance never deletes another's socket.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use crate::dispatch::Dispatcher;
use crate::report::report;

/// A bound `--alarm-socket`.
#[derive(Debug)]
pub(crate) struct AlarmSocket {
    path: PathBuf,
    sock: UnixDatagram,
    buf: Vec<u8>,
    /// (device, inode) of the socket file this instance created: removed at exit only if the
    /// path still names it.
    file: (u64, u64),
    /// `logalarm reload` clients waiting for the reload's outcome.
    reloads: Vec<std::os::unix::net::SocketAddr>,
}

/// The datagram of `logalarm reload` (a NUL cannot start an alarm name).
pub(crate) const RELOAD: &[u8] = b"\0reload";

impl AlarmSocket {
    /// Bind `path`, mode 0600. A stale socket file of an earlier run is replaced; a socket
    /// that answers is another instance's, and an error. The socket is non-blocking.
    pub(crate) fn bind(path: &Path) -> io::Result<AlarmSocket> {
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
            let probe = UnixDatagram::unbound()?;
            if probe.connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "a live socket is there (another logalarm?): choose another path, or stop it",
                ));
            }
            let _ = std::fs::remove_file(path);
        }
        let sock = crate::sys::with_umask(0o177, || UnixDatagram::bind(path))?;
        sock.set_nonblocking(true)?;
        let meta = std::fs::symlink_metadata(path)?;
        Ok(AlarmSocket {
            path: path.to_path_buf(),
            sock,
            buf: vec![0u8; 65536],
            file: (meta.dev(), meta.ino()),
            reloads: Vec::new(),
        })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Raise the alarm of every queued datagram (`names`: alarm name → rank).
    pub(crate) fn serve(&mut self, names: &HashMap<String, u32>, dispatcher: &mut Dispatcher) {
        loop {
            match self.sock.recv_from(&mut self.buf) {
                Ok((n, from)) => {
                    if &self.buf[..n] == RELOAD {
                        // Done by the reactor after this turn; answered then.
                        self.reloads.push(from);
                        continue;
                    }
                    let answer = match split_raise(&self.buf[..n]) {
                        Some((name, msg)) => match names.get(name) {
                            Some(&rank) => {
                                dispatcher.raise(rank, msg);
                                "ok\n".to_string()
                            }
                            None => format!("unknown alarm \"{}\"\n", name.escape_debug()),
                        },
                        None => "not \"NAME MESSAGE\"\n".to_string(),
                    };
                    if answer != "ok\n" {
                        report!(
                            Alarm,
                            "alarm-socket {}: {}",
                            self.path.display(),
                            answer.trim_end()
                        );
                    }
                    // A client that bound an address (logalarm raise) gets the answer.
                    if !from.is_unnamed() {
                        let _ = self.sock.send_to_addr(answer.as_bytes(), &from);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    report!(Alarm, "alarm-socket {}: {e}", self.path.display());
                    break;
                }
            }
        }
        dispatcher.flush();
    }
}

impl AlarmSocket {
    /// Whether a `logalarm reload` is waiting.
    pub(crate) fn reload_wanted(&self) -> bool {
        !self.reloads.is_empty()
    }

    /// Tell every waiting `logalarm reload` client what the reload did.
    pub(crate) fn answer_reloads(&mut self, said: &str) {
        for from in self.reloads.drain(..) {
            if !from.is_unnamed() {
                let _ = self
                    .sock
                    .send_to_addr(format!("{said}\n").as_bytes(), &from);
            }
        }
    }
}

impl Drop for AlarmSocket {
    fn drop(&mut self) {
        let ours =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.file);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Split an `--alarm-socket` datagram `NAME MESSAGE`.
pub fn split_raise(d: &[u8]) -> Option<(&str, &[u8])> {
    let sp = memchr::memchr(b' ', d);
    let (name, msg) = match sp {
        Some(i) => (&d[..i], &d[i + 1..]),
        None => (d, &d[d.len()..]),
    };
    let name = std::str::from_utf8(name).ok()?.trim();
    (!name.is_empty()).then_some((name, msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raise_datagrams() {
        assert_eq!(
            split_raise(b"disk full now"),
            Some(("disk", &b"full now"[..]))
        );
        assert_eq!(split_raise(b"disk"), Some(("disk", &b""[..])));
        assert_eq!(split_raise(b" "), None);
        assert_eq!(split_raise(b"\xff x"), None);
    }
}
