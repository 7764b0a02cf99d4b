//! The monitors beyond log lines, with real descriptors and sockets: `alarm-fd` on a pipe, a
//! FIFO and an eventfd; `alarm-backlog` on TCP v4, TCP v6 and unix listeners whose queues are
//! really full; `--tail` across rotation and truncation; `--udp`; `--alarm-socket` with the
//! `logalarm raise` client.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{bin, spawn_detached, wait_until};

fn read_all(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Collect a stream on a thread.
fn collect(r: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        let mut r = r;
        let mut buf = [0u8; 65536];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            g.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    got
}

fn text(g: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&g.lock().unwrap()).into_owned()
}

fn stop(mut child: Child) -> i32 {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap().code().unwrap_or(-1)
}

/// `cmd:` alarm NAME appending `NAME<TAB>message` records (one per line) to `file`.
fn recorder(name: &str, file: &std::path::Path) -> String {
    format!(
        "{name} cmd:awk -v n={name} '{{ print n \"\\t\" $0 }}' >> {}",
        file.display()
    )
}

#[test]
fn alarm_fd_on_a_pipe_counts_bytes_and_raises_once_more_at_eof() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("rec");
    let bin = crate::support::bin_path();
    let bin = bin.display();
    // The alarm definitions travel in the environment: `$0` must reach awk unexpanded.
    let script = format!(
        "exec {bin} --alarm-freq 0 --alarm \"$A\" --alarm \"$B\" --alarm \"$C\" \
         --alarm-fd 'a 5 disk: full' --alarm-fd 'b 5 second entry' --alarm-fd 'c 6:2 two bytes' \
         5< <(printf x; sleep 0.3; printf y; sleep 0.3) 6< <(printf abc; sleep 0.3) < /dev/null"
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("A", recorder("a", &f))
        .env("B", recorder("b", &f))
        .env("C", recorder("c", &f))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "ends when every watched fd ended: {err}"
    );
    assert!(err.contains("[uwsgi-alarm-fd] fd 5: end of file"), "{err}");
    assert!(err.contains("[uwsgi-alarm-fd] fd 6: end of file"), "{err}");
    let rec = read_all(&f);
    let count = |r: &str| rec.lines().filter(|l| *l == r).count();
    assert_eq!(count("a\tdisk: full"), 3, "x, y, then EOF: {rec}");
    assert_eq!(count("b\tsecond entry"), 3, "every entry on the fd: {rec}");
    assert_eq!(count("c\ttwo bytes"), 2, "ab, then c + EOF: {rec}");
}

#[test]
fn alarm_fd_bytes_that_arrive_with_the_end_of_file_count() {
    // Four bytes and the end of the file in one read: four events, then one for the end.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("rec");
    let bin = crate::support::bin_path();
    let bin = bin.display();
    let script = format!(
        "exec {bin} --alarm-freq 0 --alarm \"$A\" --alarm-fd 'a 5 m' 5< <(printf wxyz) < /dev/null"
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("A", recorder("a", &f))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec = read_all(&f);
    assert_eq!(rec.lines().filter(|l| *l == "a\tm").count(), 5, "{rec}");
}

#[test]
fn alarm_fd_on_a_fifo_and_an_eventfd() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("rec");
    let fifo = dir.path().join("fifo");
    // Python holds the FIFO and an eventfd, passes both to logalarm, and writes to them.
    let py = format!(
        r#"
import os, subprocess, sys, time
os.mkfifo({fifo:?})
r = os.open({fifo:?}, os.O_RDONLY | os.O_NONBLOCK)
w = os.open({fifo:?}, os.O_WRONLY)
efd = os.eventfd(0)
os.dup2(r, 25, inheritable=True)
os.dup2(efd, 26, inheritable=True)
p = subprocess.Popen([{bin:?}, "--alarm-freq", "0", "--alarm", {fa:?}, "--alarm", {ea:?},
    "--alarm-fd", "fifo 25 fifo ready", "--alarm-fd", "ev 26 event"], pass_fds=(25, 26),
    stdin=subprocess.DEVNULL)
time.sleep(0.5)
for _ in range(3):
    os.write(w, b"!")
    os.eventfd_write(efd, 1)
    time.sleep(0.3)
time.sleep(0.5)
p.terminate()
sys.exit(p.wait())
"#,
        fifo = fifo.to_str().unwrap(),
        bin = crate::support::bin_path().display(),
        fa = recorder("fifo", &f),
        ea = recorder("ev", &f),
    );
    let out = Command::new("python3").arg("-c").arg(&py).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let rec = read_all(&f);
    assert_eq!(
        rec.lines().filter(|l| *l == "fifo\tfifo ready").count(),
        3,
        "{rec}{err}"
    );
    assert_eq!(
        rec.lines().filter(|l| *l == "ev\tevent").count(),
        3,
        "8 bytes per eventfd read: {rec}{err}"
    );
}

#[test]
fn full_listen_queues_are_reported_into_the_stream_and_alarmed() {
    let dir = tempfile::tempdir().unwrap();
    for fam in ["inet", "inet6", "unix"] {
        let f = dir.path().join(format!("{fam}.rec"));
        let sock = dir.path().join(format!("{fam}.sock"));
        let mut listener = Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/servers/backlog.py"
            ))
            .arg(fam)
            .arg(&sock)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut addr = String::new();
        BufReader::new(listener.stdout.take().unwrap())
            .read_line(&mut addr)
            .unwrap();
        let addr = addr.trim().to_string();
        let mut child = spawn_detached(&[
            "--watch-socket",
            &addr,
            "--alarm",
            &recorder("q", &f),
            "--alarm-backlog",
            "q",
            "--alarm",
            &recorder("line", &f),
            "--log-alarm",
            "line uWSGI listen queue of socket",
        ]);
        let out = collect(child.stdout.take().unwrap());
        let err = collect(child.stderr.take().unwrap());
        wait_until(&format!("{fam} report"), 10, || {
            read_all(&f).contains("line\t") && read_all(&f).contains("q\t")
        });
        assert_eq!(stop(child), 0);
        let _ = listener.kill();
        let _ = listener.wait();
        let msg = format!("listen queue of socket \"{addr}\" (fd: -1) full !!! (5/4)");
        let o = text(&out);
        assert!(
            o.contains(&format!(" - *** uWSGI {msg} ***\n")),
            "{fam}: {o} {}",
            text(&err)
        );
        let rec = read_all(&f);
        assert!(rec.contains(&format!("q\t{msg}\n")), "{fam}: {rec}");
        assert!(
            rec.contains(&format!("*** uWSGI {msg} ***")),
            "the rule saw the line: {rec}"
        );
    }
}

/// Append `s` to the file at `path` (made if missing), as a logging program does.
fn append_to(path: &std::path::Path, s: &str) {
    use std::io::Write;
    let mut h = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    h.write_all(s.as_bytes()).unwrap();
}

type Collected = Arc<Mutex<Vec<u8>>>;

/// logalarm following `log` (with `extra` options), raising `e` (recorded in `rec`) on `ERROR`
/// lines: the process, its stdout and its stderr as they come.
fn follow(
    log: &std::path::Path,
    extra: &[&str],
    rec: &std::path::Path,
) -> (Child, Collected, Collected) {
    let alarm = recorder("e", rec);
    let mut args = vec!["--tail", log.to_str().unwrap(), "--alarm", &alarm];
    args.extend_from_slice(&["--log-alarm", "e ERROR", "--alarm-freq", "0"]);
    args.extend_from_slice(extra);
    let mut child = spawn_detached(&args);
    let out = collect(child.stdout.take().unwrap());
    let err = collect(child.stderr.take().unwrap());
    (child, out, err)
}

#[test]
fn tail_follows_appends_rotation_and_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let f = dir.path().join("rec");
    std::fs::write(&log, "before start\n").unwrap();
    let (child, out, err) = follow(&log, &[], &f);
    std::thread::sleep(Duration::from_millis(400));
    let append = |s: &str| append_to(&log, s);
    append("one\nERROR two\n");
    wait_until("appended lines", 5, || text(&out).contains("ERROR two\n"));
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append("three after rotation\n");
    wait_until("the new file", 5, || {
        text(&out).contains("three after rotation\n")
    });
    std::fs::write(&log, "").unwrap();
    std::thread::sleep(Duration::from_millis(400));
    append("ERROR four after truncation\n");
    let t = Instant::now();
    while !text(&out).contains("four after truncation\n") {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{:?} {:?}",
            text(&out),
            text(&err)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(stop(child), 0);
    assert_eq!(
        text(&out),
        "one\nERROR two\nthree after rotation\nERROR four after truncation\n",
        "{}",
        text(&err)
    );
    wait_until("alarms", 5, || read_all(&f).lines().count() == 2);
    assert_eq!(
        read_all(&f),
        "e\tERROR two\ne\tERROR four after truncation\n"
    );
    let e = text(&err);
    assert!(e.contains("rotated") && e.contains("truncated"), "{e}");
}

#[test]
fn tail_state_goes_on_after_a_restart_across_rotation_without_loss_or_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let state = dir.path().join("tail.state");
    let f = dir.path().join("rec");
    std::fs::write(&log, "before the first start\n").unwrap();
    let append = |s: &str| append_to(&log, s);
    let run = || follow(&log, &["--tail-state", state.to_str().unwrap()], &f);
    // First run: from the end (no state yet); a line, then half of one, at SIGTERM.
    let (child, out, err) = run();
    std::thread::sleep(Duration::from_millis(400));
    append("ERROR one\nhalf of ERR");
    wait_until("the first line", 5, || text(&out).contains("ERROR one\n"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(stop(child), 0);
    assert_eq!(
        text(&out),
        "ERROR one\n",
        "the half line waits: {}",
        text(&err)
    );
    let saved = read_all(&state);
    let line = format!("\t{}\n", log.display());
    assert!(
        saved.starts_with("1\t") && saved.ends_with(&line),
        "{saved}"
    );
    // While stopped: the half line ends, another comes, the file is rotated, a new one begun.
    append("OR two\nERROR three\n");
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append("ERROR four in the new file\n");
    let (child, out, err) = run();
    wait_until("the new file's line", 5, || {
        text(&out).contains("ERROR four in the new file\n")
    });
    assert_eq!(stop(child), 0);
    assert_eq!(
        text(&out),
        "half of ERROR two\nERROR three\nERROR four in the new file\n",
        "{}",
        text(&err)
    );
    assert!(
        text(&err).contains("rotated while logalarm was stopped"),
        "{}",
        text(&err)
    );
    wait_until("alarms", 5, || read_all(&f).lines().count() == 4);
    // (`cmd:` actions run side by side: their records in any order.)
    let mut rec: Vec<String> = read_all(&f).lines().map(str::to_string).collect();
    rec.sort();
    assert_eq!(
        rec,
        [
            "e\tERROR four in the new file",
            "e\tERROR one",
            "e\tERROR three",
            "e\thalf of ERROR two"
        ]
    );
    // A third run with nothing new passes nothing again.
    let (child, out, _err) = run();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(stop(child), 0);
    assert_eq!(text(&out), "");
    // A state file others may write is not used (it could make logalarm skip lines).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (child, _out, err) = run();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(stop(child), 0);
    assert!(
        text(&err).contains("tail-state") && text(&err).contains("not used"),
        "{}",
        text(&err)
    );
    // A state that cannot be written is said once, not every second.
    let mut child = spawn_detached(&[
        "--tail",
        log.to_str().unwrap(),
        "--tail-state",
        dir.path().join("no/such/dir/st").to_str().unwrap(),
    ]);
    let err = collect(child.stderr.take().unwrap());
    let _out = collect(child.stdout.take().unwrap());
    std::thread::sleep(Duration::from_millis(400));
    append("moves\n");
    std::thread::sleep(Duration::from_millis(1500));
    append("moves again\n");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(stop(child), 0);
    assert_eq!(
        text(&err).matches("cannot write it").count(),
        1,
        "{}",
        text(&err)
    );
}

#[test]
fn udp_datagrams_are_lines() {
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("rec");
    let mut child = spawn_detached(&[
        "--udp",
        &addr,
        "--alarm",
        &recorder("u", &f),
        "--log-alarm",
        "u ^FATAL",
    ]);
    let out = collect(child.stdout.take().unwrap());
    let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    wait_until("the first datagram", 5, || {
        c.send_to(b"hello\n", &addr).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        text(&out).contains("hello\n")
    });
    c.send_to(b"two\nlines", &addr).unwrap();
    c.send_to(b"FATAL crash\n", &addr).unwrap();
    wait_until("alarm", 5, || read_all(&f).contains("u\tFATAL crash"));
    assert_eq!(stop(child), 0);
    let o = text(&out);
    assert!(o.ends_with("two\nlines\nFATAL crash\n"), "{o:?}");
}

#[test]
fn udp_port_alone_binds_loopback_only() {
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let child = spawn_detached(&["--udp", &format!(":{port}")]);
    // /proc/net/udp: local address as hex IP:PORT (127.0.0.1 is 0100007F on little-endian).
    let bound = |ip: &str| {
        let table = std::fs::read_to_string("/proc/net/udp").unwrap();
        let want = format!("{ip}:{port:04X} ");
        table.lines().any(|l| l.contains(&want))
    };
    wait_until("the socket", 5, || bound("0100007F"));
    assert!(!bound("00000000"), "bound to every address");
    assert_eq!(stop(child), 0);
}

#[test]
fn alarm_socket_and_the_raise_client() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("alarm.sock");
    let f = dir.path().join("rec");
    let mut child = spawn_detached(&[
        "--alarm-socket",
        sock.to_str().unwrap(),
        "--alarm",
        &recorder("x", &f),
    ]);
    let err = collect(child.stderr.take().unwrap());
    wait_until("the socket", 5, || sock.exists());
    let raise = |args: &[&str]| {
        bin()
            .arg("raise")
            .arg("--socket")
            .arg(&sock)
            .args(args)
            .output()
            .unwrap()
    };
    let ok = raise(&["x", "hello", "world"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = raise(&["nosuch", "msg"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown alarm \"nosuch\""));
    wait_until("the alarm", 5, || read_all(&f) == "x\thello world\n");
    assert_eq!(stop(child), 0);
    assert!(text(&err).contains("unknown alarm \"nosuch\""));
    assert!(!sock.exists(), "the socket file is removed at exit");
    let gone = raise(&["x", "m"]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("is logalarm running"));
}

#[test]
fn the_alarm_socket_is_private_and_never_taken_over() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("alarm.sock");
    let path = sock.to_str().unwrap();
    let raise = |name: &str| {
        bin()
            .args(["raise", "--socket", path, name, "m"])
            .output()
            .unwrap()
    };
    let first = spawn_detached(&["--alarm-socket", path, "--alarm", "a log:A"]);
    wait_until("the socket", 5, || sock.exists());
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    // A second instance on the same path refuses to start; the first keeps its socket.
    let second = bin()
        .args(["--alarm-socket", path, "--alarm", "b log:B"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(
        err.contains("invalid alarm-socket") && err.contains("live socket"),
        "{err}"
    );
    assert_eq!(raise("a").status.code(), Some(0), "the first still answers");
    // Its file removed by hand and the path reused: the first must not delete the new one.
    std::fs::remove_file(&sock).unwrap();
    let third = spawn_detached(&["--alarm-socket", path, "--alarm", "c log:C"]);
    wait_until("the new socket", 5, || sock.exists());
    assert_eq!(stop(first), 0);
    assert!(
        sock.exists(),
        "the first instance deleted a socket it did not own"
    );
    assert_eq!(raise("c").status.code(), Some(0), "the third still answers");
    assert_eq!(stop(third), 0);
    assert!(!sock.exists(), "its own socket is removed at exit");
}

fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

#[test]
fn udp_allow_refuses_other_senders_and_udp_sender_names_them() {
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = c.local_addr().unwrap();
    // Only 10.0.0.0/8 may send: a loopback sender is refused, counted, reported.
    let mut child = spawn_detached(&["--udp", &addr, "--udp-allow", "10.0.0.0/8,192.168.0.0/16"]);
    let out = collect(child.stdout.take().unwrap());
    let err = collect(child.stderr.take().unwrap());
    wait_until("the refusal", 5, || {
        c.send_to(b"FATAL spoofed\n", &addr).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        text(&err).contains("from senders outside --udp-allow dropped")
    });
    assert_eq!(stop(child), 0);
    assert!(text(&out).is_empty(), "{}", text(&out));
    // Allowed, and named in front of each line.
    let mut child = spawn_detached(&["--udp", &addr, "--udp-allow", "127.0.0.0/8", "--udp-sender"]);
    let out = collect(child.stdout.take().unwrap());
    wait_until("the lines", 5, || {
        c.send_to(b"one\ntwo", &addr).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        text(&out).contains("two\n")
    });
    assert_eq!(stop(child), 0);
    assert!(
        text(&out).starts_with(&format!("[{me}] one\n[{me}] two\n")),
        "{}",
        text(&out)
    );
    // Every address without --udp-allow: said at start-up.
    let mut child = spawn_detached(&["--udp", &format!("0.0.0.0:{}", free_udp_port())]);
    let err = collect(child.stderr.take().unwrap());
    wait_until("the warning", 5, || text(&err).contains("--udp-allow"));
    assert_eq!(stop(child), 0);
    assert!(
        text(&err).contains("datagrams from any sender are read as log lines"),
        "{}",
        text(&err)
    );
}

#[test]
fn udp_datagrams_the_kernel_drops_are_counted_exactly() {
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let mut child = spawn_detached(&["--udp", &addr]);
    let out = collect(child.stdout.take().unwrap());
    let err = collect(child.stderr.take().unwrap());
    let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    wait_until("the socket", 5, || {
        c.send_to(b"warm-up\n", &addr).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        text(&out).contains("warm-up\n")
    });
    let warm = text(&out).matches("warm-up\n").count();
    // Stopped, its receive buffer overflows; resumed, it reads what the kernel kept.
    crate::support::signal(&child, libc::SIGSTOP);
    let sent = 20_000;
    for i in 0..sent {
        c.send_to(format!("datagram {i}\n").as_bytes(), &addr)
            .unwrap();
    }
    crate::support::signal(&child, libc::SIGCONT);
    std::thread::sleep(Duration::from_millis(500));
    let received = text(&out)
        .lines()
        .filter(|l| l.starts_with("datagram "))
        .count();
    // The kernel stamps its count on the datagrams queued after a drop: the next one says it.
    wait_until("the drop report", 5, || {
        c.send_to(b"after\n", &addr).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        text(&err).contains("the kernel dropped")
    });
    assert_eq!(stop(child), 0);
    let e = text(&err);
    let dropped: usize = e
        .lines()
        .filter_map(|l| l.split("the kernel dropped ").nth(1))
        .filter_map(|r| r.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert!(dropped > 0 && received > 0, "{e}");
    assert_eq!(
        received + dropped,
        sent,
        "received + dropped = sent ({warm} warm-up): {e}"
    );
}

/// Many inputs at once, followed files and supervised processes (read in turns whose matching
/// a helper thread shares): every line is passed once and in its input's order, and every
/// matching line raises its alarm once.
#[test]
fn many_inputs_pass_every_line_in_order_and_raise_every_alarm() {
    let dir = tempfile::tempdir().unwrap();
    const FILES: usize = 6;
    const DAEMONS: usize = 2;
    const LINES: usize = 20_000;
    let mut args: Vec<String> = [
        "--alarm",
        "e log:",
        "--alarm-freq",
        "0",
        "--tail-from-start",
        "--log-alarm",
        r"e ERROR \d+ disk",
        "--log-alarm",
        r"e (?i)warn(ing)? [a-z]+ \d+ \S+ full @@",
    ]
    .map(String::from)
    .to_vec();
    let mut want_alarms = 0;
    for i in 0..FILES + DAEMONS {
        let path = dir.path().join(format!("in{i}.log"));
        let mut body = String::new();
        for n in 0..LINES {
            let what = match n % 10 {
                3 => {
                    want_alarms += 1;
                    format!("ERROR {n} disk")
                }
                7 => {
                    want_alarms += 1;
                    format!("Warning queue {n} spool full")
                }
                _ => format!("info {n} all is well"),
            };
            body.push_str(&format!(
                "2026-12-05T10:00:00 host app[{i}]: {what} @@{i} {n}\n"
            ));
        }
        std::fs::write(&path, body).unwrap();
        let path = path.to_str().unwrap().to_string();
        if i < FILES {
            args.extend(["--tail".to_string(), path]);
        } else {
            args.extend([
                "--attach-daemon".to_string(),
                format!("cat {path}; exec sleep 1000"),
            ]);
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = spawn_detached(&args);
    let out = collect(child.stdout.take().unwrap());
    let err = collect(child.stderr.take().unwrap());
    let lines = |g: &Collected| g.lock().unwrap().iter().filter(|&&b| b == b'\n').count();
    let total = (FILES + DAEMONS) * LINES + want_alarms;
    // Then compared line by line: what is missing is named.
    let t = Instant::now();
    while lines(&out) < total && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(stop(child), 0, "{}", text(&err));
    let out = text(&out);
    let mut next = [0usize; FILES + DAEMONS];
    let mut alarms = 0;
    for line in out.lines() {
        if line.contains(" - ALARM: ") {
            assert!(line.contains(" full") || line.contains(" disk "), "{line}");
            alarms += 1;
            continue;
        }
        let tag = line.rsplit_once(" @@").map(|t| t.1).unwrap_or_default();
        let (i, n) = tag.split_once(' ').unwrap_or_else(|| panic!("{line}"));
        let (i, n): (usize, usize) = (i.parse().unwrap(), n.parse().unwrap());
        assert_eq!(n, next[i], "input {i} out of order or repeated: {line}");
        next[i] += 1;
    }
    assert_eq!(next, [LINES; FILES + DAEMONS]);
    assert_eq!(alarms, want_alarms);
}
