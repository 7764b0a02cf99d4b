//! Storms and stuck outputs: what each overflow policy loses (exactly what it reports, and a
//! digest says so through the alarm's own action) and what it never loses; alarms that fire
//! while the log output cannot be written (a reader that does not read, a full disk), and
//! SIGTERM honoured while a write is stuck.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{spawn_open, wait_for};

/// The `exit: "NAME" (...)` line's counter `what` (`raised`, `dropped`, ...).
pub(crate) fn counter(err: &str, alarm: &str, what: &str) -> u64 {
    let line = err
        .lines()
        .find(|l| l.contains(&format!("exit: \"{alarm}\" (")))
        .unwrap_or_else(|| panic!("no exit line for {alarm}: {err}"));
    let at = line
        .find(&format!("{what} "))
        .unwrap_or_else(|| panic!("no {what} in {line}"));
    line[at + what.len() + 1..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {what} in {line}"))
}

fn errors(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| format!("ERROR {i}\n").into_bytes())
        .collect()
}

#[test]
fn drop_counts_exactly_and_sends_one_digest_through_the_alarm_itself() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ran");
    // Each command holds one of the 64 slots for a second: 200 alarms at once cannot all run.
    let alarm = format!("c cmd:cat >> {}; sleep 1", out.display());
    let t = Instant::now();
    let res = crate::support::run(
        &[
            "--alarm",
            &alarm,
            "--log-alarm",
            "c ^ERROR",
            "--alarm-freq",
            "0",
        ],
        errors(200),
    );
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{err}");
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    let (raised, ran, dropped) = (
        counter(&err, "c", "raised"),
        counter(&err, "c", "ran"),
        counter(&err, "c", "dropped"),
    );
    assert_eq!(raised, 200, "{err}");
    assert_eq!(ran + dropped, 200, "every alarm is accounted for: {err}");
    assert!(dropped >= 100, "{err}");
    assert_eq!(counter(&err, "c", "discarded"), 0, "{err}");
    let got = String::from_utf8(std::fs::read(&out).unwrap()).unwrap();
    let ran_lines = got.lines().filter(|l| l.starts_with("ERROR ")).count() as u64;
    assert_eq!(ran_lines, ran, "{got}");
    let digests: Vec<&str> = got
        .lines()
        .filter(|l| l.starts_with("logalarm: "))
        .collect();
    assert_eq!(digests.len(), 1, "{got}");
    assert!(
        digests[0].starts_with(&format!(
            "logalarm: {dropped} alarm(s) of \"c\" dropped between "
        )),
        "{}",
        digests[0]
    );
    assert!(digests[0].ends_with("; last: ERROR 199"), "{}", digests[0]);
    assert!(err.contains("(1 digest(s) sent)"), "{err}");
}

#[test]
fn block_loses_nothing_the_log_stream_waits_instead() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ran");
    let alarm = format!("c cmd:cat >> {}; sleep 0.3", out.display());
    let input = errors(150);
    let res = crate::support::run(
        &[
            "--alarm",
            &alarm,
            "--log-alarm",
            "c ^ERROR",
            "--alarm-freq",
            "0",
            "--alarm-overflow",
            "c block",
            "--alarm-queue",
            "4",
        ],
        input.clone(),
    );
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{err}");
    assert!(res.stdout == input, "the log stream is the input");
    assert_eq!(counter(&err, "c", "ran"), 150, "{err}");
    assert_eq!(counter(&err, "c", "dropped"), 0, "{err}");
    let got = wait_for(&out, |b| b.split(|&c| c == b'\n').count() > 150, 5);
    assert_eq!(got.iter().filter(|&&c| c == b'\n').count(), 150);
    assert!(err.contains("overflow block"), "{err}");
}

/// 3 MB of filler after one matching line: more than the pipe and one read hold.
fn stuck_input() -> Vec<u8> {
    let mut v = b"ERROR early\n".to_vec();
    while v.len() < 3 << 20 {
        v.extend_from_slice(b"filler line, long enough to fill a pipe quickly\n");
    }
    v
}

#[test]
fn alarms_fire_while_nobody_reads_the_output_and_sigterm_ends_it_within_grace() {
    let dir = tempfile::tempdir().unwrap();
    let fired = dir.path().join("fired");
    let alarm = format!("c cmd:cat > {}", fired.display());
    let mut child = spawn_open(&[
        "--alarm",
        &alarm,
        "--log-alarm",
        "c ERROR",
        "--alarm-grace",
        "1",
    ]);
    // Its standard output is a pipe nobody reads.
    let _stdout = child.stdout.take().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&stuck_input());
    });
    let got = wait_for(&fired, |b| b == b"ERROR early\n", 10);
    assert_eq!(
        got, b"ERROR early\n",
        "the alarm fired while the output was stuck"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "still waiting to write"
    );
    let t = Instant::now();
    crate::support::signal(&child, libc::SIGTERM);
    let status = child.wait().unwrap();
    let waited = t.elapsed();
    let err = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert!(
        waited < Duration::from_secs(4),
        "SIGTERM honoured during a stuck write: {waited:?} {err}"
    );
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot write log output standard output: its reader is not reading; logalarm is stopping: ")
            && err.contains(" byte(s) not written"),
        "{err}"
    );
    drop(_stdout);
    let _ = writer.join();
}

/// A 256 KiB tmpfs, unmounted when dropped (root with CAP_SYS_ADMIN: CI runs as root; in an
/// unprivileged container the test says SKIPPED).
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(at: &Path) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).unwrap();
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            assert!(std::env::var_os("CI").is_none(), "CI runs as root");
            return None;
        }
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Root without CAP_SYS_ADMIN (an unprivileged container): nothing to mount with.
            eprintln!("SKIPPED: cannot mount a tmpfs on {} here", at.display());
            return None;
        }
        Some(SmallDisk(at.to_path_buf()))
    }

    /// Fill it to the last byte with `filler`.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.0.join("filler")).unwrap();
        let block = [b'x'; 4096];
        while f.write_all(&block).is_ok() {}
        while f.write_all(b"x").is_ok() {}
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_alarms_honours_sigterm_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&dir.path().join("disk")) else {
        return;
    };
    let log = dir.path().join("disk/log");
    let fired = dir.path().join("fired");
    let alarm = format!("c cmd:cat >> {}", fired.display());
    let args = |log: &Path| {
        vec![
            "--logto".to_string(),
            log.display().to_string(),
            "--alarm".into(),
            alarm.clone(),
            "--log-alarm".into(),
            "c ERROR".into(),
            "--alarm-grace".into(),
            "1".into(),
        ]
    };
    let args1 = args(&log);
    let args1: Vec<&str> = args1.iter().map(String::as_str).collect();

    // 1. Full: the alarm fires all the same; space freed: the line is written, nothing lost.
    std::fs::write(&log, b"").unwrap();
    disk.fill();
    let mut child = spawn_open(&args1);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"ERROR disk full\n").unwrap();
    let got = wait_for(&fired, |b| b == b"ERROR disk full\n", 10);
    assert_eq!(
        got, b"ERROR disk full\n",
        "the alarm fired with the disk full"
    );
    assert!(std::fs::read(&log).unwrap().is_empty());
    disk.free();
    let written = wait_for(&log, |b| b == b"ERROR disk full\n", 5);
    assert_eq!(written, b"ERROR disk full\n", "written once there was room");
    stdin.write_all(b"after\n").unwrap();
    drop(stdin);
    let status = child.wait().unwrap();
    let err = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert!(status.success(), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("writable again"), "{err}");
    assert_eq!(std::fs::read(&log).unwrap(), b"ERROR disk full\nafter\n");

    // 2. Full, and it stays full: SIGTERM ends it within the grace period, saying what was
    //    not written, with a failure status.
    //    (A new, empty log: the first one has room left in its last page.)
    let log2 = dir.path().join("disk/log2");
    std::fs::write(&log2, b"").unwrap();
    let args2 = args(&log2);
    let args2: Vec<&str> = args2.iter().map(String::as_str).collect();
    disk.fill();
    let mut child = spawn_open(&args2);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"ERROR again\n").unwrap();
    wait_for(&fired, |b| b.ends_with(b"ERROR again\n"), 10);
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    crate::support::signal(&child, libc::SIGTERM);
    let status = child.wait().unwrap();
    let err = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "{:?} {err}",
        t.elapsed()
    );
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "No space left on device (os error 28); logalarm is stopping: 12 byte(s) not written"
        ),
        "{err}"
    );
    drop(stdin);
    drop(disk);
}

#[test]
fn spool_delivers_everything_after_an_outage_and_a_restart_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    // A port nobody listens on: the endpoint is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let alarm = format!("hook curl:http://127.0.0.1:{port}/alert");
    let spool_s = spool.display().to_string();
    let args = [
        "--alarm",
        alarm.as_str(),
        "--log-alarm",
        "hook ^ERROR",
        "--alarm-freq",
        "0",
        "--alarm-spool",
        spool_s.as_str(),
        "--alarm-grace",
        "1",
    ];
    // 1. Down the whole run: every alarm is kept on disk, none lost, none run.
    let first = crate::support::run(&args, errors(5));
    let err = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{err}");
    assert!(err.contains("overflow spool"), "{err}");
    assert_eq!(counter(&err, "hook", "spooled"), 5, "{err}");
    assert_eq!(counter(&err, "hook", "kept in the spool"), 5, "{err}");
    assert_eq!(counter(&err, "hook", "ran"), 0, "{err}");
    assert!(!err.contains(":pw@"), "{err}");

    // 2. Restarted, still down, two more; a second logalarm on the same spool is refused.
    let mut child = spawn_open(&args);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"ERROR 5\nERROR 6\n").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let rival = crate::support::run(&args, Vec::new());
    let rival_err = String::from_utf8_lossy(&rival.stderr);
    assert_eq!(rival.status.code(), Some(1), "{rival_err}");
    assert!(
        rival_err.contains("is in use by another logalarm"),
        "{rival_err}"
    );
    // 3. The endpoint comes back where it was: everything arrives, once, oldest first.
    let records = dir.path().join("records");
    let srv =
        crate::support::Server::start("http_recorder.py", &records, &["--port", &port.to_string()]);
    let got = srv.wait_records(7, 20);
    let bodies: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8(crate::support::latin1(&r["body"])).unwrap())
        .collect();
    let want: Vec<String> = (0..7).map(|i| format!("ERROR {i}\n")).collect();
    assert_eq!(bodies, want);
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // (libcurl's words: "Couldn't" before curl 8.x's "Could not".)
    assert!(
        err.contains("Couldn't connect to server") || err.contains("Could not connect to server"),
        "{err}"
    );
    assert!(err.contains("delivering again after "), "{err}");
    assert_eq!(counter(&err, "hook", "ran"), 7, "{err}");
    assert_eq!(counter(&err, "hook", "kept in the spool"), 0, "{err}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(srv.records().len(), 7, "nothing delivered twice");
}
