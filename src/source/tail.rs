//! Followed files (`--tail`): read as they grow, across rotation and truncation.
//!
//! Role: [`Tail`] reads what a file gained since the last look; the reactor looks on a timer
//! (files cannot be polled) and feeds what it read into the file's pipeline.
//! Invariants: rename-and-recreate rotation finishes the old file before following the new one
//! from its start; a file shorter than the offset was truncated and is read from 0 again; a
//! missing file is waited for, reported once.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::Step;
use crate::dispatch::LogSink;
use crate::pipeline::Pipeline;
use crate::report::report;

#[derive(Debug)]
pub(crate) struct Tail {
    path: PathBuf,
    file: Option<File>,
    /// The inode `file` was opened at: another inode at `path` means it was rotated.
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

    /// Open `path`, at its end unless `from_start`. A missing file is waited for.
    pub(crate) fn open(path: &Path, from_start: bool) -> Tail {
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

#[cfg(test)]
mod tests {
    use super::*;

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
