//! Followed files (`--tail`): read as they grow, across rotation and truncation.
//!
//! Role: [`Tail`] reads what a file gained since the last look; the reactor looks on a timer
//! (files cannot be polled) and feeds what it read into the file's pipeline.
//! Invariants: rename-and-recreate rotation finishes the old file before following the new one
//! from its start; a file shorter than the offset was truncated and is read from 0 again; a
//! missing file is waited for, reported once. With `--tail-state FILE` ([`TailState`]) where
//! each file was passed on to is kept across restarts: a restart goes on at the line after the
//! last one written, also when the file was rotated while logalarm was stopped.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::Step;
use crate::dispatch::LogSink;
use crate::pipeline::Pipeline;
use crate::report::report;

#[derive(Debug)]
pub(crate) struct Tail {
    path: PathBuf,
    file: Option<File>,
    /// The device and inode `file` was opened at: another inode at `path` means it was rotated.
    dev: u64,
    inode: u64,
    /// Bytes of `file` read so far: a file shorter than this was truncated.
    offset: u64,
    /// Reported that the file is missing (once until it appears).
    missing: bool,
}

impl Tail {
    /// The followed path.
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Open `path`, at its end unless `from_start`, or where `saved` says it was passed on to
    /// before a restart. A missing file is waited for.
    pub(crate) fn open(path: &Path, from_start: bool, saved: Option<&Checkpoint>) -> Tail {
        let mut t = Tail {
            path: path.to_path_buf(),
            file: None,
            dev: 0,
            inode: 0,
            offset: 0,
            missing: false,
        };
        match saved {
            Some(cp) => t.resume(cp),
            None => t.reopen(!from_start),
        }
        t
    }

    /// Go on where `cp` says: in the same file; in the file it was rotated to (its rest first,
    /// then the new file from its start, as a rotation seen live); or, when the file was
    /// truncated or replaced and the old one is gone, from the start of what is there now.
    fn resume(&mut self, cp: &Checkpoint) {
        let shown = self.path.display().to_string();
        match File::open(&self.path) {
            Ok(f) => {
                if let Some(at) = cp.holds(&f) {
                    report!(
                        Alarm,
                        "tail {shown}: going on at byte {at}, where it stopped"
                    );
                    return self.start(f, at);
                }
                let rotated = f
                    .metadata()
                    .is_ok_and(|m| (m.dev(), m.ino()) != (cp.dev, cp.ino));
                if rotated {
                    if let Some((old, f)) = cp.find_beside(&self.path) {
                        report!(
                            Alarm,
                            "tail {shown}: rotated while logalarm was stopped: the rest of {} first, then the new file",
                            old.display()
                        );
                        return self.start(f, cp.offset);
                    }
                }
                report!(
                    Alarm,
                    "tail {shown}: {} while logalarm was stopped: reading it from its start",
                    if rotated {
                        "replaced"
                    } else {
                        "truncated or rewritten"
                    }
                );
                self.start(f, 0);
            }
            Err(_) => self.reopen(false),
        }
    }

    /// Follow `f` from byte `at`.
    fn start(&mut self, mut f: File, at: u64) {
        let meta = f.metadata().ok();
        self.dev = meta.as_ref().map_or(0, |m| m.dev());
        self.inode = meta.as_ref().map_or(0, |m| m.ino());
        self.offset = f.seek(SeekFrom::Start(at)).unwrap_or(0);
        self.file = Some(f);
        self.missing = false;
    }

    /// Where this file was passed on to, `pending` bytes (read, not yet written: a line
    /// without its end) before the read offset: `None` when no file is open, `Some(None)`
    /// when the pending bytes began in the file before a rotation.
    pub(crate) fn checkpoint(&self, pending: u64) -> Option<Option<Checkpoint>> {
        let f = self.file.as_ref()?;
        let Some(offset) = self.offset.checked_sub(pending) else {
            return Some(None);
        };
        // Only bytes already passed on: the rest of a line may still be written.
        let mut head = [0u8; HEAD];
        let n = read_head(f, &mut head[..(offset.min(HEAD as u64) as usize)]);
        Some(Some(Checkpoint {
            dev: self.dev,
            ino: self.inode,
            offset,
            head: head[..n].to_vec(),
        }))
    }

    fn reopen(&mut self, at_end: bool) {
        match File::open(&self.path) {
            Ok(f) => {
                let at = match at_end {
                    true => f.metadata().map_or(0, |m| m.len()),
                    false => 0,
                };
                self.start(f, at);
            }
            Err(e) => {
                if !self.missing {
                    report!(Alarm, "tail {}: {e}: waiting for it", self.path.display());
                    self.missing = true;
                }
                self.file = None;
            }
        }
    }

    /// Read what is new into `buf` (up to its length). `Ok(0)`: nothing new now. Handles
    /// truncation (start again from 0) and rotation (finish the old file, then follow the new
    /// one from its start).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
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
                report!(
                    Alarm,
                    "tail {}: rotated, following the new file",
                    self.path.display()
                );
                self.reopen(false);
            }
            Ok(m) if m.len() < self.offset => {
                report!(
                    Alarm,
                    "tail {}: truncated, reading from its start",
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

impl Tail {
    /// Read what the file gained into `pipeline`. A read error is reported and the file is
    /// looked at again at the next turn.
    pub(crate) fn serve(
        &mut self,
        pipeline: &mut Pipeline,
        sink: &mut LogSink<'_>,
    ) -> io::Result<Step> {
        match self.read(pipeline.spare()) {
            Ok(0) => Ok(Step::Idle),
            Ok(n) => {
                let res = pipeline.commit(n, sink);
                sink.flush();
                res.map(|()| Step::More)
            }
            Err(e) => {
                report!(Alarm, "tail {}: {e}", self.path.display());
                Ok(Step::Idle)
            }
        }
    }
}

/// How many of a file's first bytes tell it from another that got its inode.
const HEAD: usize = 64;
/// Most bytes a state file may have (a line per followed file).
const MAX_STATE: u64 = 1 << 20;
/// Most directory entries looked at for the file a followed one was rotated to.
const MAX_SIBLINGS: usize = 10_000;

fn read_head(f: &File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    n
}

/// Where a followed file was passed on to: its device and inode, the offset of the line after
/// the last one written, and its first bytes (an inode is reused once a file is deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    dev: u64,
    ino: u64,
    offset: u64,
    head: Vec<u8>,
}

impl Checkpoint {
    /// The offset to go on at when `f` is the file this checkpoint was taken of, and holds it.
    fn holds(&self, f: &File) -> Option<u64> {
        let m = f.metadata().ok()?;
        let mut head = [0u8; HEAD];
        let n = read_head(f, &mut head);
        let same = (m.dev(), m.ino()) == (self.dev, self.ino)
            && m.len() >= self.offset
            && n >= self.head.len()
            && head[..self.head.len()] == self.head[..];
        same.then_some(self.offset)
    }

    /// The file beside `path` (same directory: `app.log.1`, `app.log-20261205`) that is the
    /// one this checkpoint was taken of, opened.
    fn find_beside(&self, path: &Path) -> Option<(PathBuf, File)> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        for e in std::fs::read_dir(dir).ok()?.flatten().take(MAX_SIBLINGS) {
            let Ok(m) = e.metadata() else { continue };
            if (m.dev(), m.ino()) != (self.dev, self.ino) || !m.is_file() {
                continue;
            }
            let f = File::open(e.path()).ok()?;
            return self.holds(&f).map(|_| (e.path(), f));
        }
        None
    }

    fn line(&self, path: &Path) -> Option<String> {
        use std::fmt::Write;
        let p = path.to_str().filter(|p| !p.contains(['\n', '\t']))?;
        let mut head = String::with_capacity(2 * self.head.len());
        for b in &self.head {
            let _ = write!(head, "{b:02x}");
        }
        let (d, i, o) = (self.dev, self.ino, self.offset);
        Some(format!("1\t{d}\t{i}\t{o}\t{head}\t{p}\n"))
    }

    fn parse(line: &str) -> Option<(PathBuf, Checkpoint)> {
        let mut f = line.splitn(6, '\t');
        if f.next()? != "1" {
            return None;
        }
        let dev = f.next()?.parse().ok()?;
        let ino = f.next()?.parse().ok()?;
        let offset = f.next()?.parse().ok()?;
        let hex = f.next()?;
        if hex.len() % 2 != 0 || hex.len() > 2 * HEAD {
            return None;
        }
        let head = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        let path = PathBuf::from(f.next()?);
        Some((
            path,
            Checkpoint {
                dev,
                ino,
                offset,
                head,
            },
        ))
    }
}

/// `--tail-state FILE`: the checkpoints of the followed files, read at start-up, written once a
/// second while they change and at the end of the run (atomically, mode 0600).
#[derive(Debug)]
pub(crate) struct TailState {
    file: PathBuf,
    saved: HashMap<PathBuf, Checkpoint>,
    /// What the file holds now (not written again while nothing moved).
    written: String,
    /// The last write failed (said once until one succeeds).
    failing: bool,
}

impl TailState {
    /// Read `file` (missing: nothing saved yet). A state file another user owns or may write is
    /// not used (it could make logalarm skip lines), nor is a line that cannot be read: each
    /// said on stderr.
    pub(crate) fn load(file: &Path) -> TailState {
        let mut st = TailState {
            file: file.to_path_buf(),
            saved: HashMap::new(),
            written: String::new(),
            failing: false,
        };
        let shown = file.display();
        let text = match std::fs::OpenOptions::new().read(true).open(file) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return st,
            Err(e) => {
                report!(
                    Alarm,
                    "tail-state {shown}: {e}: every followed file read as without it"
                );
                return st;
            }
            Ok(f) => {
                let private = f.metadata().is_ok_and(|m| crate::sys::private(&m));
                if !private {
                    report!(Alarm, "tail-state {shown}: not used: it belongs to another user or is writable by others");
                    return st;
                }
                let mut text = String::new();
                if let Err(e) = f.take(MAX_STATE).read_to_string(&mut text) {
                    report!(Alarm, "tail-state {shown}: {e}: not used");
                    return st;
                }
                text
            }
        };
        for line in text.lines() {
            match Checkpoint::parse(line) {
                Some((p, cp)) => {
                    st.saved.insert(p, cp);
                }
                None => report!(
                    Alarm,
                    "tail-state {shown}: a line that is no checkpoint, left out: {}",
                    line.chars().take(200).collect::<String>()
                ),
            }
        }
        st.written = text;
        st
    }

    /// The checkpoint saved for `path`.
    pub(crate) fn saved(&self, path: &Path) -> Option<&Checkpoint> {
        self.saved.get(path)
    }

    /// Note where `path` was passed on to.
    pub(crate) fn note(&mut self, path: &Path, cp: Checkpoint) {
        self.saved.insert(path.to_path_buf(), cp);
    }

    /// Write the checkpoints when they moved since the last write. A failure is said on stderr
    /// (once until a write succeeds) and tried again at the next write.
    pub(crate) fn write(&mut self) {
        let mut paths: Vec<&PathBuf> = self.saved.keys().collect();
        paths.sort();
        let text: String = paths
            .into_iter()
            .filter_map(|p| self.saved[p].line(p))
            .collect();
        if text == self.written {
            return;
        }
        match crate::sys::replace_file(&self.file, "tail-state", text.as_bytes()) {
            Ok(()) => {
                if std::mem::take(&mut self.failing) {
                    report!(Alarm, "tail-state {}: written again", self.file.display());
                }
                self.written = text;
            }
            Err(e) if !self.failing => {
                self.failing = true;
                report!(
                    Alarm,
                    "tail-state {}: cannot write it: {e} (a restart would read the followed files as without it; tried again every second)",
                    self.file.display()
                );
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_is_kept_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        std::fs::write(&p, "one\ntwo\nthr").unwrap();
        let mut t = Tail::open(&p, true, None);
        let mut buf = [0u8; 64];
        assert_eq!(t.read(&mut buf).unwrap(), 11);
        // 3 bytes (`thr`) read but not passed on.
        let cp = t.checkpoint(3).unwrap().unwrap();
        assert_eq!(t.checkpoint(12).unwrap(), None, "began before a rotation");
        assert_eq!(cp.offset, 8);
        assert_eq!(cp.head, b"one\ntwo\n");
        let state = dir.path().join("st");
        let mut st = TailState::load(&state);
        st.note(&p, cp.clone());
        st.write();
        let back = TailState::load(&state);
        assert_eq!(back.saved(&p), Some(&cp));
        // Resumed in the same file: the unfinished line whole.
        let mut t = Tail::open(&p, false, back.saved(&p));
        let n = t.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"thr");
        // Rewritten (another head): from its start.
        std::fs::write(&p, "ONE\ntwo\nthree\n").unwrap();
        let mut t = Tail::open(&p, false, back.saved(&p));
        let n = t.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ONE\ntwo\nthree\n");
        // A line that is no checkpoint is left out.
        std::fs::write(
            &state,
            "1\tx\t2\t3\t\tapp.log\n2\t1\t2\t3\t\ta\n1\t1\t2\t3\t0\ta\n",
        )
        .unwrap();
        assert!(TailState::load(&state).saved.is_empty());
    }

    #[test]
    fn tail_follows_truncation_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        std::fs::write(&p, "old\n").unwrap();
        let mut t = Tail::open(&p, false, None);
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
