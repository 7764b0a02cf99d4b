//! The log output: standard output or `--logto PATH`, shared by the log path and the actions
//! that write into the log stream (`log:` alarms, `cmd:` output).
//!
//! Role: write whole chunks atomically with respect to each other (one lock per chunk, never per
//! line), reopen the file on SIGHUP, and turn write failures into one clear line instead of a
//! crash loop. Records (action lines) carry the log position they must follow: a `log:` alarm
//! is raised before its line is written (so alarms fire while the output is stuck), and its
//! line waits until the log stream has passed that position and is at a line end.
//!
//! Invariants: a chunk is written entirely or the error is returned; a full disk (`ENOSPC`,
//! `EDQUOT`, `EIO`) is reported once and retried every second, and a pipe whose reader is stuck
//! is waited on — the log path then stalls, which back-pressures the input instead of losing
//! lines — until it succeeds (reported once more), or SIGTERM/SIGINT came more than
//! `alarm-grace` ago, or shutdown gives up: then the error says how many bytes were not written.
//! A closed output (`EPIPE`) is fatal for the log path. Standard output that is a pipe or a
//! socket is made non-blocking while logalarm runs (restored at exit), so that a stuck reader
//! never makes a write uninterruptible.
//! Rejected alternative: `std::io::Stdout` — its line buffering would write per line.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::report::report;
use crate::sys;

struct State {
    target: Target,
    /// The last byte written was `\n` (or nothing was written).
    at_line_start: bool,
    /// Log bytes written so far (the position records refer to).
    passed: u64,
    /// Records waiting for the log stream to reach `pending_after` and a line end: a line
    /// longer than the buffer is passed in pieces, and its alarm is raised from its head;
    /// every alarm is raised before its line is written. At most [`MAX_PENDING`] bytes. PERF:
    /// the buffers as the lanes handed them over, written one after the other (a storm's
    /// `log:` batches were appended to one buffer: 7.7 % of its instructions copying them).
    pending: Vec<Vec<u8>>,
    /// The bytes in `pending`.
    pending_len: usize,
    pending_after: u64,
    /// Emptied record buffers, handed back to the lanes in exchange for full ones.
    spare: Vec<Vec<u8>>,
}

/// Most emptied record buffers kept for reuse.
const MAX_SPARE: usize = 16;

/// Most bytes of records held back while a line is being written; beyond it they are written
/// on a line of their own at once (a line that never ends must not hold alarms for ever).
const MAX_PENDING: usize = 4 << 20;

/// The size standard output is grown to when it is a pipe.
const OUTPUT_PIPE: usize = 1 << 20;

/// How often a stuck write looks at whether it should give up.
const TICK: Duration = Duration::from_millis(100);

enum Target {
    Stdout {
        /// Made non-blocking by logalarm (restored when dropped).
        nonblocking: bool,
    },
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
            Target::Stdout { .. } => 1,
            Target::File { file, .. } => file.as_raw_fd(),
        }
    }
    fn describe(&self) -> String {
        match self {
            Target::Stdout { .. } => "standard output".to_string(),
            Target::File { path, .. } => path.display().to_string(),
        }
    }
}

/// The shared log output.
pub(crate) struct Output {
    target: Mutex<State>,
    /// Mirror of `State::passed` for the reader (which alone writes log bytes).
    passed: AtomicU64,
    /// Shutdown gave up: fail at once instead of retrying.
    stopping: AtomicBool,
    /// Set by SIGTERM/SIGINT, and how long a stuck write may go on after it.
    stop_signal: OnceLock<(Arc<AtomicBool>, Duration)>,
    /// `--nats-out`: every byte written is published too.
    tee: OnceLock<Arc<crate::nats::Publisher>>,
}

/// Open `path` for appending. A symbolic link in a directory that others may write to is
/// refused unless `follow`: a link planted there would make logalarm (often root) append to any
/// file. Links in directories only their owner writes (`/dev/stdout`) are followed.
pub(crate) fn open_log(path: &Path, follow: bool) -> io::Result<File> {
    open_refusing_links(path, follow, true)
}

/// [`open_log`], appending or truncating (`wav=` files), with the same rule for links.
pub(crate) fn open_refusing_links(path: &Path, follow: bool, append: bool) -> io::Result<File> {
    let open = |flags| {
        OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
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
                let how = if append {
                    "add --logto-follow-symlinks"
                } else {
                    "add ;wav_follow_symlinks=1 to the alarm"
                };
                return Err(io::Error::new(
                    e.kind(),
                    format!(
                        "is a symbolic link in a directory others may write to: logalarm does \
                         not follow it (give its target, or {how})"
                    ),
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
    fn with(target: Target) -> Output {
        Output {
            target: Mutex::new(State {
                target,
                at_line_start: true,
                passed: 0,
                pending: Vec::new(),
                pending_len: 0,
                pending_after: 0,
                spare: Vec::new(),
            }),
            passed: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            stop_signal: OnceLock::new(),
            tee: OnceLock::new(),
        }
    }

    /// Write to standard output (non-blocking while logalarm runs if it is a pipe or socket;
    /// a pipe grown to 1 MiB).
    pub(crate) fn stdout() -> Output {
        let nonblocking =
            sys::is_pipe_or_socket(1) && sys::set_nonblocking(1, true).is_ok_and(|was| !was);
        // PERF: with 64 KiB, the log path and the `log:` lanes took turns with the reader of
        // the pipe, each waiting for the other's wake-up (a storm of `log:` alarms: 30 % of
        // the reader's waits were for a full output pipe).
        let _ = sys::grow_pipe(1, OUTPUT_PIPE);
        Output::with(Target::Stdout { nonblocking })
    }

    /// Append to `path` (created if missing; a symbolic link only if `follow`).
    pub(crate) fn file(path: &Path, follow: bool) -> io::Result<Output> {
        let file = open_log(path, follow)?;
        Ok(Output::with(Target::File {
            path: path.to_path_buf(),
            file,
            follow,
        }))
    }

    /// After `flag` is set (SIGTERM/SIGINT), a stuck write gives up `grace` later.
    pub(crate) fn stop_after(&self, flag: Arc<AtomicBool>, grace: Duration) {
        let _ = self.stop_signal.set((flag, grace));
    }

    /// `--nats-out`: publish every byte written from now on.
    pub(crate) fn tee(&self, publisher: Arc<crate::nats::Publisher>) {
        let _ = self.tee.set(publisher);
    }

    /// Log bytes written so far.
    pub(crate) fn passed(&self) -> u64 {
        self.passed.load(Ordering::Relaxed)
    }

    /// Write log bytes as one chunk. Transient failures are retried (see the module doc).
    /// Records waiting for a position inside the chunk follow the end of the line there.
    pub(crate) fn write(&self, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.target.lock().unwrap_or_else(|p| p.into_inner());
        let cut = match state.pending.is_empty() {
            true => None,
            false => record_cut(&state, bytes),
        };
        match cut {
            None => self.write_log(&mut state, bytes),
            Some(i) => {
                self.write_log(&mut state, &bytes[..i])?;
                self.write_pending(&mut state)?;
                self.write_log(&mut state, &bytes[i..])
            }
        }
    }

    /// Write log bytes and advance the position.
    fn write_log(&self, state: &mut State, bytes: &[u8]) -> io::Result<()> {
        self.write_locked(state, bytes)?;
        state.passed += bytes.len() as u64;
        self.passed.store(state.passed, Ordering::Relaxed);
        Ok(())
    }

    /// Write whole lines produced by an action (`log:` alarms, `cmd:` output), once the log
    /// stream has passed position `after` and is at a line end (see [`Output::write`]).
    pub(crate) fn write_record(&self, line: &[u8], after: u64) -> io::Result<()> {
        let mut state = self.target.lock().unwrap_or_else(|p| p.into_inner());
        if state.pending.is_empty() && state.at_line_start && after <= state.passed {
            return self.write_locked(&mut state, line);
        }
        if line.is_empty() {
            return Ok(());
        }
        if state.pending.is_empty() {
            let buf = state.spare.pop().unwrap_or_default();
            state.pending.push(buf);
        }
        if let Some(buf) = state.pending.last_mut() {
            buf.extend_from_slice(line);
        }
        state.pending_len += line.len();
        self.held_back(&mut state, after)
    }

    /// [`write_record`](Self::write_record) of a buffer of whole lines, left empty. PERF: a
    /// buffer held back is taken as it is, in exchange for an emptied one (a storm's `log:`
    /// batches were copied here on every read).
    pub(crate) fn write_records(&self, lines: &mut Vec<u8>, after: u64) -> io::Result<()> {
        let mut state = self.target.lock().unwrap_or_else(|p| p.into_inner());
        let done = if state.pending.is_empty() && state.at_line_start && after <= state.passed {
            self.write_locked(&mut state, lines)
        } else if lines.is_empty() {
            Ok(())
        } else {
            // A new buffer as large as the one handed over: grown from nothing, it was copied
            // at every doubling.
            let spare = match state.spare.pop() {
                Some(b) => b,
                None => Vec::with_capacity(lines.capacity()),
            };
            state.pending_len += lines.len();
            state.pending.push(std::mem::replace(lines, spare));
            self.held_back(&mut state, after)
        };
        lines.clear();
        done
    }

    /// Records were added to the held-back ones, to follow position `after`.
    fn held_back(&self, state: &mut State, after: u64) -> io::Result<()> {
        state.pending_after = state.pending_after.max(after);
        if state.pending_len > MAX_PENDING {
            return self.end_line_locked(state);
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
        self.write_pending(state)
    }

    /// Write the records held back, in order, keeping their buffers (PERF: a storm's `log:`
    /// lines wait here for their lines on every read; a new buffer each time grew again from
    /// nothing). After a failure the rest is not written (the error says how much was not).
    fn write_pending(&self, state: &mut State) -> io::Result<()> {
        let mut pending = std::mem::take(&mut state.pending);
        let mut left = std::mem::take(&mut state.pending_len);
        let mut written = Ok(());
        for mut buf in pending.drain(..) {
            left = left.saturating_sub(buf.len());
            if written.is_ok() {
                written = self.write_locked(state, &buf).map_err(|e| {
                    if left == 0 {
                        return e;
                    }
                    io::Error::new(
                        e.kind(),
                        format!("{e}; {left} more byte(s) of records not written"),
                    )
                });
            }
            buf.clear();
            if state.spare.len() < MAX_SPARE {
                state.spare.push(buf);
            }
        }
        if state.pending.is_empty() {
            state.pending = pending;
        }
        written
    }

    /// Whether a stuck write should give up now (`since`: when the stop was first seen).
    fn give_up(&self, since: &mut Option<Instant>) -> bool {
        if self.stopping.load(Ordering::Relaxed) {
            return true;
        }
        match self.stop_signal.get() {
            Some((flag, grace)) if flag.load(Ordering::Relaxed) => {
                since.get_or_insert_with(Instant::now).elapsed() >= *grace
            }
            _ => false,
        }
    }

    fn write_locked(&self, state: &mut State, bytes: &[u8]) -> io::Result<()> {
        let Some(&last) = bytes.last() else {
            return Ok(());
        };
        if let Some(t) = self.tee.get() {
            t.send(bytes);
        }
        let target = &state.target;
        let fd = target.fd();
        let mut reported = false;
        let mut stop_seen = None;
        let mut rest = bytes;
        loop {
            let e = match write_some(fd, rest) {
                Ok(()) => {
                    state.at_line_start = last == b'\n';
                    if reported {
                        report!(Alarm, "log output {} writable again", target.describe());
                    }
                    return Ok(());
                }
                Err((written, e)) => {
                    rest = &rest[written..];
                    e
                }
            };
            let stuck = e.kind() == io::ErrorKind::WouldBlock;
            if !(stuck || is_transient(&e)) || self.give_up(&mut stop_seen) {
                let why = if stuck {
                    "its reader is not reading".to_string()
                } else {
                    e.to_string()
                };
                let when = if stuck || is_transient(&e) {
                    "logalarm is stopping: "
                } else {
                    ""
                };
                return Err(io::Error::new(
                    e.kind(),
                    format!(
                        "cannot write log output {}: {why}; {when}{} byte(s) not written",
                        target.describe(),
                        rest.len()
                    ),
                ));
            }
            if stuck {
                // A pipe whose reader does not read: wait for room, a tick at a time.
                let _ = sys::wait_fd(fd, libc::POLLOUT, TICK.as_millis() as i32);
                continue;
            }
            if !reported {
                report!(
                    Alarm,
                    "cannot write log output {}: {e}; retrying every second",
                    target.describe()
                );
                reported = true;
            }
            for _ in 0..10 {
                if self.give_up(&mut stop_seen) {
                    break;
                }
                std::thread::sleep(TICK);
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

impl Drop for Output {
    fn drop(&mut self) {
        let state = self.target.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Target::Stdout { nonblocking: true } = state.target {
            let _ = sys::set_nonblocking(1, false);
        }
    }
}

/// Where in `bytes` (written at the state's position) the pending records go: after the first
/// line end at or beyond their position; `None` if not inside `bytes`.
fn record_cut(state: &State, bytes: &[u8]) -> Option<usize> {
    let k = usize::try_from(state.pending_after.saturating_sub(state.passed)).ok()?;
    if k > bytes.len() {
        return None;
    }
    if k == 0 && state.at_line_start {
        return Some(0);
    }
    let from = k.saturating_sub(1);
    memchr::memchr(b'\n', &bytes[from..]).map(|i| from + i + 1)
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
    fn records_held_back_follow_their_lines_in_order_and_buffers_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let o = Output::file(&p, false).unwrap();
        o.write(b"one\npart").unwrap();
        // Inside a line: held back, batch after batch (each handed over whole), and a
        // single record between them.
        let mut a = b"A1\nA2\n".to_vec();
        o.write_records(&mut a, 4).unwrap();
        assert!(a.is_empty());
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(b"B1\n");
        o.write_records(&mut b, 9).unwrap();
        // Emptied, and still room for the next batch (no new growth from nothing).
        assert!(b.is_empty() && b.capacity() >= 4, "{}", b.capacity());
        o.write_record(b"C1\n", 9).unwrap();
        // The line ends: the records follow it.
        o.write(b"-end\nmore ").unwrap();
        assert_eq!(
            std::fs::read(&p).unwrap(),
            b"one\npart-end\nA1\nA2\nB1\nC1\nmore "
        );
        let mut d = b"D1\n".to_vec();
        o.write_records(&mut d, 20).unwrap();
        o.write(b"and more\n").unwrap();
        assert_eq!(
            std::fs::read(&p).unwrap(),
            b"one\npart-end\nA1\nA2\nB1\nC1\nmore and more\nD1\n"
        );
        // Nothing waits: written at once; the emptied buffers are kept for reuse.
        let mut e = b"E1\n".to_vec();
        o.write_records(&mut e, 0).unwrap();
        assert!(std::fs::read(&p).unwrap().ends_with(b"D1\nE1\n"));
        let state = o.target.lock().unwrap();
        assert!(state.pending.is_empty() && state.pending_len == 0);
        assert!(!state.spare.is_empty() && state.spare.iter().all(Vec::is_empty));
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
