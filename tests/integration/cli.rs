//! The binary, end to end: pass-through, start-up errors, cmd and log actions, signals, output
//! failures. Every test runs the real `logalarm` executable.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::support::{bin, run, spawn_open, wait_for};

fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn pass_through_is_byte_exact_for_any_bytes() {
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut input = Vec::with_capacity(4 << 20);
    while input.len() < 4 << 20 {
        match xorshift(&mut seed) % 8 {
            0 => input.extend_from_slice(b"ERROR something\r\n"),
            1 => input.push(b'\n'),
            2 => input.extend_from_slice(b"\x00\xff\xfe\xc3("),
            _ => input.extend((0..xorshift(&mut seed) % 300).map(|_| xorshift(&mut seed) as u8)),
        }
    }
    input.extend_from_slice(b"no final newline");
    let out = run(
        &[
            "--alarm",
            "a cmd:cat > /dev/null",
            "--log-alarm",
            "a ERROR",
            "--alarm-freq",
            "0",
        ],
        input.clone(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len(), input.len());
    assert!(out.stdout == input, "output differs from input");
}

#[test]
fn standard_input_moved_from_the_reactor_to_a_thread_loses_and_reorders_nothing() {
    // A pipe on standard input is read by the reactor until its matching proves costly, then
    // by a thread (reactor::DIRECT_MAX_NANOS_PER_BYTE): 60 rules without literals whose
    // windows are everywhere (an automaton over every byte, ~2 ns a byte) make 80 MiB costly
    // on any machine (after a trial of 4 MiB, two windows of at most a turn of 16 reads each); every byte must come out once, in order, and every MARK line raise.
    // On one CPU (`taskset`, the first this process may use): with two, matching this costly is shared with the pipeline's
    // helper thread, and standard input then stays with the reactor (no move to test).
    let mut seed = 0x2545f4914f6cdd1du64;
    let mut input = Vec::with_capacity(80 << 20);
    let mut marks = 0;
    let mut n = 0u64;
    while input.len() < 80 << 20 {
        n += 1;
        if xorshift(&mut seed).is_multiple_of(97) {
            marks += 1;
            input.extend_from_slice(format!("MARK {n} raised\n").as_bytes());
        } else {
            let len = 20 + xorshift(&mut seed) % 150;
            input.extend(
                (0..len).map(|_| b"abc def 0123 xyz-_:"[xorshift(&mut seed) as usize % 19]),
            );
            input.push(b'\n');
        }
    }
    let mut args = vec![
        "--alarm".to_string(),
        "a log:".to_string(),
        "--log-alarm".to_string(),
        "a ^MARK \\d+ raised$".to_string(),
        "--alarm-freq".to_string(),
        "0".to_string(),
    ];
    for i in 0..60 {
        args.push("--log-alarm".to_string());
        args.push(format!(
            "a [a-f]{{3}}[0-9]{{{}}}[x-z]{{3}}[a-f]{{2,}}",
            5 + i % 7
        ));
    }
    // The first CPU this process may run on (a container's cpuset need not hold CPU 0).
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let cpu = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .and_then(|l| l.trim().split([',', '-']).next())
        .unwrap_or("0")
        .to_string();
    let mut cmd = std::process::Command::new("taskset");
    cmd.args(["-c", &cpu])
        .arg(crate::support::bin_path())
        .args(&args);
    let out = crate::support::run_cmd(cmd, input.clone());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut passed, mut alarms) = (Vec::with_capacity(input.len()), 0);
    for line in out.stdout.split_inclusive(|&b| b == b'\n') {
        if line.windows(8).any(|w| w == b"ALARM: M") {
            alarms += 1;
        } else {
            passed.extend_from_slice(line);
        }
    }
    assert_eq!(passed.len(), input.len());
    assert!(passed == input, "output differs from input");
    assert_eq!(alarms, marks);
}

#[test]
fn a_100_mb_line_passes_whole_and_alarms_once_on_its_head() {
    let dir = tempfile::tempdir().unwrap();
    let msg = dir.path().join("msg");
    let cmd = format!("a cmd:cat > {}", msg.display());
    let mut line = b"HUGE ".to_vec();
    line.resize(100 << 20, b'x');
    line.extend_from_slice(b" HUGE\nHUGE small\n");
    let out = run(
        &[
            "--alarm",
            &cmd,
            "--log-alarm",
            "a HUGE",
            "--alarm-freq",
            "0",
        ],
        line.clone(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == line, "100 MB line altered");
    // The last alarm to run is the small line's; the big line's message was its first 8192 bytes.
    let got = wait_for(&msg, |b| b == b"HUGE small\n", 5);
    assert_eq!(got, b"HUGE small\n");
}

#[test]
fn the_long_line_message_is_its_head() {
    let dir = tempfile::tempdir().unwrap();
    let msg = dir.path().join("msg");
    let cmd = format!("a cmd:cat > {}", msg.display());
    let mut line = b"HEAD ".to_vec();
    line.resize(1 << 20, b'y');
    line.push(b'\n');
    let out = run(&["--alarm", &cmd, "--log-alarm", "a ^HEAD"], line.clone());
    assert!(out.status.success());
    let got = wait_for(&msg, |b| b.len() == 8192, 5);
    assert_eq!(got, &line[..8192]);
}

#[test]
fn startup_errors_name_option_value_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("bad.ini");
    std::fs::write(&ini, "[uwsgi]\nalarm = a log:\nlog-alarm = a,zz TERRIBLE\n").unwrap();
    let ini_s = ini.to_str().unwrap().to_string();
    let cases: Vec<(Vec<&str>, String)> = vec![
        (vec!["--alarm", "nocolon"], "invalid alarm syntax: nocolon".into()),
        (vec!["--alarm", "a nocolon"], "invalid alarm syntax: a nocolon".into()),
        (vec!["--alarm", "a foo:bar"], "invalid alarm: a foo:bar: unknown alarm type `foo`".into()),
        (vec!["--alarm", "a log:", "--log-alarm", "a,zz TERRIBLE"], "invalid log-alarm: a,zz TERRIBLE: no alarm named \"zz\"".into()),
        (vec!["--alarm", "a log:", "--log-alarm", "nospace"], "invalid log-alarm syntax: nospace".into()),
        (vec!["--alarm", "a log:", "--log-alarm", "a (unclosed"], "invalid log-alarm: a (unclosed: regex error".into()),
        (vec!["--alarm", "a log:", "--log-alarm", "a x(?z)"], "invalid log-alarm: a x(?z): regex error at offset 1: unrecognized character after (?".into()),
        (vec!["--alarm", "a log:", "--not-log-alarm", "zz x"], "invalid not-log-alarm: zz x: no alarm named \"zz\"".into()),
        (vec!["--alarm", "a log:", "--alarm", "a cmd:true"], "invalid alarm: a cmd:true: alarm \"a\" is already defined".into()),
        (vec!["--alarm", "a log:", "--alarm-segfault", "zz"], "invalid alarm-segfault: zz: no alarm named \"zz\"".into()),
        (vec!["--alarm", "a log:", "--alarm-backlog", "zz"], "invalid alarm-backlog: zz: no alarm named \"zz\"".into()),
        (vec!["--alarm-freq", "-1"], "invalid alarm-freq: `-1`: must not be negative".into()),
        (vec!["--alarm-freq", "soon"], "invalid alarm-freq: `soon`: not a whole number".into()),
        (vec!["--alarm-msg-size", "0"], "invalid alarm-msg-size: `0`".into()),
        (vec!["--log-master-bufsize", "x"], "invalid log-master-bufsize: `x`".into()),
        (vec!["--tail-from-start", "/x"], "unexpected argument: /x".into()),
        (vec!["--no-such-option"], "unknown option: --no-such-option".into()),
        (vec!["--alarm"], "option --alarm needs a value".into()),
        (vec!["--ini", "/nonexistent.ini"], "invalid ini: /nonexistent.ini".into()),
        (vec!["--ini", &ini_s], format!("invalid log-alarm: a,zz TERRIBLE: no alarm named \"zz\" (define it with --alarm \"zz TYPE:ARG\") (in {ini_s}:3)")),
        (vec!["--alarm", "m xmpp:a@b;hunter2"], "invalid alarm: m xmpp:a@b;***: no recipient".into()),
        (vec!["--alarm", "m curl:smtp://h;auth_pass=hunter2"], "invalid alarm: m curl:smtp://h;auth_pass=***: an smtp:// or smtps:// alarm needs mail_to".into()),
        (vec!["--alarm", "m curl:http://u:hunter2@h;timeout=soon"], "invalid alarm: m curl:http://u:***@h;timeout=soon: timeout=soon: expected a whole number".into()),
        (vec!["--alarm", "m curl:nosuch://h/;auth_pass=hunter2"], "does not support nosuch://".into()),
        (vec!["--alarm", "m airbrake:errbit.example;apikey=hunter2"], "is not an http:// or https:// URL".into()),
        (vec!["--alarm", "a cmd:true", "--binsh", "/nonexistent/sh"], "invalid binsh: /nonexistent/sh".into()),
        (vec!["--alarm", "a log:", "--alarm-fd", "a 97 msg"], "invalid alarm-fd: a 97: descriptor 97 is not open".into()),
        (vec!["--mule", "cat", "--alarm", "m mule:2"], "invalid alarm: m mule:2: there is 1 mule(s)".into()),
        (vec!["--alarm", "m mule:"], "invalid alarm: m mule:: there are 0 mule(s)".into()),
        (vec!["--alarm", "a log:", "--alarm-backlog", "a"], "invalid alarm-backlog: a: no listen queue to watch".into()),
        (vec!["--watch-socket", "nonsense"], "invalid watch-socket: nonsense: `nonsense` is not HOST:PORT".into()),
        (vec!["--udp", "256.0.0.1:5"], "invalid udp: 256.0.0.1:5".into()),
        (vec!["--alarm-socket", "/nonexistent/dir/s"], "invalid alarm-socket: /nonexistent/dir/s: cannot bind".into()),
        (vec!["--logto", "/nonexistent/dir/log"], "invalid logto: /nonexistent/dir/log".into()),
    ];
    for (args, want) in cases {
        let out = run(&args, Vec::new());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(&want), "{args:?}: got {err:?}, want {want:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line expected: {err}");
        assert!(
            !err.contains("hunter2") && !err.contains("panicked"),
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn cmd_gets_the_line_on_stdin_and_its_output_is_logged_unmatched() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("got");
    let cmd = format!("a cmd:tee {} | sed 's/^/echo: /'", f.display());
    // The rule matches the command's own output too: it must not feed itself.
    let out = run(
        &[
            "--alarm",
            &cmd,
            "--log-alarm",
            "a ERROR",
            "--alarm-freq",
            "0",
        ],
        b"ERROR `rm -rf /` $(x)\nok\n".to_vec(),
    );
    assert!(out.status.success());
    assert_eq!(std::fs::read(&f).unwrap(), b"ERROR `rm -rf /` $(x)\n");
    let s = String::from_utf8(out.stdout).unwrap();
    assert_eq!(s.matches("echo: ERROR").count(), 1, "{s}");
    assert!(
        s.starts_with("ERROR `rm -rf /` $(x)\nok\n") || s.contains("ok\n"),
        "{s}"
    );
}

/// `env` (uWSGI's option) sets a variable every child inherits: a `cmd:` action (through the
/// shell and started directly) and a supervised command; `unenv` removes one. `check` never
/// shows the value.
#[test]
fn env_reaches_every_child_and_is_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let (f, g) = (dir.path().join("f"), dir.path().join("g"));
    let ini = dir.path().join("a.ini");
    std::fs::write(
        &ini,
        format!(
            "[uwsgi]\nenv = LOGALARM_TEST_TOKEN=s3cr3t-token\nenv = HOME=/logalarm-home\nunenv = HOME\nalarm = a cmd:echo \"$LOGALARM_TEST_TOKEN:${{HOME-unset}}\" > {}\nalarm = b cmd:printenv LOGALARM_TEST_TOKEN\nlog-alarm = a,b ERROR\n",
            f.display()
        ),
    )
    .unwrap();
    let out = run(
        &[
            "--ini",
            ini.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            &format!(
                "echo ERROR; echo \"$LOGALARM_TEST_TOKEN\" > {}",
                g.display()
            ),
        ],
        Vec::new(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "s3cr3t-token:unset\n");
    assert_eq!(std::fs::read_to_string(&g).unwrap(), "s3cr3t-token\n");
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("s3cr3t-token\n"),
        "printenv's output is logged: {s}"
    );
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_logalarm"))
        .args(["check", "--ini", ini.to_str().unwrap()])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{s}");
    assert!(
        s.contains("env = LOGALARM_TEST_TOKEN=***") && !s.contains("s3cr3t"),
        "{s}"
    );
}

/// Plain commands start without the shell; what the shell would have done is kept: a long
/// message (over a pipe's first page) reaches a plain command whole, quoting is the shell's,
/// and a program that cannot start is reported by the shell in the log as before.
#[test]
fn plain_cmd_commands_behave_as_through_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("got");
    let long = format!("ERROR {}\n", "x".repeat(6000));
    let out = run(
        &[
            "--alarm",
            &format!("a cmd:tee '{}'", f.display()),
            "--alarm",
            "b cmd:/nonexistent/notify -s 'a b'",
            "--log-alarm",
            "a,b ERROR",
            "--alarm-freq",
            "0",
            "--log-master-bufsize",
            "8192",
        ],
        long.clone().into_bytes(),
    );
    assert!(out.status.success());
    assert_eq!(std::fs::read(&f).unwrap(), long.as_bytes());
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(
        s.contains("/nonexistent/notify: not found"),
        "the shell's own message: {s}"
    );
}

#[test]
fn log_alarm_writes_uwsgi_format_lines() {
    let out = run(
        &[
            "--alarm",
            "a log:DISK",
            "--alarm",
            "b log:",
            "--log-alarm",
            "a,b full",
        ],
        b"disk full\n".to_vec(),
    );
    let s = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines[0], "disk full");
    assert!(lines[1].ends_with(" - ALARM: DISK disk full"), "{s}");
    assert!(lines[2].ends_with(" - ALARM: disk full"), "{s}");
    assert_eq!(lines[1].len(), 24 + " - ALARM: DISK disk full".len());
}

#[test]
fn slow_cmd_actions_never_slow_pass_through() {
    let mut input = Vec::new();
    for i in 0..100_000 {
        input.extend_from_slice(format!("line {i} ERROR\n").as_bytes());
    }
    let start = Instant::now();
    let mut child = spawn_open(&[
        "--alarm",
        "a cmd:sleep 5",
        "--log-alarm",
        "a ERROR",
        "--alarm-grace",
        "1",
    ]);
    let mut stdin = child.stdin.take().unwrap();
    let feed = input.clone();
    let w = std::thread::spawn(move || stdin.write_all(&feed));
    let mut stdout = child.stdout.take().unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    while got.len() < input.len() {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    // Every line was out before the first `sleep 5` could have ended: nothing waited on it.
    let elapsed = start.elapsed();
    assert!(got == input, "output differs");
    assert!(
        elapsed < Duration::from_secs(5),
        "pass-through waited for actions: {elapsed:?}"
    );
    w.join().unwrap().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dropped"), "drops must be reported: {err}");
}

#[test]
fn full_queue_drops_are_counted_and_reported() {
    let mut input = Vec::new();
    for i in 0..5000 {
        input.extend_from_slice(format!("E {i}\n").as_bytes());
    }
    let out = run(
        &[
            "--alarm",
            "a cmd:true",
            "--log-alarm",
            "a ^E",
            "--alarm-queue",
            "1",
            "--alarm-grace",
            "0",
        ],
        input.clone(),
    );
    assert!(out.status.success());
    assert!(out.stdout == input);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[uwsgi-alarm] queue of alarm \"a\" full:"),
        "{err}"
    );
    assert!(
        err.lines()
            .filter(|l| l.contains("queue of alarm \"a\" full"))
            .count()
            < 20,
        "not rate limited: {err}"
    );
}

#[test]
fn sigterm_writes_what_was_read_runs_queued_alarms_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("alarms");
    let cmd = format!("a cmd:cat >> {}", f.display());
    let mut child = spawn_open(&["--alarm", &cmd, "--log-alarm", "a ^go", "--alarm-freq", "0"]);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"go 1\nother\ngo 2\n").unwrap();
    stdin.flush().unwrap();
    let got = wait_for(&f, |b| b.len() == 10, 5);
    // Each run is its own process (as in uWSGI), so the two records may land in either order.
    let mut records: Vec<&[u8]> = got.split_inclusive(|&b| b == b'\n').collect();
    records.sort();
    assert_eq!(records, [&b"go 1\n"[..], &b"go 2\n"[..]]);
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"go 1\nother\ngo 2\n");
    drop(stdin);
}

#[test]
fn logto_is_reopened_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let mut child = spawn_open(&["--logto", log.to_str().unwrap()]);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"one\n").unwrap();
    assert_eq!(wait_for(&log, |b| b == b"one\n", 5), b"one\n");
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(200));
    stdin.write_all(b"two\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&log).unwrap(), b"two\n");
    assert_eq!(
        std::fs::read(dir.path().join("app.log.1")).unwrap(),
        b"one\n"
    );
}

#[test]
fn closed_output_is_one_clear_error() {
    let mut child = spawn_open(&[]);
    drop(child.stdout.take());
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(b"a line\n");
    let _ = stdin.write_all(&vec![b'x'; 1 << 20]);
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot write log output standard output") && err.contains("Broken pipe"),
        "{err}"
    );
}

#[test]
fn alarm_list_masks_secrets() {
    let out = run(
        &[
            "--alarm",
            "a log:",
            "--alarm",
            "b cmd:mail root",
            "--alarm-list",
        ],
        Vec::new(),
    );
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(
        s.contains("cmd") && s.contains("xmpp") && s.contains("b cmd:mail root"),
        "{s}"
    );
    let out = run(
        &[
            "--alarm",
            "m curl:smtp://u:pw@h;auth_pass=hunter2",
            "--alarms-list",
        ],
        Vec::new(),
    );
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("auth_pass=***") && !s.contains("hunter2") && !s.contains(":pw@"),
        "{s}"
    );
}

#[test]
fn help_documents_every_option() {
    let out = run(&["--help"], Vec::new());
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    for opt in logalarm::testing::OPTIONS {
        assert!(s.contains(&format!("--{}", opt.name)), "{}", opt.name);
    }
}

#[test]
fn a_slow_reader_gets_every_byte_and_memory_stays_bounded() {
    let mut input = Vec::new();
    let mut i = 0;
    while input.len() < 64 << 20 {
        input.extend_from_slice(format!("{i} some log line with ERROR sometimes\n").as_bytes());
        i += 1;
    }
    let mut child = spawn_open(&["--alarm", "a cmd:true", "--log-alarm", "a ^1234 "]);
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let feed = input.clone();
    let w = std::thread::spawn(move || stdin.write_all(&feed));
    let mut stdout = child.stdout.take().unwrap();
    // Read slowly: logalarm must wait for us (back-pressure), not buffer or drop.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut max_rss_kb = 0u64;
    loop {
        std::thread::sleep(Duration::from_millis(5));
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(l) = status.lines().find(|l| l.starts_with("VmRSS:")) {
                let kb: u64 = l
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                max_rss_kb = max_rss_kb.max(kb);
            }
        }
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    w.join().unwrap().unwrap();
    assert!(child.wait().unwrap().success());
    assert!(got == input, "bytes lost or altered under back-pressure");
    // Bounded: far below the 64 MiB that went through (buffers are fixed-size).
    assert!(max_rss_kb < 48 * 1024, "RSS grew to {max_rss_kb} KiB");
}

#[test]
fn dev_null_on_stdin_is_an_empty_input() {
    let out = bin()
        .args(["--alarm", "a log:A", "--log-alarm", "a x"])
        .stdin(std::fs::File::open("/dev/null").unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn regular_file_on_stdin_works() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("in.log");
    std::fs::write(&p, b"x ERROR\ny\n").unwrap();
    let out = bin()
        .args(["--alarm", "a log:A", "--log-alarm", "a ERROR"])
        .stdin(std::fs::File::open(&p).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(
        s.starts_with("x ERROR\ny\n") && s.contains("ALARM: A x ERROR"),
        "{s}"
    );
}

#[test]
fn a_pathological_rule_is_named_at_start_up_and_by_check_rules() {
    let bad = "a (a|b)*a(a|b){20}c";
    let out = crate::support::run(
        &[
            "--alarm",
            "a log:",
            "--log-alarm",
            bad,
            "--log-alarm",
            "a ERROR",
        ],
        b"ok\n".to_vec(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: log-alarm a (a|b)*a(a|b){20}c: its lazy DFA thrashes"),
        "{err}"
    );
    assert!(!err.contains("a ERROR"), "{err}");
    let out = crate::support::run(
        &[
            "--alarm",
            "a log:",
            "--log-alarm",
            bad,
            "--log-alarm",
            "a ERROR",
            "--check-rules",
        ],
        Vec::new(),
    );
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("PATHOLOGICAL"), "{text}");
    assert!(
        text.contains("log-alarm a ERROR\n    engine: ") && text.contains("ok, "),
        "{text}"
    );
    let out = crate::support::run(
        &[
            "--alarm",
            "a log:",
            "--log-alarm",
            "a ERROR",
            "--check-rules",
        ],
        Vec::new(),
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn a_raw_byte_in_a_rule_is_that_byte_in_the_ini_and_on_the_command_line() {
    // uWSGI compiles rules without UTF mode: a Latin-1 é in the ini is the byte E9.
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("latin1.ini");
    std::fs::write(
        &ini,
        b"[uwsgi]\nalarm = a log:HIT\nlog-alarm = a ^caf\xe9$\n",
    )
    .unwrap();
    let input = b"caf\xe9\ncafe\ncaf\xc3\xa9\n".to_vec();
    let out = run(&["--ini", ini.to_str().unwrap()], input.clone());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hits: Vec<&[u8]> = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| l.windows(4).any(|w| w == b"HIT "))
        .collect();
    assert_eq!(hits.len(), 1, "{:?}", String::from_utf8_lossy(&out.stdout));
    assert!(hits[0].ends_with(b"HIT caf\xe9"));
    // The same byte given on the command line.
    use std::os::unix::ffi::OsStrExt;
    let rule = std::ffi::OsStr::from_bytes(b"a ^caf\xe9$");
    let out = crate::support::bin()
        .arg("--alarm")
        .arg("a log:HIT")
        .arg("--log-alarm")
        .arg(rule)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(&input)?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = out.stdout.windows(4).filter(|w| w == b"HIT ").count();
    assert_eq!(n, 1);
    // Anywhere else a raw byte is an error naming the line.
    std::fs::write(&ini, b"[uwsgi]\nalarm = a cmd:echo \xe9\n").unwrap();
    let out = run(&["--ini", ini.to_str().unwrap()], Vec::new());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2: not UTF-8"));
}

/// A large rule set with rules of every kind the literal search and the DFA part take
/// (plain literals, groups sharing a literal, automata, a heavy rule, PCRE look-behind, short
/// literals, no literal), each raising its own alarm, and lines for all of them: the ini file.
fn large_rule_set(dir: &std::path::Path, variant: usize) -> (std::path::PathBuf, Vec<u8>) {
    let mut ini = String::from("[uwsgi]\nalarm-freq = 0\n");
    let mut rules = Vec::new();
    for i in 0..300 {
        rules.push(format!("event{i}x{variant} failed"));
    }
    for i in 0..40 {
        rules.push(format!("user{i} [0-9]+ denied"));
        rules.push(format!("user{i} [a-z]+ denied"));
    }
    rules.push("bigrule (ab){1500}".to_string());
    rules.push(r"(?<!no )disk full on \S+".to_string());
    rules.push(r"su\[[0-9]+\]: x".to_string());
    rules.push(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}:[0-9]+".to_string());
    rules.push(r"\b[A-Z][A-Z0-9_]{7,}\b".to_string());
    for (i, r) in rules.iter().enumerate() {
        ini.push_str(&format!(
            "alarm = r{i} log:rule {i}\nlog-alarm = r{i} {r}\n"
        ));
    }
    let path = dir.join(format!("rules{variant}.ini"));
    std::fs::write(&path, ini).unwrap();
    let mut input = String::new();
    for i in (0..300).step_by(7) {
        input.push_str(&format!(
            "an event{i}x{variant} failed here\nevent{i}x9 failed\n"
        ));
    }
    for i in (0..40).step_by(3) {
        input.push_str(&format!(
            "user{i} 42 denied\nuser{i} bob denied\nuser{i} B0b denied\n"
        ));
    }
    input.push_str(&format!("bigrule {}\n", "ab".repeat(1500)));
    input.push_str("disk full on /var\nno disk full on /tmp\n");
    input.push_str("su[12]: x\nsu[]: x\n10.0.0.1:8080 up\nERROR_CODE_42 seen\nnothing here\n");
    (path, input.into_bytes())
}

/// The output with the dates of `log:` alarm lines cut, in order of bytes (the alarm lines
/// come from their lanes), and stderr.
fn sorted_output(args: &[&str], input: &[u8]) -> (Vec<String>, String) {
    let out = run(args, input.to_vec());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_once(" - ").map_or(l, |(_, rest)| rest).to_string())
        .collect();
    lines.sort();
    (lines, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The files in the rules cache directory `cache` whose names start with `prefix`.
fn cache_files(cache: &std::path::Path, prefix: &str) -> usize {
    std::fs::read_dir(cache).map_or(0, |d| {
        d.flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
            .count()
    })
}

#[test]
fn a_large_sets_probe_verdicts_are_kept_for_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let cache_arg = cache.to_str().unwrap();
    let (ini, input) = large_rule_set(dir.path(), 0);
    let mut text = std::fs::read_to_string(&ini).unwrap();
    text.push_str("alarm = bad log:bad\nlog-alarm = bad (a|b)*a(a|b){20}c\n");
    std::fs::write(&ini, text).unwrap();
    let ini = ini.to_str().unwrap();
    let warning = |err: &str| -> String {
        err.lines()
            .filter(|l| l.contains("thrashes"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let probes = || cache_files(&cache, "probe-");
    let (want, off) = sorted_output(&["--ini", ini, "--rules-cache", "off"], &input);
    assert!(
        warning(&off).contains("log-alarm bad (a|b)*a(a|b){20}c: its lazy DFA thrashes"),
        "{off}"
    );
    let (cold, first) = sorted_output(&["--ini", ini, "--rules-cache", cache_arg], &input);
    assert_eq!(probes(), 1, "the first start keeps the probe's verdicts");
    let (warm, second) = sorted_output(&["--ini", ini, "--rules-cache", cache_arg], &input);
    assert_eq!(probes(), 1);
    assert_eq!(cold, want);
    assert_eq!(warm, want);
    // The same warning, its speed the first start's (a new probe measures anew).
    assert!(warning(&first).contains("thrashes"), "{first}");
    assert_eq!(warning(&second), warning(&first));
}

#[test]
fn the_rules_cache_starts_large_sets_alike_and_only_for_the_same_rules() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let cache_arg = cache.to_str().unwrap();
    let (ini, input) = large_rule_set(dir.path(), 0);
    let ini = ini.to_str().unwrap();
    let (want, _) = sorted_output(&["--ini", ini, "--rules-cache", "off"], &input);
    let alarms = want
        .iter()
        .filter(|l| l.starts_with("ALARM: rule "))
        .count();
    // 43 + 14 * 2 + 1 + 1 + 1 + 1 + 1 lines raise an alarm each (the cut above keeps "ALARM:").
    assert_eq!(alarms, 43 + 28 + 5, "{want:?}");
    assert!(!cache.exists(), "off writes nothing");
    let cold = sorted_output(&["--ini", ini, "--rules-cache", cache_arg], &input);
    let records = || cache_files(&cache, "rules-");
    assert_eq!(records(), 1, "the first start writes its record");
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let warm = sorted_output(&["--ini", ini, "--rules-cache", cache_arg], &input);
    assert_eq!(cold.0, want);
    assert_eq!(warm.0, want, "a start from the cache matches alike");
    assert!(!warm.1.contains("rules cache"), "{}", warm.1);
    // Other rules (one literal changed in 300): another record, their own lines.
    let (ini1, input1) = large_rule_set(dir.path(), 1);
    let ini1 = ini1.to_str().unwrap();
    let (want1, _) = sorted_output(&["--ini", ini1, "--rules-cache", "off"], &input1);
    let first = sorted_output(&["--ini", ini1, "--rules-cache", cache_arg], &input1);
    let again = sorted_output(&["--ini", ini1, "--rules-cache", cache_arg], &input1);
    assert_eq!(records(), 2);
    assert_eq!(first.0, want1);
    assert_eq!(again.0, want1);
    assert_ne!(want1, want);
    // A cache others may write is not used, and logalarm says so.
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let open = sorted_output(&["--ini", ini, "--rules-cache", cache_arg], &input);
    assert_eq!(open.0, want);
    assert!(open.1.contains("writable by others"), "{}", open.1);
}
