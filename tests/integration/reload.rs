//! Live reload (SIGHUP, `logalarm reload`): new rules and alarms without a restart, nothing lost
//! from the stream, anti-flood state kept for unchanged alarms, a broken configuration refused.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{bin, signal, wait_until};

/// logalarm's standard error, line by line, as it comes.
fn stderr_lines(child: &mut Child) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let err = child.stderr.take().unwrap();
    let l = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            l.lock().unwrap().push(line);
        }
    });
    lines
}

fn said(lines: &Arc<Mutex<Vec<String>>>, what: &str) -> Option<String> {
    lines
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains(what))
        .cloned()
}

#[test]
fn sighup_swaps_rules_at_a_line_boundary_under_a_fast_stream() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("alarms.ini");
    // Before: lines whose number is an even thousand; after: an odd thousand.
    std::fs::write(
        &ini,
        "[uwsgi]\nalarm = a log:A\nlog-alarm = a seq=\\d*[02468]000 p\nalarm-freq = 0\n",
    )
    .unwrap();
    let mut child = bin()
        .args(["--ini", ini.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = stderr_lines(&mut child);
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).unwrap();
        out
    });
    // The stream: numbered lines written as fast as the pipe takes them.
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (s, st) = (sent.clone(), stop.clone());
    let began = std::time::Instant::now();
    let writer = std::thread::spawn(move || {
        let mut n = 0u64;
        let mut buf = Vec::with_capacity(1 << 20);
        while !st.load(Ordering::Relaxed) || n < 1_000_000 {
            buf.clear();
            for _ in 0..20_000 {
                writeln!(buf, "seq={n} payload-{:08}", n * 7).unwrap();
                n += 1;
            }
            stdin.write_all(&buf).unwrap();
            s.store(n, Ordering::Relaxed);
            if n >= 6_000_000 {
                break;
            }
        }
        drop(stdin);
        n
    });
    wait_until("a million lines sent", 30, || {
        sent.load(Ordering::Relaxed) >= 1_000_000
    });
    std::fs::write(
        &ini,
        "[uwsgi]\nalarm = a log:A\nlog-alarm = a seq=\\d*[13579]000 p\nalarm-freq = 0\n",
    )
    .unwrap();
    signal(&child, libc::SIGHUP);
    wait_until("the reload reported", 20, || {
        said(&err, "SIGHUP: ").is_some()
    });
    stop.store(true, Ordering::Relaxed);
    let total = writer.join().unwrap();
    let secs = began.elapsed().as_secs_f64();
    assert!(child.wait().unwrap().success());
    let out = reader.join().unwrap();
    let report = said(&err, "SIGHUP: ").unwrap();
    assert!(report.contains("reloaded: 1 rule(s)"), "{report}");
    let boundary: u64 = report
        .split("stdin at byte ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no boundary in: {report}"));
    // Every line passed, in order; alarms by the old rule before the boundary, by the new one
    // from it on.
    let mut expect = 0u64;
    let mut at = 0u64;
    let mut alarms = Vec::new();
    let mut line_at = std::collections::HashMap::new();
    for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let text = std::str::from_utf8(line).unwrap();
        if let Some((_, msg)) = text.split_once(" - ALARM: A ") {
            alarms.push(msg.to_string());
            continue;
        }
        let n: u64 = text
            .strip_prefix("seq=")
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a stream line: {text}"));
        assert_eq!(n, expect, "a line lost or out of order");
        line_at.insert(n, at);
        at += line.len() as u64 + 1;
        expect += 1;
    }
    assert_eq!(expect, total, "every line passed");
    // The rate the stream ran at (the harness, which reads the output too, is the limit).
    eprintln!(
        "reload under a stream: {total} lines, {} bytes in {secs:.2} s = {:.0} MB/s",
        at,
        at as f64 / secs / 1e6
    );
    let want: Vec<String> = (0..total)
        .filter(|n| n % 1000 == 0 && *n > 0)
        .filter(|n| {
            let odd = (n / 1000) % 2 == 1;
            if line_at[n] < boundary {
                !odd
            } else {
                odd
            }
        })
        .map(|n| format!("seq={n} payload-{:08}", n * 7))
        .collect();
    let before = want.iter().filter(|w| {
        let n: u64 = w[4..w.find(' ').unwrap()].parse().unwrap();
        line_at[&n] < boundary
    });
    assert!(before.count() > 100, "alarms before the reload");
    assert_eq!(alarms.len(), want.len(), "alarms raised");
    if let Some(i) = (0..want.len()).find(|&i| alarms[i] != want[i]) {
        panic!(
            "alarm {i}: {:?}, expected {:?} (boundary at byte {boundary})",
            alarms[i], want[i]
        );
    }
}

#[test]
fn reload_through_the_socket_keeps_anti_flood_and_refuses_a_broken_config() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("alarms.ini");
    let sock = dir.path().join("alarm.sock");
    std::fs::write(
        &ini,
        "[uwsgi]\nalarm = a log:A\nalarm = c log:C\nlog-alarm = a ERROR\nlog-alarm = c CRIT\nalarm-freq = 60\n",
    )
    .unwrap();
    let mut child = bin()
        .args([
            "--ini",
            ini.to_str().unwrap(),
            "--metrics",
            "127.0.0.1:0",
            "--alarm-socket",
        ])
        .arg(&sock)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = stderr_lines(&mut child);
    let mut stdin = child.stdin.take().unwrap();
    wait_until("the socket", 10, || sock.exists());
    let reload = || {
        bin()
            .args(["reload", "--socket"])
            .arg(&sock)
            .output()
            .unwrap()
    };
    let send = |stdin: &mut std::process::ChildStdin, l: &str| {
        writeln!(stdin, "{l}").unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(300));
    };
    send(&mut stdin, "ERROR x");
    send(&mut stdin, "CRIT y");
    // Unchanged: nothing reloaded.
    let out = reload();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "configuration unchanged: nothing reloaded"
    );
    // `a` unchanged (its anti-flood remembers "ERROR x"), `c` changed (a new prefix), `b` added.
    std::fs::write(
        &ini,
        "[uwsgi]\nalarm = a log:A\nalarm = c log:C2\nalarm = b log:B\nlog-alarm = a ERROR\nlog-alarm = c CRIT\nlog-alarm = b WARN\nalarm-freq = 60\n",
    )
    .unwrap();
    let out = reload();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("alarms kept 1, added b, changed c, removed none"),
        "{text}"
    );
    send(&mut stdin, "ERROR x");
    send(&mut stdin, "CRIT y");
    send(&mut stdin, "WARN z");
    // Broken: refused with file:line, the running configuration goes on.
    std::fs::write(&ini, "[uwsgi]\nalarm = a log:A\nlog-alarm = a ERROR(\n").unwrap();
    let out = reload();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text.contains("reload refused, the running configuration is kept")
            && text.contains(&format!("{}:3", ini.display())),
        "{text}"
    );
    send(&mut stdin, "WARN w");
    // A change that needs a restart is named, the rest applies.
    std::fs::write(
        &ini,
        "[uwsgi]\nalarm = a log:A\nalarm = c log:C2\nalarm = b log:B\nlog-alarm = a ERROR\nlog-alarm = c CRIT\nlog-alarm = b WARN|NOTE\nalarm-freq = 60\nalarm-queue = 99\n",
    )
    .unwrap();
    signal(&child, libc::SIGHUP);
    wait_until("the SIGHUP reload", 10, || said(&err, "SIGHUP: ").is_some());
    let hup = said(&err, "SIGHUP: ").unwrap();
    assert!(
        hup.contains("changed but applied only at the next start: alarm-queue"),
        "{hup}"
    );
    send(&mut stdin, "NOTE n");
    // Per-rule metrics follow the reloads: a rule kept by its text keeps its count.
    let addr = said(&err, "metrics served on http://")
        .and_then(|l| {
            l.split("http://")
                .nth(1)
                .map(|a| a.trim_end_matches("/metrics").to_string())
        })
        .unwrap();
    let want = [
        ("rule=\"log-alarm a ERROR\"} ", 2),
        ("rule=\"log-alarm c CRIT\"} ", 2),
        ("rule=\"log-alarm b WARN|NOTE\"} ", 1),
    ];
    let count = |scrape: &str, series: &str| {
        scrape
            .lines()
            .find(|l| l.contains(series))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_string)
    };
    // (The last line may still be on its way: scraped again until it is counted.)
    let mut scrape = String::new();
    wait_until("the rules' counts", 10, || {
        let mut conn = std::net::TcpStream::connect(&addr).unwrap();
        write!(conn, "GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        scrape.clear();
        conn.read_to_string(&mut scrape).unwrap();
        want.iter()
            .all(|(series, n)| count(&scrape, series) == Some(n.to_string()))
    });
    for (series, n) in want {
        let got = count(&scrape, series).unwrap_or_else(|| panic!("no {series} in {scrape}"));
        assert_eq!(got, n.to_string(), "{series}");
    }
    drop(stdin);
    // The alarm socket keeps logalarm running after its input ends: SIGTERM ends it.
    signal(&child, libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    // (Once in a CI-profile run the exit was not a success: say how it ended, with stderr.)
    if !out.status.success() {
        std::thread::sleep(std::time::Duration::from_millis(200));
        panic!(
            "logalarm ended with {:?} after SIGTERM; stderr:\n{}",
            out.status,
            err.lock().unwrap().join("\n")
        );
    }
    let alarms: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(" - ALARM: ").map(|(_, m)| m.to_string()))
        .collect();
    assert_eq!(
        alarms,
        [
            "A ERROR x",
            "C CRIT y",
            "C2 CRIT y",
            "B WARN z",
            "B WARN w",
            "B NOTE n"
        ],
        "the second ERROR x suppressed (anti-flood kept), CRIT y again (c changed)"
    );
    let err = err.lock().unwrap().join("\n");
    assert!(
        err.contains("\"a\" (log alarm, overflow block): raised 2, ran 1, suppressed 1"),
        "{err}"
    );
    assert!(err.contains("\"c (before the reload)\""), "{err}");
}

#[test]
fn a_changed_daemon_line_restarts_that_daemon_only() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("alarms.ini");
    let keep = "while true; do echo keep-alive; sleep 0.2; done";
    let old = "while true; do echo old-alive; sleep 0.2; done";
    let new = "while true; do echo new-alive; sleep 0.2; done";
    let conf = |second: &str| {
        format!(
            "[uwsgi]\nalarm = a log:A\nlog-alarm = a new-alive\nalarm-freq = 3600\nattach-daemon = {keep}\nattach-daemon = {second}\n"
        )
    };
    std::fs::write(&ini, conf(old)).unwrap();
    let out = dir.path().join("out.log");
    let sock = dir.path().join("alarm.sock");
    let mut child = bin()
        .args(["--ini", ini.to_str().unwrap(), "--logto"])
        .arg(&out)
        .arg("--alarm-socket")
        .arg(&sock)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = stderr_lines(&mut child);
    let text = || std::fs::read_to_string(&out).unwrap_or_default();
    wait_until("both daemons", 10, || {
        let t = text();
        t.contains("keep-alive") && t.contains("old-alive")
    });
    std::fs::write(&ini, conf(new)).unwrap();
    // Through the socket: SIGHUP would also be forwarded to the daemons (as it always was),
    // and a shell loop dies of it.
    let reload = bin()
        .args(["reload", "--socket"])
        .arg(&sock)
        .output()
        .unwrap();
    assert!(reload.status.success());
    let hup = String::from_utf8_lossy(&reload.stdout).to_string();
    assert!(
        hup.contains(&format!("daemons started: {new}, stopped: {old}")),
        "{hup}"
    );
    wait_until("the new daemon's alarm", 10, || {
        text().contains("ALARM: A new-alive")
    });
    // The old daemon is gone: its line count stops growing; the kept one goes on.
    std::thread::sleep(Duration::from_millis(500));
    let (old_n, keep_n) = {
        let t = text();
        (
            t.matches("old-alive").count(),
            t.matches("keep-alive").count(),
        )
    };
    std::thread::sleep(Duration::from_millis(1000));
    let t = text();
    assert_eq!(
        t.matches("old-alive").count(),
        old_n,
        "the old daemon still writes"
    );
    assert!(
        t.matches("keep-alive").count() > keep_n,
        "the kept daemon stopped"
    );
    let starts = err
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("keep-alive") && l.contains("restarting"))
        .count();
    assert_eq!(starts, 0, "the unchanged daemon was not restarted");
    signal(&child, libc::SIGTERM);
    assert!(child.wait().unwrap().success());
}
