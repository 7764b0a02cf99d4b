//! `alarm-backlog`: a listening socket's accept queue is full.
//!
//! Role: [`Backlog`] checks one `--watch-socket` (TCP address or unix path, any process's socket,
//! through `sys::sock_diag`) when the reactor's timer says so, and gives the uWSGI log line and
//! the alarm message for a full queue.
//! Invariants: a lookup failure is reported once until a lookup works again; "full" is uWSGI's
//! test, `queue > 0 && queue >= max`.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::report::report;
use crate::source::udp::{resolve, AddrError};
use crate::sys;

/// A `--watch-socket` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Watched {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// Parse `host:port`, `[v6]:port` or a unix socket path (anything with a `/`).
pub(crate) fn parse_watch(s: &str) -> Result<Watched, AddrError> {
    if s.contains('/') {
        return Ok(Watched::Unix(PathBuf::from(s)));
    }
    resolve(s).map(Watched::Tcp)
}

/// One `--watch-socket` and whether it was full at the last check.
#[derive(Debug)]
pub(crate) struct Backlog {
    shown: String,
    what: Watched,
    /// Reported a lookup failure already (reported once until it works again).
    failed: bool,
}

impl Backlog {
    pub(crate) fn new(shown: &str, what: Watched) -> Backlog {
        Backlog {
            shown: shown.to_string(),
            what,
            failed: false,
        }
    }

    /// Check the queue. `Some((queue, max))` when it is full (`queue > 0 && queue >= max`).
    pub(crate) fn check(&mut self) -> Option<(u32, u32)> {
        let got = match &self.what {
            Watched::Tcp(a) => sys::sock_diag::tcp_listen_queue(*a),
            Watched::Unix(p) => sys::sock_diag::unix_listen_queue(p),
        };
        match got {
            Ok(Some(q)) => {
                self.failed = false;
                (q.queue > 0 && q.queue >= q.max).then_some((q.queue, q.max))
            }
            Ok(None) => {
                if !self.failed {
                    report!(
                        Alarm,
                        "watch-socket {}: no listening socket there (yet)",
                        self.shown
                    );
                    self.failed = true;
                }
                None
            }
            Err(e) => {
                if !self.failed {
                    report!(Alarm, "watch-socket {}: sock_diag: {e}", self.shown);
                    self.failed = true;
                }
                None
            }
        }
    }

    /// The uWSGI log line and the alarm message for a full queue.
    pub(crate) fn texts(&self, queue: u32, max: u32) -> (String, String) {
        let msg = format!(
            "listen queue of socket \"{}\" (fd: -1) full !!! ({queue}/{max})",
            self.shown
        );
        let line = format!("{} - *** uWSGI {msg} ***\n", sys::time::ctime_now());
        (line, msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_addresses() {
        assert_eq!(
            parse_watch("127.0.0.1:80").unwrap(),
            Watched::Tcp("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(
            parse_watch("[::1]:8080").unwrap(),
            Watched::Tcp("[::1]:8080".parse().unwrap())
        );
        assert_eq!(
            parse_watch("/run/app.sock").unwrap(),
            Watched::Unix("/run/app.sock".into())
        );
        assert!(parse_watch("nonsense").is_err());
    }
}
