//! What logalarm must not lose when it is stopped: every byte it read from standard input is
//! written before it exits (SIGTERM and SIGINT mid-stream, fast and slow outputs).
//!
//! The input pipe's read end is kept open here too, so the bytes logalarm never read can be
//! counted after it exits: bytes written into the pipe = bytes logalarm wrote out + bytes left
//! in the pipe, exactly, and what it wrote out is the input's prefix.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Line `i` of the input: distinct, so a lost or repeated range shows.
fn line(i: u64) -> String {
    format!("{i:012} ERROR something happened in worker {}\n", i % 97)
}

fn stop_mid_stream(sig: i32, slow_output: bool) {
    let (read_end, mut write_end) = std::io::pipe().unwrap();
    let mut child = crate::support::bin()
        // A rule that matches no line: a stop mid-line leaves a partial last line, and one that
        // raised a `log:` alarm would get a newline of its own (the alarm line must not join it).
        .args(["--alarm", "a log:A", "--log-alarm", "a NO SUCH LINE"])
        .stdin(Stdio::from(read_end.try_clone().unwrap()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The writer: lines until told to stop; what it wrote is the input.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sent = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut chunk = String::new();
                for _ in 0..256 {
                    chunk.push_str(&line(i));
                    i += 1;
                }
                if write_end.write_all(chunk.as_bytes()).is_err() {
                    break;
                }
                sent.extend_from_slice(chunk.as_bytes());
            }
            sent
        })
    };
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
            if slow_output {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        out
    });
    std::thread::sleep(Duration::from_millis(700));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, sig) };
    let t = Instant::now();
    let status = child.wait().unwrap();
    let out = reader.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    // Unblock the writer (the pipe may be full) and count what logalarm never read.
    let mut left = Vec::new();
    let fd = read_end.as_raw_fd();
    let mut r = read_end;
    // SAFETY: `fd` is our open read end.
    unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) };
    let mut buf = vec![0u8; 1 << 20];
    let sent = loop {
        match r.read(&mut buf) {
            Ok(n) if n > 0 => left.extend_from_slice(&buf[..n]),
            _ => {
                if writer.is_finished() {
                    // Whatever the writer put in after its last chunk.
                    while let Ok(n) = r.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        left.extend_from_slice(&buf[..n]);
                    }
                    break writer.join().unwrap();
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status:?}: {stderr}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "stopped in {:?}",
        t.elapsed()
    );
    // The output is the input, in order, nothing missing.
    let passed = out;
    assert!(passed.len() > 1 << 20, "only {} bytes out", passed.len());
    assert!(
        sent.starts_with(&passed),
        "the output is not the input's prefix ({} bytes out)",
        passed.len()
    );
    assert_eq!(
        passed.len() + left.len(),
        sent.len(),
        "read but never written: {} bytes (sent {}, written {}, left in the pipe {})",
        sent.len() - passed.len() - left.len(),
        sent.len(),
        passed.len(),
        left.len()
    );
}

#[test]
fn sigterm_mid_stream_writes_everything_read_fast_output() {
    stop_mid_stream(libc::SIGTERM, false);
}

#[test]
fn sigterm_mid_stream_writes_everything_read_slow_output() {
    stop_mid_stream(libc::SIGTERM, true);
}

#[test]
fn sigint_mid_stream_writes_everything_read() {
    stop_mid_stream(libc::SIGINT, true);
}

#[test]
fn sigusr1_and_sigusr2_do_not_kill_it() {
    let mut child = crate::support::spawn_open(&["--alarm", "a log:A", "--log-alarm", "a ERROR"]);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"before\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    for sig in [libc::SIGUSR1, libc::SIGUSR2] {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, sig) };
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(child.try_wait().unwrap().is_none(), "still running");
    stdin.write_all(b"ERROR after\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(err.contains("SIGUSR1 received: ignored"), "{err}");
    assert!(err.contains("SIGUSR2 received: ignored"), "{err}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("before\nERROR after\n"), "{text}");
    assert!(text.contains(" - ALARM: A ERROR after"), "{text}");
}

#[test]
fn a_closed_standard_output_is_an_exit_status_not_a_panic() {
    for args in [
        &["--version"][..],
        &["--help"],
        &["--alarm", "a log:", "--alarm-list"],
    ] {
        let (r, w) = std::io::pipe().unwrap();
        drop(r);
        let out = crate::support::bin()
            .args(args)
            .stdout(Stdio::from(w))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn passwords_stay_out_of_listings_and_errors_whatever_they_hold() {
    for alarm in [
        "x xmpp:a@localhost;pa=ss;b@localhost",
        "m curl http://user:hunter2pw@host/x",
    ] {
        for extra in [&["--alarm-list"][..], &[]] {
            let out = crate::support::bin()
                .args(["--alarm", alarm])
                .args(extra)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                !all.contains("pa=ss") && !all.contains("hunter2pw"),
                "{alarm} {extra:?}: {all}"
            );
        }
    }
}

/// The owner of `/proc/PID/environ`: the process's user, or root when it is not dumpable.
fn proc_owner(pid: u32) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/environ"))
        .unwrap()
        .uid()
}

#[test]
fn a_process_holding_secrets_is_not_dumpable() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 || Command::new("setpriv").arg("--version").output().is_err()
    {
        assert!(std::env::var_os("CI").is_none(), "needs root and setpriv");
        return;
    }
    // A copy of the binary that user nobody can run.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("logalarm");
    std::fs::copy(crate::support::bin_path(), &bin).unwrap();
    let owner_with = |alarm: &str| {
        let mut child = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .args(["--alarm", alarm])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let owner = proc_owner(child.id());
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        owner
    };
    assert_eq!(
        owner_with("a log:A"),
        65534,
        "no secrets: an ordinary process"
    );
    assert_eq!(
        owner_with("m curl:http://127.0.0.1:9/x;auth_user=u;auth_pass=s3cret"),
        0,
        "holding a password: not dumpable"
    );
}

#[test]
fn a_log_alarm_of_a_long_line_comes_after_the_line_never_inside_it() {
    // Lines of 5 MB and 3 MB (longer than the 1 MiB buffer: passed in pieces, their alarm
    // raised from their head), a short line between and after them.
    let mut input = Vec::new();
    for (len, tail) in [(5usize << 20, "one"), (3 << 20, "two")] {
        input.extend_from_slice(b"ERROR big ");
        input.resize(input.len() + len, b'x');
        input.extend_from_slice(format!(" {tail}\nshort line\n").as_bytes());
    }
    let out = crate::support::run(
        &[
            "--alarm",
            "a log:A",
            "--log-alarm",
            "a ^ERROR big",
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
    let lines: Vec<&[u8]> = out.stdout.split_inclusive(|&b| b == b'\n').collect();
    let is_alarm = |l: &[u8]| memchr::memmem::find(l, b" - ALARM: A ERROR big ").is_some();
    let shape: Vec<String> = lines
        .iter()
        .map(|l| {
            if is_alarm(l) {
                "ALARM".to_string()
            } else {
                format!("{} bytes", l.len())
            }
        })
        .collect();
    assert_eq!(lines.iter().filter(|l| is_alarm(l)).count(), 2, "{shape:?}");
    let passed: Vec<u8> = lines
        .iter()
        .filter(|l| !is_alarm(l))
        .flat_map(|l| l.iter().copied())
        .collect();
    assert!(passed == input, "the input was altered: {shape:?}");
    // Each alarm line comes after the line that raised it: right after it when the alarm ran
    // while the line was still being written, later when the lane ran after its end.
    let alarms: Vec<usize> = (0..lines.len()).filter(|&i| is_alarm(lines[i])).collect();
    let two = lines.iter().position(|l| l.ends_with(b" two\n")).unwrap();
    assert!(lines[0].ends_with(b" one\n") && alarms[0] >= 1, "{shape:?}");
    assert!(alarms[1] > two, "{shape:?}");
}

#[test]
fn log_alarms_are_never_dropped_whatever_the_rate() {
    // 200,000 matching lines, most of them in reads far larger than the 1,024-event queue.
    let n = 200_000;
    let mut input = Vec::new();
    for i in 0..n {
        input.extend_from_slice(format!("ERROR {i}\n").as_bytes());
    }
    let out = crate::support::run(
        &[
            "--alarm",
            "a log:A",
            "--log-alarm",
            "a ^ERROR",
            "--alarm-freq",
            "0",
        ],
        input.clone(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("alarm(s) dropped"), "{err}");
    let text = String::from_utf8_lossy(&out.stdout);
    let alarms = text
        .lines()
        .filter(|l| l.contains(" - ALARM: A ERROR "))
        .count();
    assert_eq!(alarms, n, "{err}");
    let passed: String = text
        .lines()
        .filter(|l| !l.contains(" - ALARM: "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(passed.as_bytes() == input, "the log stream was altered");
    assert!(err.contains("200000 alarms raised, 200000 ran"), "{err}");
}

#[test]
fn commands_still_running_after_the_grace_period_are_killed_their_output_kept() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    // The command writes a line, then would sleep for a minute (in a child of its shell).
    let alarm = format!(
        "a cmd:echo started; echo $$ > {}; sleep 60; echo never",
        pidfile.display()
    );
    let t = Instant::now();
    let out = crate::support::run(
        &[
            "--alarm",
            &alarm,
            "--log-alarm",
            "a ERROR",
            "--alarm-grace",
            "1",
        ],
        b"ERROR one\n".to_vec(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(
        err.contains("1 cmd alarm command(s) still running after the grace period: killed"),
        "{err}"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("started\n") && !text.contains("never"),
        "{text}"
    );
    // Its shell and the sleep it started are gone.
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let running = group_members_running(pid);
    assert!(
        running.is_empty(),
        "still running in group {pid}: {running:?}"
    );
}

/// The processes of process group `pgrp` that are not zombies (a killed process whose parent
/// is gone may wait a while to be reaped): (pid, state, command).
fn group_members_running(pgrp: i32) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...: fields after the last ')'.
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if fields.len() > 2 && fields[2] == pgrp.to_string() && fields[0] != "Z" {
            found.push(stat[..close + 1].to_string() + " " + fields[0]);
        }
    }
    found
}

#[test]
fn soak_200_mb_stream_intact_every_alarm_accounted_rss_flat() {
    // scripts/soak.sh at 200 MB: a supervised process writes real log lines, 100 rules raise
    // every local action kind; the script checks the stream's sha256, the per-alarm accounting
    // and the RSS samples, and exits non-zero when one fails.
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/soak.sh"))
        .arg("200M")
        .env("LOGALARM", crate::support::bin_path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("soak: stream intact"), "{text}");
    assert!(text.contains("soak: alarm logged: raised "), "{text}");
}
