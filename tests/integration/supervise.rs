//! Supervised processes end to end: `--attach-daemon`, `-- CMD`, restarts, signal forwarding,
//! crashes (a process that really segfaults) and `signal:` alarms. Every test runs the real
//! binary and real processes.

use crate::support;
use std::io::Read;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{bin, spawn_detached, wait_until};

/// Read the child's stdout on a thread; returns a handle to what was read so far.
fn collect(child: &mut Child) -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut out = child.stdout.take().unwrap();
    let g = got.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            g.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    got
}

fn term(child: &Child) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
}

fn stderr_of(child: Child) -> (Option<i32>, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn daemons_output_is_merged_line_by_line_and_nothing_is_lost() {
    // Two daemons write long lines (bigger than a pipe's atomic write) as fast as they can.
    let daemon = |tag: &str| {
        format!(
            "awk 'BEGIN {{ s = sprintf(\"%6000s\", \"\"); gsub(/ /, \"{tag}\", s); for (i = 0; i < 3000; i++) print i \" \" s; print \"{tag} done\" }}'; exec sleep 1000"
        )
    };
    let (a, b) = (daemon("a"), daemon("b"));
    let mut child = spawn_detached(&["--attach-daemon", &a, "--attach-daemon", &b]);
    let got = collect(&mut child);
    wait_until("both daemons", 60, || {
        let g = got.lock().unwrap();
        let s = String::from_utf8_lossy(&g);
        s.contains("a done\n") && s.contains("b done\n")
    });
    term(&child);
    let (code, err) = stderr_of(child);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("SIGKILL"), "{err}");
    let g = got.lock().unwrap();
    let text = String::from_utf8_lossy(&g);
    let mut next = [0usize; 2];
    for line in text.lines() {
        if line.ends_with(" done") {
            continue;
        }
        let (n, body) = line.split_once(' ').expect("a whole line");
        let which = match body.as_bytes()[0] {
            b'a' => 0,
            b'b' => 1,
            _ => panic!("a cut line: {line:.80}"),
        };
        assert_eq!(body.len(), 6000, "a cut line");
        assert!(body.bytes().all(|c| c == body.as_bytes()[0]), "lines mixed");
        assert_eq!(
            n.parse::<usize>().unwrap(),
            next[which],
            "in order, none lost"
        );
        next[which] += 1;
    }
    assert_eq!(next, [3000, 3000]);
}

#[test]
fn the_command_after_double_dash_sets_the_exit_status_and_its_lines_raise_alarms() {
    let out = bin()
        .args([
            "--alarm",
            "a log:SEEN",
            "--log-alarm",
            "a ^boom",
            "--",
            "sh",
            "-c",
            "echo boom; echo quiet; exit 7",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.starts_with("boom\n"), "{s}");
    assert!(s.contains("quiet\n"));
    assert!(s.contains(" - ALARM: SEEN boom\n"), "{s}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[uwsgi-alarm] command \"sh -c echo boom; echo quiet; exit 7\""),
        "{err}"
    );
    assert!(err.contains("exited with status 7"), "{err}");

    // The command gets logalarm's standard input.
    let out = bin()
        .args(["--", "sh", "-c", "read l; echo got $l"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"hello\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(out.stdout, b"got hello\n");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn a_real_segfault_raises_alarm_segfault_with_the_last_lines() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("crash");
    let cmd = format!("crash cmd:cat > {}", f.display());
    // python3 dereferences a NULL pointer: a real SIGSEGV, no kill(2).
    let out = bin()
        .args([
            "--alarm",
            &cmd,
            "--alarm-segfault",
            "crash",
            "--",
            "python3",
            "-c",
            "import ctypes, sys; print('last words', flush=True); ctypes.string_at(0)",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(128 + libc::SIGSEGV), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("last words\n"));
    let msg = std::fs::read_to_string(&f).unwrap();
    assert!(msg.starts_with("*** backtrace of "), "{msg}");
    assert!(
        msg.contains("killed by signal 11 (SIGSEGV), core dumped: "),
        "{msg}"
    );
    assert!(msg.contains("command: python3 -c import ctypes"), "{msg}");
    assert!(msg.contains("last lines:\nlast words\n"), "{msg}");
    assert!(msg.ends_with("*** end of backtrace ***"), "{msg}");
    assert!(err.contains("[uwsgi-alarm] *** backtrace of "), "{err}");
}

#[test]
fn crashing_daemons_are_restarted_with_back_off_and_raise_each_time() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("crashes");
    let cmd = format!("crash cmd:cat >> {}", f.display());
    let mut child = spawn_detached(&[
        "--alarm",
        &cmd,
        "--alarm-segfault",
        "crash",
        "--alarm-freq",
        "0",
        "--attach-daemon",
        "echo started; kill -ABRT $$",
    ]);
    let got = collect(&mut child);
    wait_until("two restarts", 10, || {
        String::from_utf8_lossy(&got.lock().unwrap())
            .matches("started\n")
            .count()
            >= 3
    });
    term(&child);
    let (code, err) = stderr_of(child);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("killed by signal 6 (SIGABRT"), "{err}");
    assert!(err.contains("restarting in 1s"), "{err}");
    assert!(err.contains("restarting in 2s"), "back-off doubles: {err}");
    let crashes = std::fs::read_to_string(&f).unwrap_or_default();
    assert!(
        crashes.matches("*** end of backtrace ***").count() >= 2,
        "{crashes}"
    );
    assert!(crashes.contains("SIGABRT"));
}

#[test]
fn sigterm_is_forwarded_and_waited_for() {
    let mut child = spawn_detached(&[
        "--",
        "sh",
        "-c",
        "trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.05; done",
    ]);
    let got = collect(&mut child);
    wait_until("ready", 10, || {
        String::from_utf8_lossy(&got.lock().unwrap()).contains("ready\n")
    });
    term(&child);
    let (code, err) = stderr_of(child);
    assert_eq!(code, Some(3), "the command's status: {err}");
    assert!(String::from_utf8_lossy(&got.lock().unwrap()).contains("got TERM\n"));
}

#[test]
fn a_process_ignoring_sigterm_is_killed_after_the_grace_period() {
    let mut child = spawn_detached(&[
        "--alarm-grace",
        "1",
        "--",
        "sh",
        "-c",
        "trap '' TERM; echo ready; while :; do sleep 0.05; done",
    ]);
    let got = collect(&mut child);
    wait_until("ready", 10, || {
        String::from_utf8_lossy(&got.lock().unwrap()).contains("ready\n")
    });
    let t = Instant::now();
    term(&child);
    let (code, err) = stderr_of(child);
    assert_eq!(code, Some(128 + libc::SIGKILL), "{err}");
    assert!(err.contains("still running after 1s: SIGKILL"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn signal_alarms_signal_the_supervised_processes() {
    let mut child = spawn_detached(&[
        "--alarm",
        "usr1 signal:10",
        "--log-alarm",
        "usr1 ^ready",
        "--attach-daemon",
        "trap 'echo got USR1' USR1; echo ready; while :; do sleep 0.05; done",
    ]);
    let got = collect(&mut child);
    wait_until("USR1", 10, || {
        String::from_utf8_lossy(&got.lock().unwrap()).contains("got USR1\n")
    });
    term(&child);
    let (code, err) = stderr_of(child);
    assert_eq!(code, Some(0), "{err}");

    let out = support::run(&["--alarm", "usr1 signal:10"], Vec::new());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid alarm: usr1 signal:10: signal alarms signal supervised processes"),
        "{err}"
    );
    let out = support::run(&["--alarm", "x signal:99", "--", "true"], Vec::new());
    assert!(String::from_utf8_lossy(&out.stderr).contains("`99` is not a signal number"));
}

#[test]
fn a_command_that_cannot_start_is_one_clear_error() {
    let out = support::run(&["--", "/nonexistent/program", "x"], Vec::new());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot run /nonexistent/program x"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn mules_get_messages_on_stdin_and_one_that_does_not_read_never_blocks() {
    let mut child = bin()
        .args([
            "--mule",
            "while IFS= read -r l; do echo \"mule 1 got: $l\"; done",
            "--mule",
            "exec sleep 1000",
            "--alarm",
            "one mule:1",
            "--alarm",
            "any mule:0",
            "--alarm",
            "stuck mule:2",
            "--log-alarm",
            "one ^job 0[01]",
            "--log-alarm",
            "stuck ^job",
            "--log-alarm",
            "any ^any",
            "--alarm-freq",
            "0",
            // Room for every event: this test is about the mule's pipe, not the alarm queue.
            "--alarm-queue",
            "8192",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let got = collect(&mut child);
    let mut stdin = child.stdin.take().unwrap();
    // 3,000 lines of 100 bytes for the stuck mule: far more than its 64 KiB pipe.
    let t = Instant::now();
    let mut input = String::new();
    for i in 0..3000 {
        input.push_str(&format!("job {i:04} {}\n", "x".repeat(90)));
    }
    input.push_str("any mule will do\n");
    std::io::Write::write_all(&mut stdin, input.as_bytes()).unwrap();
    wait_until("mule 1", 30, || {
        let g = got.lock().unwrap();
        let s = String::from_utf8_lossy(&g);
        s.contains("job 2999 x") && s.contains("mule 1 got: any mule will do")
    });
    assert!(t.elapsed() < Duration::from_secs(30));
    drop(stdin);
    term(&child);
    let (code, err) = stderr_of(child);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("[uwsgi-alarm-mule] alarm \"stuck\": mule 2 is not running or not reading"),
        "{err}"
    );
    let g = got.lock().unwrap();
    let s = String::from_utf8_lossy(&g);
    // 200 messages fit mule 1's pipe: every one arrives (a slower mule would drop some).
    assert_eq!(s.matches("mule 1 got: job ").count(), 200, "every message");
    assert!(s.contains("job 2999 xxx"), "every line passed through");
}

#[test]
fn supervised_processes_end_with_logalarm_when_its_output_breaks() {
    // The daemon writes its pid, then keeps writing; the reader of logalarm's output goes away
    // after the first line: logalarm ends on the broken pipe, and must not leave the daemon
    // running (it did: 100 orphaned daemons after a `| head -c`).
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let daemon = format!(
        "echo $$ > {}; while true; do echo still here; sleep 0.01; done",
        pidfile.display()
    );
    let mut child = spawn_detached(&["--attach-daemon", &daemon, "--alarm-grace", "1"]);
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 11];
    out.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"still here\n");
    drop(out);
    let t = Instant::now();
    let (code, err) = stderr_of(child);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("Broken pipe"), "{err}");
    assert!(err.contains("1 supervised process(es) stopped"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: signal 0 only asks whether the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    assert!(!alive, "the daemon (pid {pid}) outlived logalarm: {err}");
}
