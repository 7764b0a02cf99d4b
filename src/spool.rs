//! The on-disk queue of a `spool` alarm: what waits for delivery survives an endpoint outage
//! and a restart of logalarm.
//!
//! Role: one directory per alarm under `--alarm-spool DIR` (`DIR/NAME`, the name escaped),
//! holding segment files of records and a cursor. [`Spool::push`] appends (the alarm's lane),
//! [`Spool::peek`] / [`Spool::ack`] read oldest first (the alarm's delivery thread): delivered
//! at least once — a crash between a delivery and its acknowledgement delivers that one again.
//!
//! Format: a segment `NNNNNNNNNNNNNNNNNNNN.seg` is a sequence of records `len: u32 LE,
//! unix_ms: u64 LE, check: u32 LE (FNV-1a of the message), message`; segments roll at
//! [`SEGMENT`] bytes and are deleted once read. `cursor` holds "SEGMENT OFFSET" of the next
//! record to deliver, replaced atomically (write, fsync, rename). A record cut short by a
//! crash, or whose check fails, ends its segment: what follows is skipped, counted, reported.
//!
//! Invariants: the spool holds at most `max_size` bytes (a record that would pass it is refused:
//! the caller counts it dropped); records older than `max_age` are skipped at delivery and
//! counted; one process owns a spool directory (`flock` on `DIR/NAME/lock`): a second logalarm
//! on the same directory is refused at start-up; files are created 0600 in a 0700 directory.
//! Rejected alternatives: one file per alarm (thousands of files in a storm); an embedded
//! database (a dependency and a format for an append-only log read once).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A segment is closed once it reaches this size.
const SEGMENT: u64 = 1 << 20;
/// Record header: length, time, check.
const HEADER: usize = 16;
/// Longest message a record holds (messages are cut to `alarm-msg-size`, at most 16 MiB).
const MAX_RECORD: usize = 16 << 20;

/// One spooled alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub msg: Vec<u8>,
    pub at: SystemTime,
}

/// What [`Spool::open`] found and [`Spool::peek`] skipped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Skipped {
    /// Older than `max_age`.
    pub expired: u64,
    /// Bytes of a damaged segment tail (a crash mid-write, a corrupted file).
    pub damaged_bytes: u64,
}

#[derive(Debug)]
struct State {
    /// Segment ids on disk, oldest first (the last one is written).
    segments: VecDeque<u64>,
    write: Option<File>,
    write_len: u64,
    /// Where the next record to deliver starts.
    read_seg: u64,
    read_off: u64,
    read: Option<(u64, File)>,
    /// Bytes of the segments on disk.
    bytes: u64,
    /// Records not yet acknowledged.
    pending: u64,
    /// The record `peek` returned: its size, to be acknowledged.
    peeked: Option<u64>,
    skipped: Skipped,
}

/// One alarm's spool.
#[derive(Debug)]
pub(crate) struct Spool {
    dir: PathBuf,
    max_size: u64,
    max_age: Duration,
    state: Mutex<State>,
    _lock: File,
}

/// `name` as a file name: letters, digits, `-`, `_` and `.` (not leading) kept, the rest as
/// `%XX`.
pub(crate) fn escape(name: &str) -> String {
    let mut s = String::new();
    for (i, b) in name.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0);
        if keep {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

fn check(msg: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in msg {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

fn seg_name(id: u64) -> String {
    format!("{id:020}.seg")
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn open_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Read one record at the file's position: `Ok(None)` at a clean end, `Err` for a damaged one.
fn read_record(f: &mut File) -> io::Result<Option<Record>> {
    let mut head = [0u8; HEADER];
    let mut got = 0;
    while got < HEADER {
        match f.read(&mut head[got..])? {
            0 if got == 0 => return Ok(None),
            0 => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "cut short")),
            n => got += n,
        }
    }
    let field = |r: std::ops::Range<usize>| {
        let mut b = [0u8; 8];
        b[..r.len()].copy_from_slice(&head[r]);
        u64::from_le_bytes(b)
    };
    let len = field(0..4) as usize;
    let ms = field(4..12);
    let sum = field(12..16) as u32;
    if len > MAX_RECORD {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "bad length"));
    }
    let mut msg = vec![0u8; len];
    f.read_exact(&mut msg)?;
    if check(&msg) != sum {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "bad check"));
    }
    Ok(Some(Record {
        msg,
        at: UNIX_EPOCH + Duration::from_millis(ms),
    }))
}

impl Spool {
    /// Open (or create) the spool of alarm `name` under `root`.
    pub(crate) fn open(
        root: &Path,
        name: &str,
        max_size: u64,
        max_age: Duration,
    ) -> io::Result<Spool> {
        let dir = root.join(escape(name));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        let lock = open_new(&dir.join("lock"))?;
        // A process being started by this one (a `cmd:` alarm, a daemon) holds a copy of
        // every descriptor between its fork and its exec, so a lock just released by this
        // process can look held for a moment: a few tries over ~100 ms before "in use".
        let mut tries = 0;
        // SAFETY: flock on a descriptor we own.
        while unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            tries += 1;
            if e.kind() == io::ErrorKind::WouldBlock && tries < 10 {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            return Err(if e.kind() == io::ErrorKind::WouldBlock {
                io::Error::new(
                    e.kind(),
                    format!("{} is in use by another logalarm", dir.display()),
                )
            } else {
                e
            });
        }
        let mut ids: Vec<u64> = Vec::new();
        for e in std::fs::read_dir(&dir)? {
            let name = e?.file_name();
            let name = name.to_string_lossy();
            if let Some(id) = name.strip_suffix(".seg").and_then(|n| n.parse().ok()) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        let (mut read_seg, mut read_off) = std::fs::read_to_string(dir.join("cursor"))
            .ok()
            .and_then(|c| {
                let mut it = c.split_whitespace().map(|n| n.parse::<u64>().ok());
                Some((it.next()??, it.next()??))
            })
            .unwrap_or((0, 0));
        // Segments before the cursor were delivered (a crash before their deletion).
        for &id in ids.iter().filter(|&&id| id < read_seg) {
            let _ = std::fs::remove_file(dir.join(seg_name(id)));
        }
        ids.retain(|&id| id >= read_seg);
        if ids.first().is_some_and(|&id| id > read_seg) || ids.is_empty() {
            read_seg = ids.first().copied().unwrap_or(read_seg);
            read_off = 0;
        }
        let mut st = State {
            segments: ids.into_iter().collect(),
            write: None,
            write_len: 0,
            read_seg,
            read_off,
            read: None,
            bytes: 0,
            pending: 0,
            peeked: None,
            skipped: Skipped::default(),
        };
        // Count what waits, and cut a damaged tail off the last segment (it is appended to).
        let last = st.segments.back().copied();
        for &id in &st.segments {
            let path = dir.join(seg_name(id));
            let mut f = File::open(&path)?;
            let size = f.metadata()?.len();
            st.bytes += size;
            let mut pos = 0;
            if id == read_seg {
                pos = read_off.min(size);
                f.seek(SeekFrom::Start(pos))?;
            }
            loop {
                match read_record(&mut f) {
                    Ok(Some(r)) => {
                        st.pending += 1;
                        pos += (HEADER + r.msg.len()) as u64;
                    }
                    Ok(None) => break,
                    Err(_) => {
                        st.skipped.damaged_bytes += size - pos;
                        if Some(id) == last {
                            OpenOptions::new().write(true).open(&path)?.set_len(pos)?;
                            st.bytes -= size - pos;
                        }
                        break;
                    }
                }
            }
        }
        Ok(Spool {
            dir,
            max_size,
            max_age,
            state: Mutex::new(st),
            _lock: lock,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records waiting.
    pub(crate) fn pending(&self) -> u64 {
        self.lock().pending
    }

    /// What was skipped since the last call (expired records, damaged bytes).
    pub(crate) fn take_skipped(&self) -> Skipped {
        std::mem::take(&mut self.lock().skipped)
    }

    /// The spool's directory (for reports).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Append `msg` raised at `at`. `Ok(false)`: the spool is full (`max_size`).
    pub(crate) fn push(&self, msg: &[u8], at: SystemTime) -> io::Result<bool> {
        let msg = &msg[..msg.len().min(MAX_RECORD)];
        let mut st = self.lock();
        let size = (HEADER + msg.len()) as u64;
        if st.bytes + size > self.max_size {
            return Ok(false);
        }
        if st.write.is_none() || st.write_len >= SEGMENT {
            let id = st.segments.back().map_or(st.read_seg, |&l| {
                if st.write.is_none() && st.write_len == 0 {
                    // After open: append to the last segment unless it is full.
                    l
                } else {
                    l + 1
                }
            });
            let id = match std::fs::metadata(self.dir.join(seg_name(id))) {
                Ok(m) if m.len() >= SEGMENT => id + 1,
                _ => id,
            };
            let f = open_new(&self.dir.join(seg_name(id)))?;
            st.write_len = f.metadata()?.len();
            if st.segments.back() != Some(&id) {
                st.segments.push_back(id);
            }
            st.write = Some(f);
        }
        let mut rec = Vec::with_capacity(size as usize);
        rec.extend_from_slice(&(msg.len() as u32).to_le_bytes());
        rec.extend_from_slice(&unix_ms(at).to_le_bytes());
        rec.extend_from_slice(&check(msg).to_le_bytes());
        rec.extend_from_slice(msg);
        if let Some(f) = st.write.as_mut() {
            f.write_all(&rec)?;
        }
        st.write_len += size;
        st.bytes += size;
        st.pending += 1;
        Ok(true)
    }

    /// The oldest record not yet acknowledged, skipping (and counting) expired ones and
    /// damaged segment tails. The same record until [`Spool::ack`].
    pub(crate) fn peek(&self) -> io::Result<Option<Record>> {
        let mut st = self.lock();
        loop {
            if st.pending == 0 {
                return Ok(None);
            }
            let seg = st.read_seg;
            if st.read.as_ref().is_none_or(|(id, _)| *id != seg) {
                match File::open(self.dir.join(seg_name(seg))) {
                    Ok(f) => st.read = Some((seg, f)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        self.next_segment(&mut st)?;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let off = st.read_off;
            let writing = st.segments.back() == Some(&seg);
            let Some((_, f)) = st.read.as_mut() else {
                continue;
            };
            f.seek(SeekFrom::Start(off))?;
            let got = read_record(f);
            let size = f.metadata().map_or(off, |m| m.len());
            match got {
                Ok(Some(r)) => {
                    let size = (HEADER + r.msg.len()) as u64;
                    let age = SystemTime::now()
                        .duration_since(r.at)
                        .unwrap_or(Duration::ZERO);
                    if age > self.max_age {
                        st.skipped.expired += 1;
                        self.advance(&mut st, size)?;
                        continue;
                    }
                    st.peeked = Some(size);
                    return Ok(Some(r));
                }
                Ok(None) if writing => {
                    // The segment being written: nothing more yet.
                    st.pending = 0;
                    return Ok(None);
                }
                Ok(None) => self.next_segment(&mut st)?,
                Err(_) => {
                    st.skipped.damaged_bytes += size.saturating_sub(off);
                    self.next_segment(&mut st)?;
                }
            }
        }
    }

    /// The record [`Spool::peek`] returned was delivered (or given up): never again.
    pub(crate) fn ack(&self) -> io::Result<()> {
        let mut st = self.lock();
        if let Some(size) = st.peeked.take() {
            self.advance(&mut st, size)?;
        }
        Ok(())
    }

    fn advance(&self, st: &mut State, size: u64) -> io::Result<()> {
        st.read_off += size;
        st.pending = st.pending.saturating_sub(1);
        st.peeked = None;
        self.save_cursor(st)
    }

    /// Done with the segment being read: delete it and go to the next one.
    fn next_segment(&self, st: &mut State) -> io::Result<()> {
        let done = st.read_seg;
        if st.segments.back() == Some(&done) {
            // The segment being written: a new one is started for the next record.
            st.write = None;
            st.write_len = 0;
            st.segments.push_back(done + 1);
        }
        let path = self.dir.join(seg_name(done));
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        let _ = std::fs::remove_file(&path);
        st.bytes = st.bytes.saturating_sub(size);
        st.segments.retain(|&id| id != done);
        st.read = None;
        st.read_seg = st.segments.front().copied().unwrap_or(done + 1);
        st.read_off = 0;
        self.save_cursor(st)
    }

    fn save_cursor(&self, st: &State) -> io::Result<()> {
        let tmp = self.dir.join("cursor.tmp");
        {
            let mut f = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)?;
            f.write_all(format!("{} {}\n", st.read_seg, st.read_off).as_bytes())?;
            f.sync_data()?;
        }
        std::fs::rename(&tmp, self.dir.join("cursor"))
    }
}

/// The lane's side of a spooled alarm: append, wake the delivery thread.
#[derive(Debug)]
pub(crate) struct Feed {
    pub(crate) spool: std::sync::Arc<Spool>,
    pub(crate) wake: crossbeam_utils::sync::Unparker,
    /// The real action's type (for the summary).
    pub(crate) kind: &'static str,
    /// Write failures, reported at most once a second.
    failures: crate::report::DropCount,
}

impl Feed {
    pub(crate) fn new(
        spool: std::sync::Arc<Spool>,
        wake: crossbeam_utils::sync::Unparker,
        kind: &'static str,
    ) -> Feed {
        Feed {
            spool,
            wake,
            kind,
            failures: crate::report::DropCount::default(),
        }
    }

    pub(crate) fn fire(&mut self, alarm: &str, msg: &[u8]) -> crate::action::Outcome {
        use crate::action::Outcome;
        match self.spool.push(msg, SystemTime::now()) {
            Ok(true) => {
                self.wake.unpark();
                Outcome::Spooled
            }
            Ok(false) => Outcome::Dropped,
            Err(e) => {
                self.failures.add(1);
                if let Some((new, total)) = self.failures.due(std::time::Instant::now(), false) {
                    crate::report::line(
                        crate::report::Tag::Alarm,
                        format_args!(
                            "alarm \"{alarm}\": cannot write its spool {}: {e}: {new} alarm(s) dropped ({total} in all)",
                            self.spool.dir().display()
                        ),
                    );
                }
                Outcome::Dropped
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(s: &Spool) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        while let Some(r) = s.peek().unwrap() {
            v.push(r.msg);
            s.ack().unwrap();
        }
        v
    }

    #[test]
    fn oldest_first_across_segments_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let day = Duration::from_secs(86_400);
        let now = SystemTime::now();
        let big = vec![b'x'; 300_000];
        {
            let s = Spool::open(dir.path(), "a/b", 64 << 20, day).unwrap();
            for i in 0..10u8 {
                let mut m = big.clone();
                m[0] = i;
                assert!(s.push(&m, now).unwrap());
            }
            assert_eq!(s.pending(), 10);
            // Two delivered, the third peeked but not acknowledged (a crash mid-delivery).
            for _ in 0..2 {
                assert!(s.peek().unwrap().is_some());
                s.ack().unwrap();
            }
            assert_eq!(s.peek().unwrap().unwrap().msg[0], 2);
            // A second logalarm on the same spool is refused while this one runs.
            let e = Spool::open(dir.path(), "a/b", 64 << 20, day).unwrap_err();
            assert!(e.to_string().contains("in use by another logalarm"), "{e}");
        }
        let s = Spool::open(dir.path(), "a/b", 64 << 20, day).unwrap();
        assert_eq!(s.pending(), 8);
        assert!(s.push(b"new", now).unwrap());
        let got = msgs(&s);
        let firsts: Vec<u8> = got.iter().map(|m| m[0]).collect();
        assert_eq!(firsts, vec![2, 3, 4, 5, 6, 7, 8, 9, b'n']);
        assert!(dir.path().join("a%2Fb").is_dir());
        // Delivered segments are deleted.
        let segs = std::fs::read_dir(dir.path().join("a%2Fb"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".seg")
            })
            .count();
        assert!(segs <= 1, "{segs}");
        assert!(s.push(b"later", now).unwrap());
        assert_eq!(msgs(&s), vec![b"later".to_vec()]);
    }

    #[test]
    fn full_expired_and_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path(), "x", 4096, Duration::from_secs(60)).unwrap();
        let now = SystemTime::now();
        assert!(s.push(&[b'a'; 2000], now).unwrap());
        assert!(s.push(&[b'b'; 2000], now).unwrap());
        assert!(!s.push(&[b'c'; 2000], now).unwrap(), "full");
        let old = now - Duration::from_secs(120);
        drop(s);
        let s = Spool::open(dir.path(), "x", 1 << 20, Duration::from_secs(60)).unwrap();
        assert!(s.push(b"old", old).unwrap());
        assert!(s.push(b"fresh", now).unwrap());
        let got = msgs(&s);
        assert_eq!(got.len(), 3);
        assert_eq!(got[2], b"fresh");
        assert_eq!(s.take_skipped().expired, 1);
        // A torn write at the end is cut off at the next start; what came before is kept.
        assert!(s.push(b"kept", now).unwrap());
        drop(s);
        let seg = std::fs::read_dir(dir.path().join("x"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "seg"))
            .unwrap();
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[9, 0, 0, 0, 1, 2]).unwrap();
        drop(f);
        let s = Spool::open(dir.path(), "x", 1 << 20, Duration::from_secs(60)).unwrap();
        assert_eq!(s.take_skipped().damaged_bytes, 6);
        assert!(s.push(b"after", now).unwrap());
        assert_eq!(msgs(&s), vec![b"kept".to_vec(), b"after".to_vec()]);
    }
}
