//! `cmd:COMMAND`: run `$binsh -c COMMAND` with the message on its standard input.
//!
//! Role: start the command and return at once (the next alarm never waits for it). A helper
//! thread per child writes the message into a plain pipe and closes it, forwards the child's
//! stdout and stderr (one pipe, so their order is kept) into the log output as whole lines —
//! never matched — and reaps the child. Invariants: log text is never on a command line (stdin
//! only); at most [`MAX_CHILDREN`] commands run at once — beyond that the alarm is dropped,
//! counted and reported (rate limited), because waiting would delay every other alarm of the
//! main alarm thread; a command that cannot start is reported, never fatal.
//! Rejected alternative: registering children's pipes in the reactor — it would put action
//! output handling on the log path's thread.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use super::ActionError;
use super::Ctx;
use crate::output::Output;
use crate::report::{report, DropCount};

/// Most `cmd` children running at once.
pub(crate) const MAX_CHILDREN: usize = 64;

/// Longest piece of child output held while waiting for its end of line.
const MAX_OUTPUT_LINE: usize = 64 * 1024;

/// Running children: a counter with a wait for zero (shutdown), and their process groups (each
/// command runs in a group of its own, so what its shell started can be stopped with it).
#[derive(Default, Debug)]
pub(crate) struct Children {
    live: Mutex<usize>,
    groups: Mutex<Vec<i32>>,
    zero: Condvar,
    started: AtomicUsize,
}

impl Children {
    fn try_acquire(&self) -> bool {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if *live >= MAX_CHILDREN {
            return false;
        }
        *live += 1;
        self.started.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// [`Children::try_acquire`], waiting for a running command to end (the `block` overflow
    /// policy) until one does or `stop` is set.
    fn acquire_wait(&self, stop: &std::sync::atomic::AtomicBool) -> bool {
        loop {
            if self.try_acquire() {
                return true;
            }
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            if *live >= MAX_CHILDREN {
                // `release` notifies only at zero: poll, a command's end is not urgent to
                // the millisecond.
                let _ = self
                    .zero
                    .wait_timeout(live, std::time::Duration::from_millis(5));
            }
        }
    }

    fn release(&self) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        *live = live.saturating_sub(1);
        if *live == 0 {
            self.zero.notify_all();
        }
    }

    /// Kill the process groups of the commands still running (the grace period is over): their
    /// output then ends and is forwarded. Returns how many were killed.
    pub(crate) fn kill_all(&self) -> usize {
        let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        for &g in groups.iter() {
            let _ = crate::sys::kill(-g, libc::SIGKILL);
        }
        groups.len()
    }

    fn track(&self, pid: i32, running: bool) {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        if running {
            groups.push(pid);
        } else {
            groups.retain(|&g| g != pid);
        }
    }

    /// Wait until no child runs, at most until `deadline`. Returns how many still run.
    pub(crate) fn wait_all(&self, deadline: Instant) -> usize {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        while *live > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            live = match self.zero.wait_timeout(live, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        *live
    }

    /// Commands started so far.
    pub(crate) fn started(&self) -> usize {
        self.started.load(Ordering::Relaxed)
    }
}

/// A `cmd:` action.
#[derive(Debug)]
pub(crate) struct Cmd {
    command: String,
    /// Alarms dropped because [`MAX_CHILDREN`] commands were running.
    dropped: DropCount,
    /// The `block` overflow policy: wait for a running command to end instead of dropping.
    pub(crate) block: bool,
}

impl Cmd {
    pub(crate) fn parse(arg: &str) -> Result<Cmd, ActionError> {
        if arg.trim().is_empty() {
            return Err(ActionError::from("cmd: needs a command"));
        }
        Ok(Cmd {
            command: arg.to_string(),
            dropped: DropCount::default(),
            block: false,
        })
    }

    pub(crate) fn fire(&mut self, alarm: &str, msg: &[u8], ctx: &Ctx) -> super::Outcome {
        let room = if self.block {
            ctx.children.acquire_wait(&ctx.stopping)
        } else {
            ctx.children.try_acquire()
        };
        if !room {
            self.dropped.add(1);
            if let Some((new, _)) = self.dropped.due(Instant::now(), false) {
                report!(
                    Cmd,
                    "alarm \"{alarm}\": {new} alarm(s) dropped, {MAX_CHILDREN} commands already running"
                );
            }
            return super::Outcome::Dropped;
        }
        if let Err(e) = self.spawn(msg, ctx) {
            report!(
                Cmd,
                "alarm \"{alarm}\": cannot run {}: {e}",
                ctx.binsh.display()
            );
            ctx.children.release();
            return super::Outcome::Failed;
        }
        super::Outcome::Done
    }

    fn spawn(&self, msg: &[u8], ctx: &Ctx) -> std::io::Result<()> {
        let (out_r, out_w) = std::io::pipe()?;
        let mut child = {
            let mut cmd = Command::new(&ctx.binsh);
            cmd.process_group(0)
                .arg("-c")
                .arg(&self.command)
                .stdin(Stdio::piped())
                .stdout(out_w.try_clone()?)
                .stderr(out_w);
            cmd.spawn()?
            // `cmd`, holding our copies of the write ends, is dropped here: EOF will come.
        };
        let pid = child.id() as i32;
        ctx.children.track(pid, true);
        let stdin = child.stdin.take();
        let msg = msg.to_vec();
        let output = ctx.output.clone();
        let children = ctx.children.clone();
        let spawned = std::thread::Builder::new()
            .name("logalarm-cmd".into())
            .spawn(move || {
                std::thread::scope(|s| {
                    if let Some(mut stdin) = stdin {
                        s.spawn(move || {
                            // A command that does not read its stdin gets EPIPE: not an error.
                            let _ = stdin.write_all(&msg);
                        });
                    }
                    forward_lines(out_r, &output);
                });
                let _ = child.wait();
                children.track(pid, false);
                children.release();
            });
        if let Err(e) = spawned {
            return Err(std::io::Error::other(format!(
                "cannot start a helper thread: {e}"
            )));
        }
        Ok(())
    }
}

/// Copy a child's output into the log output, whole lines at a time; a last line without `\n`
/// gets one, so the next log line does not join it.
fn forward_lines(mut r: impl Read, output: &Output) {
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    loop {
        let n = match r.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        buf.extend_from_slice(&chunk[..n]);
        let cut = match memchr::memrchr(b'\n', &buf) {
            Some(i) => i + 1,
            None if buf.len() >= MAX_OUTPUT_LINE => buf.len(),
            None => continue,
        };
        if let Err(e) = output.write_record(&buf[..cut], 0) {
            report!(Cmd, "{e}");
        }
        buf.drain(..cut);
    }
    if !buf.is_empty() {
        buf.push(b'\n');
        if let Err(e) = output.write_record(&buf, 0) {
            report!(Cmd, "{e}");
        }
    }
}
