//! `cmd:COMMAND`: run `$binsh -c COMMAND` with the message on its standard input.
//!
//! Role: start the command and return at once (the next alarm never waits for it). The message
//! goes into a plain pipe, closed after it (written at once when it fits a pipe's first page,
//! else by a helper thread); a helper thread per child forwards the child's stdout and stderr
//! (one pipe, so their order is kept) into the log output as whole lines — never matched — and
//! reaps the child. A command that the shell would only split into words and run (no
//! expansion, redirection, builtin or operator: [`plain_argv`]) is started directly, without
//! the shell, when `binsh` is the default `/bin/sh`: the same program with the same arguments,
//! environment, stdin and output, at half the cost of a start (the shell's own start is as
//! dear as most commands'); a program that cannot be started that way is given to the shell,
//! which says why in the log as it always did. Invariants: log text is never on a command line (stdin
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
                // `release` notifies each end; the timeout only bounds the wait for `stop`.
                let _ = self
                    .zero
                    .wait_timeout(live, std::time::Duration::from_millis(50));
            }
        }
    }

    fn release(&self) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let full = *live >= MAX_CHILDREN;
        *live = live.saturating_sub(1);
        // Waiters: `wait_all` (for zero) and `acquire_wait` (for room below the cap).
        if *live == 0 || full {
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
    /// The words of `command` when the shell would only split it ([`plain_argv`]).
    argv: Option<Vec<String>>,
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
            argv: plain_argv(arg),
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
        let start = |program: &std::ffi::OsStr, args: &[&str]| -> std::io::Result<_> {
            let mut cmd = Command::new(program);
            cmd.process_group(0)
                .args(args)
                .stdin(Stdio::piped())
                .stdout(out_w.try_clone()?)
                .stderr(out_w.try_clone()?);
            cmd.spawn()
        };
        let direct = match &self.argv {
            Some(argv) if ctx.binsh.as_os_str() == DEFAULT_BINSH => argv.split_first(),
            _ => None,
        };
        let started = match direct {
            // Not found or not executable: the shell says so in the log, as without this path.
            Some((program, args)) => {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                match start(program.as_ref(), &args) {
                    Err(e) if is_not_startable(&e) => None,
                    other => Some(other?),
                }
            }
            None => None,
        };
        let mut child = match started {
            Some(child) => child,
            None => start(ctx.binsh.as_os_str(), &["-c", &self.command])?,
        };
        // Our copy of the write end goes: EOF comes when the child's copies close.
        drop(out_w);
        let pid = child.id() as i32;
        ctx.children.track(pid, true);
        let mut stdin = child.stdin.take();
        // A fresh pipe always holds its first page: such a message never blocks this thread.
        // A command that does not read its stdin gets EPIPE: not an error.
        let mut rest = Vec::new();
        if msg.len() <= ATOMIC_PIPE_WRITE {
            if let Some(mut w) = stdin.take() {
                let _ = w.write_all(msg);
            }
        } else {
            rest = msg.to_vec();
        }
        let output = ctx.output.clone();
        let children = ctx.children.clone();
        let spawned = std::thread::Builder::new()
            .name("logalarm-cmd".into())
            .spawn(move || {
                std::thread::scope(|s| {
                    if let Some(mut stdin) = stdin {
                        s.spawn(move || {
                            let _ = stdin.write_all(&rest);
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

/// The shell `cmd` commands run with unless `binsh` says otherwise.
const DEFAULT_BINSH: &str = "/bin/sh";

/// Bytes a write to a fresh pipe takes without blocking, however small pipes are made
/// (`/proc/sys/fs/pipe-user-pages-soft` can cut them to one page, never below).
const ATOMIC_PIPE_WRITE: usize = 4096;

/// Errors after which the shell is asked to start the command instead (it reports them).
fn is_not_startable(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
    ) || e.raw_os_error() == Some(libc::ENOEXEC)
}

/// Builtins and keywords of POSIX shells and dash: a first word among them runs in the shell.
const SHELL_WORDS: &[&str] = &[
    "alias", "bg", "break", "case", "cd", "chdir", "command", "continue", "do", "done", "echo",
    "elif", "else", "esac", "eval", "exec", "exit", "export", "false", "fc", "fg", "fi", "for",
    "getopts", "hash", "if", "in", "jobs", "kill", "local", "printf", "pwd", "read", "readonly",
    "return", "set", "shift", "test", "then", "times", "trap", "true", "type", "ulimit", "umask",
    "unalias", "unset", "until", "wait", "while",
];

/// The words `sh -c command` would run, when the shell would do nothing else: words of plain
/// characters (letters, digits, `-_./,:=+@%`), whole `'single-quoted'` pieces and
/// `"double-quoted"` pieces without `$`, `` ` `` or `\`, separated by blanks; the first word
/// neither a builtin or keyword ([`SHELL_WORDS`]; a path with `/` never is) nor an assignment.
/// Anything else (expansions, globs, `~`, redirections, operators, comments, escapes,
/// other characters outside quotes) returns `None`: the shell runs it.
fn plain_argv(command: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '$' | '`' | '\\' => return None,
                        c => word.push(c),
                    }
                }
            }
            c if c.is_ascii_alphanumeric() || "-_./,:=+@%".contains(c) => {
                in_word = true;
                word.push(c);
            }
            _ => return None,
        }
    }
    if in_word {
        words.push(word);
    }
    let first = words.first()?;
    let builtin = !first.contains('/') && SHELL_WORDS.contains(&first.as_str());
    let nul = words.iter().any(|w| w.contains('\0'));
    if first.is_empty() || first.contains('=') || builtin || nul {
        return None;
    }
    Some(words)
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

#[cfg(test)]
mod tests {
    use super::plain_argv;

    fn words(c: &str) -> Option<Vec<String>> {
        plain_argv(c)
    }

    fn owned(v: &[&str]) -> Option<Vec<String>> {
        Some(v.iter().map(|w| w.to_string()).collect())
    }

    #[test]
    fn plain_commands_are_split_as_the_shell_splits_them() {
        assert_eq!(words("/bin/true"), owned(&["/bin/true"]));
        assert_eq!(
            words("mail -s 'uWSGI alarm' -a 'From: foo@bar.it'  admin@bar.it"),
            owned(&[
                "mail",
                "-s",
                "uWSGI alarm",
                "-a",
                "From: foo@bar.it",
                "admin@bar.it"
            ])
        );
        assert_eq!(
            words("logger -t app\t\"a 'b' c\"x''"),
            owned(&["logger", "-t", "app", "a 'b' cx"])
        );
        assert_eq!(words("dd if=/dev/null"), owned(&["dd", "if=/dev/null"]));
        assert_eq!(words("/bin/echo -n"), owned(&["/bin/echo", "-n"]));
    }

    #[test]
    fn anything_the_shell_would_interpret_stays_the_shells() {
        for c in [
            "echo hi",
            "true",
            "exit 3",
            "cd /tmp",
            "if true",
            "FOO=1 env",
            "cat > /tmp/x",
            "cat | wc",
            "a; b",
            "a && b",
            "a &",
            "echo $HOME",
            "ls *.log",
            "ls ~",
            "ls # comment",
            "echo \"$x\"",
            "echo \"`id`\"",
            "x 'unterminated",
            "x \"unterminated",
            "x\\ y",
            "(x)",
            "x\ny",
            "caf\u{e9}",
            "''",
            "x \"a\0b\"",
        ] {
            assert_eq!(plain_argv(c), None, "{c:?}");
        }
    }

    /// Every command taken without the shell splits as the real `/bin/sh` splits it: the
    /// shell's `printf '%s\0'` prints the words it would run, for random commands over the
    /// characters that matter.
    #[test]
    fn the_real_shell_agrees_on_every_word() {
        let alphabet: Vec<char> = "ab -'\"\t$`\\=/.:@%~*;|&#".chars().collect();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut agreed = 0;
        for _ in 0..3000 {
            let mut c = String::from("x ");
            for _ in 0..(seed % 12) {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                c.push(alphabet[(seed >> 33) as usize % alphabet.len()]);
            }
            let Some(words) = plain_argv(&c) else {
                continue;
            };
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(format!("printf '%s\\0' {c}"))
                .output()
                .expect("run /bin/sh");
            let mut expected: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split('\0')
                .map(str::to_string)
                .collect();
            expected.pop();
            assert_eq!(words, expected, "{c:?}");
            agreed += 1;
        }
        assert!(agreed > 300, "only {agreed} plain commands generated");
    }
}
