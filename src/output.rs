//! The log output: standard output or `--logto PATH`, shared by the log path and the actions
//! that write into the log stream (`log:` alarms, `cmd:` output).
//!
//! Role: write whole chunks atomically with respect to each other (one lock per chunk, never per
//! line), reopen the file on SIGHUP, and turn write failures into one clear line instead of a
//! crash loop. Invariants: a chunk is written entirely or the error is returned; a full disk
//! (`ENOSPC`, `EDQUOT`, `EIO`) is reported once and retried every second — the log path then
//! stalls, which back-pressures the input instead of losing lines — until it succeeds (reported
//! once more) or shutdown is requested; a closed output (`EPIPE`) is fatal for the log path.
//! Rejected alternative: `std::io::Stdout` — its line buffering would write per line.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::report::report;
use crate::sys;

struct State {
    target: Target,
    /// The last byte written was `\n` (or nothing was written).
    at_line_start: bool,
    /// Records (action lines) that came while the log stream was inside a line: written right
    /// after that line's end, never inside it (a line longer than the buffer is passed in
    /// pieces, and its alarm is raised from its head). At most [`MAX_PENDING`] bytes.
    pending: Vec<u8>,
}

/// Most bytes of records held back while a line is being written; beyond it they are written
/// on a line of their own at once (a line that never ends must not hold alarms for ever).
const MAX_PENDING: usize = 4 << 20;

enum Target {
    Stdout,
    File {
        path: PathBuf,
        file: File,
        /// `--logto-follow-symlinks`: reopening may follow a symbolic link too.
        follow: bool,
    },
}

impl Target {
    fn fd(&self) -> RawFd {
        match self {
            Target::Stdout => 1,
            Target::File { file, .. } => file.as_raw_fd(),
        }
    }
    fn describe(&self) -> String {
        match self {
            Target::Stdout => "standard output".to_string(),
            Target::File { path, .. } => path.display().to_string(),
        }
    }
}

/// The shared log output.
pub(crate) struct Output {
    target: Mutex<State>,
    stopping: AtomicBool,
}

/// Open `path` for appending. A symbolic link in a directory that others may write to is
/// refused unless `follow`: a link planted there would make logalarm (often root) append to any
/// file. Links in directories only their owner writes (`/dev/stdout`) are followed.
fn open_log(path: &Path, follow: bool) -> io::Result<File> {
    let open = |flags| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o644)
            .custom_flags(flags)
            .open(path)
    };
    match open(libc::O_NOFOLLOW) {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            let shared = std::fs::metadata(dir.unwrap_or(Path::new(".")))
                .map_or(true, |m| m.permissions().mode() & 0o022 != 0);
            if shared && !follow {
                return Err(io::Error::new(
                    e.kind(),
                    "is a symbolic link in a directory others may write to: logalarm does not \
                     follow it (give its target, or add --logto-follow-symlinks)",
                ));
            }
            open(0)
        }
        other => other,
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EIO) | Some(libc::EFBIG)
    )
}

impl Output {
    /// Write to standard output.
    pub(crate) fn stdout() -> Output {
        Output {
            target: Mutex::new(State {
                target: Target::Stdout,
                at_line_start: true,
                pending: Vec::new(),
            }),
            stopping: AtomicBool::new(false),
        }
    }

    /// Append to `path` (created if missing; a symbolic link only if `follow`).
    pub(crate) fn file(path: &Path, follow: bool) -> io::Result<Output> {
        let file = open_log(path, follow)?;
        Ok(Output {
            target: Mutex::new(State {
                target: Target::File {
                    path: path.to_path_buf(),
                    file,
                    follow,
                },
                at_line_start: true,
                pending: Vec::new(),
            }),
            stopping: AtomicBool::new(false),
        })
    }

    /// Write log bytes as one chunk. Transient failures are retried (see the module doc).
    /// Records held back while a line was being written follow that line's end.
    pub(crate) fn write(&self, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.target.lock().unwrap_or_else(|p| p.into_inner());
        if state.pending.is_empty() {
            return self.write_locked(&mut state, bytes);
        }
        match memchr::memchr(b'\n', bytes) {
            Some(i) => {
                self.write_locked(&mut state, &bytes[..=i])?;
                let pending = std::mem::take(&mut state.pending);
                self.write_locked(&mut state, &pending)?;
                self.write_locked(&mut state, &bytes[i + 1..])
            }
            None => self.write_locked(&mut state, bytes),
        }
    }

    /// Write whole lines produced by an action (`log:` alarms, `cmd:` output). While the log
    /// stream is inside a line they wait for its end (see [`Output::write`]).
    pub(crate) fn write_record(&self, line: &[u8]) -> io::Result<()> {
        let mut state = self.target.lock().unwrap_or_else(|p| p.into_inner());
        if state.at_line_start {
            return self.write_locked(&mut state, line);
        }
        state.pending.extend_from_slice(line);
        if state.pending.len() > MAX_PENDING {
            return self.end_line_locked(&mut state);
        }
        Ok(())
    }

    /// An input ended, or logalarm is ending: records still held back are written now, after
    /// a `\n` if the stream was left inside a line (an input whose last line has none), so the
    /// two do not join.
    pub(crate) fn end_line(&self) -> io::Result<()> {
        let mut state = self.target.lock().unwrap_or_else(|p| p.into_inner());
        self.end_line_locked(&mut state)
    }

    fn end_line_locked(&self, state: &mut State) -> io::Result<()> {
        if state.pending.is_empty() {
            return Ok(());
        }
        if !state.at_line_start {
            self.write_locked(state, b"\n")?;
        }
        let pending = std::mem::take(&mut state.pending);
        self.write_locked(state, &pending)
    }

    fn write_locked(&self, state: &mut State, bytes: &[u8]) -> io::Result<()> {
        let Some(&last) = bytes.last() else {
            return Ok(());
        };
        let target = &state.target;
        let mut reported = false;
        let mut rest = bytes;
        loop {
            match write_some(target.fd(), rest) {
                Ok(()) => {
                    state.at_line_start = last == b'\n';
                    if reported {
                        report!(Alarm, "log output {} writable again", target.describe());
                    }
                    return Ok(());
                }
                Err((written, e)) if is_transient(&e) && !self.stopping.load(Ordering::Relaxed) => {
                    rest = &rest[written..];
                    if !reported {
                        report!(
                            Alarm,
                            "cannot write log output {}: {e}; retrying every second",
                            target.describe()
                        );
                        reported = true;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err((_, e)) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot write log output {}: {e}", target.describe()),
                    ))
                }
            }
        }
    }

    /// Reopen `--logto` (after logrotate moved it). No-op for standard output.
    pub(crate) fn reopen(&self) -> io::Result<()> {
        let mut state = self.target.lock().unwrap_or_else(|p| p.into_inner());
        if let Target::File { path, file, follow } = &mut state.target {
            *file = open_log(path, *follow)?;
        }
        Ok(())
    }

    /// Stop retrying transient failures (shutdown).
    pub(crate) fn stop_retrying(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }
}

/// Write all of `buf`; on error, say how much was written.
fn write_some(fd: RawFd, buf: &[u8]) -> Result<(), (usize, io::Error)> {
    let mut done = 0;
    while done < buf.len() {
        match sys::write_fd(fd, &buf[done..]) {
            Ok(n) => done += n,
            Err(e) => return Err((done, e)),
        }
    }
    Ok(())
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let o = Output::file(&p, false).unwrap();
        o.write(b"a\n").unwrap();
        // A link in a directory others may write to is refused, unless told; in one only
        // its owner writes, followed.
        use std::os::unix::fs::PermissionsExt;
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let target = dir.path().join("victim");
        std::fs::write(&target, "keep\n").unwrap();
        let link = shared.join("log");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = Output::file(&link, false).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert!(Output::file(&link, true).is_ok());
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(Output::file(&link, false).is_ok());
        std::fs::rename(&p, dir.path().join("log.1")).unwrap();
        o.write(b"b\n").unwrap();
        o.reopen().unwrap();
        o.write(b"c\n").unwrap();
        assert_eq!(std::fs::read(dir.path().join("log.1")).unwrap(), b"a\nb\n");
        assert_eq!(std::fs::read(&p).unwrap(), b"c\n");
    }

    #[test]
    fn full_disk_is_an_error_not_a_panic() {
        if !Path::new("/dev/full").exists() {
            return;
        }
        let o = Output::file(Path::new("/dev/full"), false).unwrap();
        o.stop_retrying();
        let e = o.write(b"x\n").unwrap_err();
        assert!(e.to_string().contains("/dev/full"), "{e}");
    }
}
