//! Monitors other than log lines, and the inputs that are not plain streams 
//!
//! Role: the state machines the reactor drives — `alarm-fd` watches ([`FdWatch`]), listen-queue
//! watches for `alarm-backlog` ([`Backlog`]), followed files for `--tail` ([`Tail`]), and the
//! parsing of `--udp` and `--watch-socket` addresses and `--alarm-socket` datagrams. They do no
//! polling of their own: the reactor calls them when a descriptor is readable or a timer is due.
//! Invariants: nothing here blocks (descriptors are non-blocking; a tail reads what is there);
//! every failure is one `[uwsgi-alarm...]` line and never stops logalarm.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::RawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::config::AlarmFdDef;
use crate::sys;

/// One watched descriptor and the `alarm-fd` entries on it.
#[derive(Debug)]
pub struct FdWatch {
    pub fd: RawFd,
    /// Bytes that make one event.
    want: usize,
    have: usize,
    /// (alarm rank, message) of every entry on this descriptor.
    pub entries: Vec<(u32, String)>,
}

/// What a readable `alarm-fd` descriptor gave.
#[derive(Debug, PartialEq, Eq)]
pub enum FdEvent {
    /// This many complete events (each raises every entry's alarm); still watched.
    Events(usize),
    /// End of file or a read error: reported, no longer watched; raise once more.
    Closed(String),
}

impl FdWatch {
    /// Group `alarm-fd` entries by descriptor (in first-seen order). `rank` maps alarm names.
    pub fn group(defs: &[AlarmFdDef], rank: impl Fn(&str) -> u32) -> Result<Vec<FdWatch>, String> {
        let mut out: Vec<FdWatch> = Vec::new();
        for d in defs {
            if let Some(w) = out.iter_mut().find(|w| w.fd == d.fd) {
                w.entries.push((rank(&d.name), d.message.clone()));
                continue;
            }
            if !sys::fd_is_open(d.fd) {
                return Err(format!(
                    "invalid alarm-fd: {} {}: descriptor {} is not open (it must be inherited, e.g. `logalarm ... {}<file`)",
                    d.name, d.fd, d.fd, d.fd
                ));
            }
            let eventfd = sys::fd_target(d.fd).contains("eventfd");
            let want = d.bytes.unwrap_or(if eventfd { 8 } else { 1 });
            out.push(FdWatch {
                fd: d.fd,
                want,
                have: 0,
                entries: vec![(rank(&d.name), d.message.clone())],
            });
        }
        Ok(out)
    }

    /// Read what is there without blocking, accumulating short reads into events of
    /// `want` bytes (the bytes are discarded).
    pub fn on_readable(&mut self) -> FdEvent {
        let mut scratch = [0u8; 4096];
        let mut events = 0;
        loop {
            let room = (self.want - self.have).min(scratch.len());
            match sys::read_fd(self.fd, &mut scratch[..room]) {
                Ok(0) => {
                    return FdEvent::Closed(format!(
                        "[uwsgi-alarm-fd] fd {}: end of file: no longer watched",
                        self.fd
                    ))
                }
                Ok(n) => {
                    self.have += n;
                    if self.have >= self.want {
                        self.have = 0;
                        events += 1;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return FdEvent::Events(events),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return FdEvent::Closed(format!(
                        "[uwsgi-alarm-fd] fd {}: read error: {e}: no longer watched",
                        self.fd
                    ))
                }
            }
        }
    }
}

/// A `--watch-socket` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watched {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// Parse `host:port`, `[v6]:port` or a unix socket path (anything with a `/`).
pub fn parse_watch(s: &str) -> Result<Watched, String> {
    if s.contains('/') {
        return Ok(Watched::Unix(PathBuf::from(s)));
    }
    resolve(s).map(Watched::Tcp)
}

/// Resolve `host:port` / `[v6]:port` / `:port` (all addresses) to one socket address.
pub fn resolve(s: &str) -> Result<SocketAddr, String> {
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_string()
    };
    full.to_socket_addrs()
        .map_err(|e| format!("`{s}` is not HOST:PORT, [IPv6]:PORT or a unix socket path: {e}"))?
        .next()
        .ok_or_else(|| format!("`{s}` resolves to no address"))
}

/// One `--watch-socket` and whether it was full at the last check.
#[derive(Debug)]
pub struct Backlog {
    pub shown: String,
    pub what: Watched,
    /// Reported a lookup failure already (reported once until it works again).
    failed: bool,
}

impl Backlog {
    pub fn new(shown: &str, what: Watched) -> Backlog {
        Backlog {
            shown: shown.to_string(),
            what,
            failed: false,
        }
    }

    /// Check the queue. `Some((queue, max))` when it is full (`queue > 0 && queue >= max`).
    pub fn check(&mut self) -> Option<(u32, u32)> {
        let got = match &self.what {
            Watched::Tcp(a) => sys::tcp_listen_queue(*a),
            Watched::Unix(p) => sys::unix_listen_queue(p),
        };
        match got {
            Ok(Some(q)) => {
                self.failed = false;
                (q.queue > 0 && q.queue >= q.max).then_some((q.queue, q.max))
            }
            Ok(None) => {
                if !self.failed {
                    eprintln!(
                        "[uwsgi-alarm] watch-socket {}: no listening socket there (yet)",
                        self.shown
                    );
                    self.failed = true;
                }
                None
            }
            Err(e) => {
                if !self.failed {
                    eprintln!("[uwsgi-alarm] watch-socket {}: sock_diag: {e}", self.shown);
                    self.failed = true;
                }
                None
            }
        }
    }

    /// The uWSGI log line and the alarm message for a full queue.
    pub fn texts(&self, queue: u32, max: u32) -> (String, String) {
        let msg = format!(
            "listen queue of socket \"{}\" (fd: -1) full !!! ({queue}/{max})",
            self.shown
        );
        let line = format!("{} - *** uWSGI {msg} ***\n", sys::ctime_now());
        (line, msg)
    }
}

/// A `--tail` file: followed across rename-and-recreate rotation and truncation.
#[derive(Debug)]
pub struct Tail {
    pub path: PathBuf,
    file: Option<File>,
    inode: u64,
    offset: u64,
    /// Reported that the file is missing (once until it appears).
    missing: bool,
}

impl Tail {
    /// Open `path`, at its end unless `from_start`. A missing file is waited for.
    pub fn open(path: &Path, from_start: bool) -> Tail {
        let mut t = Tail {
            path: path.to_path_buf(),
            file: None,
            inode: 0,
            offset: 0,
            missing: false,
        };
        t.reopen(!from_start);
        t
    }

    fn reopen(&mut self, at_end: bool) {
        match File::open(&self.path) {
            Ok(mut f) => {
                let meta = f.metadata().ok();
                self.inode = meta.as_ref().map_or(0, |m| m.ino());
                self.offset = if at_end {
                    f.seek(SeekFrom::End(0)).unwrap_or(0)
                } else {
                    0
                };
                self.file = Some(f);
                self.missing = false;
            }
            Err(e) => {
                if !self.missing {
                    eprintln!(
                        "[uwsgi-alarm] tail {}: {e}: waiting for it",
                        self.path.display()
                    );
                    self.missing = true;
                }
                self.file = None;
            }
        }
    }

    /// Read what is new into `buf` (up to its length). `Ok(0)`: nothing new now. Handles
    /// truncation (start again from 0) and rotation (finish the old file, then follow the new
    /// one from its start).
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.file.is_none() {
            self.reopen(false);
        }
        let Some(f) = self.file.as_mut() else {
            return Ok(0);
        };
        let n = loop {
            match f.read(buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if n > 0 {
            self.offset += n as u64;
            return Ok(n);
        }
        // At the end of what we have open: truncated, or replaced?
        match std::fs::metadata(&self.path) {
            Ok(m) if m.ino() != self.inode => {
                eprintln!(
                    "[uwsgi-alarm] tail {}: rotated, following the new file",
                    self.path.display()
                );
                self.reopen(false);
            }
            Ok(m) if m.len() < self.offset => {
                eprintln!(
                    "[uwsgi-alarm] tail {}: truncated, reading from its start",
                    self.path.display()
                );
                self.offset = f.seek(SeekFrom::Start(0))?;
            }
            Ok(_) => {}
            Err(_) => {
                // Renamed away and not yet recreated: keep the old one; check again later.
            }
        }
        Ok(0)
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
        assert_eq!(resolve(":9000").unwrap(), "0.0.0.0:9000".parse().unwrap());
    }

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

    #[test]
    fn tail_follows_truncation_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        std::fs::write(&p, "old\n").unwrap();
        let mut t = Tail::open(&p, false);
        let mut buf = [0u8; 64];
        assert_eq!(t.read(&mut buf).unwrap(), 0, "starts at the end");
        std::fs::write(&p, "a\n").unwrap(); // truncated to 2 bytes (< offset 4)
        assert_eq!(t.read(&mut buf).unwrap(), 0);
        let n = t.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"a\n");
        std::fs::rename(&p, dir.path().join("app.log.1")).unwrap();
        std::fs::write(&p, "new\n").unwrap();
        assert_eq!(t.read(&mut buf).unwrap(), 0);
        let n = t.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"new\n");
    }
}
