//! `--alarm-socket`: other programs raise alarms by name (the standalone `uwsgi.alarm()`).
//!
//! Role: [`AlarmSocket`] owns one bound unix datagram socket; each datagram is `NAME MESSAGE`
//! ([`split_raise`]) and raises alarm NAME with MESSAGE. A client that bound an address
//! (`logalarm raise`, see `raise.rs`) gets an answer: `ok`, or why not.
//! Invariants: one datagram raises at most one alarm; an unknown name or a malformed datagram is
//! reported and answered, never fatal; the socket file is removed when the socket is dropped.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileTypeExt;
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
}

impl AlarmSocket {
    /// Bind `path` (a stale socket file of an earlier run is replaced; a live one makes the
    /// bind fail). The socket is non-blocking.
    pub(crate) fn bind(path: &Path) -> io::Result<AlarmSocket> {
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
            let _ = std::fs::remove_file(path);
        }
        let sock = UnixDatagram::bind(path)?;
        sock.set_nonblocking(true)?;
        Ok(AlarmSocket {
            path: path.to_path_buf(),
            sock,
            buf: vec![0u8; 65536],
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

impl Drop for AlarmSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
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
