//! A fleet: several real logalarm processes sharing decisions on a real `redis-server`
//! (`alarm-cluster`), and sharing one NATS JetStream stream (`--nats`, `--nats-out`) on a real
//! `nats-server`, all on loopback ports.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{assert_no_secret, bin, have, wait_until};

use crate::support::free_port;

/// A real redis-server on `port`, without persistence; killed on drop.
pub(crate) struct Redis {
    child: Child,
    pub(crate) port: u16,
}

impl Redis {
    pub(crate) fn start(port: u16, extra: &[&str]) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let r = Redis { child, port };
        wait_until("redis-server to listen", 20, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        r
    }

    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One logalarm of the fleet: stdin piped, stdout and stderr to files.
pub(crate) struct Member {
    pub(crate) child: Child,
    stdin: Option<ChildStdin>,
    pub(crate) out: PathBuf,
    pub(crate) err: PathBuf,
}

impl Member {
    pub(crate) fn start(dir: &Path, name: &str, args: &[&str]) -> Member {
        let out = dir.join(format!("{name}.out"));
        let err = dir.join(format!("{name}.err"));
        let mut child = bin()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        Member {
            child,
            stdin,
            out,
            err,
        }
    }

    pub(crate) fn send(&mut self, text: &str) {
        let s = self.stdin.as_mut().unwrap();
        s.write_all(text.as_bytes()).unwrap();
        s.flush().unwrap();
    }

    pub(crate) fn output(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.out).unwrap_or_default()).into_owned()
    }

    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.err).unwrap_or_default()).into_owned()
    }

    /// Close stdin and wait for the exit; its stderr is checked for the tests' secrets.
    pub(crate) fn finish(mut self) -> (String, String) {
        drop(self.stdin.take());
        let t = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "logalarm did not exit"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_no_secret(self.stderr().as_bytes());
        (self.output(), self.stderr())
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `log:` alarm lines in `text` (the ALARM lines logalarm writes into the stream).
fn alarms(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.contains(" - ALARM: ")).collect()
}

fn all_alarms(members: &[Member]) -> Vec<String> {
    members
        .iter()
        .flat_map(|m| {
            alarms(&m.output())
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn a_storm_on_three_hosts_pages_once_and_digests_every_line() {
    if !have("redis-server", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(free_port(), &["--requirepass", "s3cret"]);
    let url = format!("redis://:s3cret@127.0.0.1:{}/storm", redis.port);
    let mut members: Vec<Member> = (1..=3)
        .map(|i| {
            let id = format!("{url}?id=host{i}");
            Member::start(
                dir.path(),
                &format!("m{i}"),
                &[
                    "--alarm",
                    "page log:",
                    "--log-alarm",
                    "page ERROR",
                    "--alarm-freq",
                    "60",
                    "--alarm-digest",
                    "page 2",
                    "--alarm-cluster",
                    &id,
                ],
            )
        })
        .collect();
    // 1,000 lines of the same error on each host, at once.
    let storm = "ERROR db down\n".repeat(1000);
    for m in &mut members {
        m.send(&storm);
    }
    // The page, then the digest (2 s after the first held line), by whichever host claims it.
    wait_until("the fleet's digest", 20, || {
        all_alarms(&members)
            .iter()
            .any(|a| a.contains("more like this"))
    });
    let got = all_alarms(&members);
    let pages: Vec<&String> = got
        .iter()
        .filter(|a| a.ends_with("ALARM: ERROR db down"))
        .collect();
    let digests: Vec<&String> = got
        .iter()
        .filter(|a| a.contains("more like this"))
        .collect();
    assert_eq!(pages.len(), 1, "one page for the fleet: {got:#?}");
    assert_eq!(digests.len(), 1, "one digest for the fleet: {got:#?}");
    assert!(
        digests[0].contains("page: 2999 more like this")
            && digests[0].contains("on 3 logalarm(s)")
            && digests[0].contains("host1 ")
            && digests[0].contains("host3 "),
        "the digest counts every host's lines: {}",
        digests[0]
    );
    let mut shared = 0;
    for m in members {
        let (out, err) = m.finish();
        let passed = out.lines().filter(|l| *l == "ERROR db down").count();
        assert_eq!(passed, 1000, "every line passed");
        assert!(!err.contains("decided locally"), "{err}");
        let line = err
            .lines()
            .find(|l| l.contains("alarm-cluster:"))
            .unwrap_or_else(|| panic!("no cluster summary: {err}"));
        let n: u64 = line
            .split("alarm-cluster: ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        shared += n;
        assert!(line.contains(" 0 made alone"), "{line}");
    }
    assert_eq!(shared, 3000, "every raising line decided by the fleet");
}

#[test]
fn redis_killed_mid_storm_each_host_goes_local_then_rejoins() {
    if !have("redis-server", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut redis = Redis::start(port, &[]);
    let url = format!("redis://127.0.0.1:{port}/outage?timeout=100");
    let mut members: Vec<Member> = (1..=3)
        .map(|i| {
            Member::start(
                dir.path(),
                &format!("m{i}"),
                &[
                    "--alarm",
                    "page log:",
                    "--log-alarm",
                    "page ERROR",
                    "--alarm-freq",
                    "60",
                    "--alarm-cluster",
                    &url,
                ],
            )
        })
        .collect();
    let count = |members: &[Member], what: &str| {
        all_alarms(members)
            .iter()
            .filter(|a| a.ends_with(what))
            .count()
    };
    let phase = |members: &mut Vec<Member>, msg: &str| {
        for m in members.iter_mut() {
            for _ in 0..50 {
                m.send(&format!("{msg}\n"));
            }
        }
        let passed = |m: &Member| m.output().matches(&format!("{msg}\n")).count() >= 50;
        wait_until(msg, 20, || members.iter().all(passed));
    };
    let settle = |members: &[Member], what: &str, n: usize| {
        wait_until(what, 20, || count(members, what) >= n);
        std::thread::sleep(Duration::from_millis(500));
    };
    phase(&mut members, "ERROR phase one");
    settle(&members, "ALARM: ERROR phase one", 1);
    assert_eq!(
        count(&members, "ALARM: ERROR phase one"),
        1,
        "shared: one page"
    );

    redis.kill();
    phase(&mut members, "ERROR phase two");
    settle(&members, "ALARM: ERROR phase two", 3);
    // Alone, each host pages once (its own anti-flood holds the rest).
    assert_eq!(
        count(&members, "ALARM: ERROR phase two"),
        3,
        "alone: one page per host"
    );
    for m in &members {
        let err = m.stderr();
        assert_eq!(
            err.matches("decided locally").count(),
            1,
            "the outage is said once: {err}"
        );
    }

    let _redis = Redis::start(port, &[]);
    // The next try comes within a second.
    std::thread::sleep(Duration::from_millis(1500));
    phase(&mut members, "ERROR phase three");
    settle(&members, "ALARM: ERROR phase three", 1);
    assert_eq!(
        count(&members, "ALARM: ERROR phase three"),
        1,
        "rejoined: one page"
    );
    for m in members {
        let (_, err) = m.finish();
        assert!(err.contains("back after"), "{err}");
        assert!(
            err.contains("made alone") && !err.contains(" 0 made alone"),
            "the lines decided alone are counted: {err}"
        );
    }
}

/// GET /metrics from 127.0.0.1:`port`.
fn scrape(port: u16) -> String {
    use std::io::Read;
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut page = String::new();
    c.read_to_string(&mut page).unwrap();
    page
}

#[test]
fn a_threshold_counts_the_whole_fleet() {
    if !have("redis-server", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(free_port(), &[]);
    let url = format!("redis://127.0.0.1:{}/th", redis.port);
    let metrics_port = free_port();
    let metrics = format!("127.0.0.1:{metrics_port}");
    let mut members: Vec<Member> = (1..=3)
        .map(|i| {
            Member::start(
                dir.path(),
                &format!("m{i}"),
                &[
                    "--alarm",
                    "brute log:",
                    "--metrics",
                    if i == 1 { &metrics } else { "127.0.0.1:0" },
                    "--log-alarm",
                    r"brute failed login from (?P<ip>\S+)",
                    "--alarm-key",
                    "brute {ip}",
                    "--alarm-threshold",
                    "brute 6 60",
                    "--alarm-template",
                    "brute {count} failed logins from {ip}",
                    "--alarm-freq",
                    "60",
                    "--alarm-cluster",
                    &url,
                ],
            )
        })
        .collect();
    // Two failures from each host for 10.0.0.1 (6 in all: the threshold), one for 10.0.0.2.
    for m in &mut members {
        m.send(
            "failed login from 10.0.0.1\nfailed login from 10.0.0.1\nfailed login from 10.0.0.2\n",
        );
    }
    wait_until("the threshold's page", 20, || {
        all_alarms(&members)
            .iter()
            .any(|a| a.contains("failed logins from 10.0.0.1"))
    });
    std::thread::sleep(Duration::from_millis(300));
    let got = all_alarms(&members);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(
        got[0].ends_with("6 failed logins from 10.0.0.1"),
        "{got:#?}"
    );
    // The fleet's counters in --metrics.
    let page = scrape(metrics_port);
    assert!(
        page.contains("logalarm_cluster_decisions_total{by=\"fleet\"} 3")
            && page.contains("logalarm_cluster_up 1"),
        "{page}"
    );
    for m in members {
        m.finish();
    }
}

#[test]
fn a_fleet_whose_redis_is_down_at_start_runs_alone_and_says_so() {
    let port = free_port();
    let out = crate::support::run(
        &[
            "--alarm",
            "page log:",
            "--log-alarm",
            "page ERROR",
            "--alarm-cluster",
            &format!("redis://u:hunter2@127.0.0.1:{port}/x?timeout=50"),
        ],
        b"ERROR a\nERROR b\n".to_vec(),
    );
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(alarms(&text).len(), 2, "{text}");
    assert_eq!(err.matches("decided locally").count(), 1, "{err}");
    assert!(err.contains("redis://u:***@127.0.0.1"), "{err}");
    assert!(err.contains("2 made alone"), "{err}");
    // A malformed value: named, masked, refused.
    let out = crate::support::run(
        &["--alarm-cluster", "redis://u:hunter2@h:99999/x"],
        Vec::new(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("invalid alarm-cluster `redis://u:***@h:99999/x`: `99999` is not a port"),
        "{err}"
    );
}

/// A TLS-only redis-server presenting `cert`; AUTH with a password.
fn redis_tls(cert: &Path, key: &Path, ca: &Path) -> Redis {
    let port = free_port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
        .arg("--tls-cert-file")
        .arg(cert)
        .arg("--tls-key-file")
        .arg(key)
        .arg("--tls-ca-cert-file")
        .arg(ca)
        .args(["--requirepass", "pa55word"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let r = Redis { child, port };
    wait_until("redis-server (TLS) to listen", 20, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    r
}

#[test]
fn the_fleet_over_tls_verifies_the_server() {
    if !have("redis-server", &["--version"]) || !have("openssl", &["version"]) {
        return;
    }
    let tls = crate::support::Tls::new();
    let dir = tempfile::tempdir().unwrap();
    let good = redis_tls(&tls.cert, &tls.key, &tls.ca);
    let url = format!(
        "rediss://:pa55word@localhost:{}/tls?ca={}",
        good.port,
        tls.ca.display()
    );
    let args = |u: &str| -> Vec<String> {
        [
            "--alarm",
            "page log:",
            "--log-alarm",
            "page ERROR",
            "--alarm-cluster",
            u,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let a = args(&url);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut members: Vec<Member> = (1..=2)
        .map(|i| Member::start(dir.path(), &format!("m{i}"), &a))
        .collect();
    for m in &mut members {
        m.send("ERROR over tls\n");
    }
    wait_until("the page", 20, || !all_alarms(&members).is_empty());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(all_alarms(&members).len(), 1, "{:#?}", all_alarms(&members));
    for m in members {
        let (_, err) = m.finish();
        assert!(err.contains(" 0 made alone"), "{err}");
    }
    // A server whose certificate the CA did not sign: refused, the host decides alone.
    let rogue = redis_tls(&tls.rogue_cert, &tls.rogue_key, &tls.ca);
    let url = format!(
        "rediss://:pa55word@localhost:{}/tls?ca={}",
        rogue.port,
        tls.ca.display()
    );
    let out = crate::support::run(
        &args(&url).iter().map(String::as_str).collect::<Vec<_>>(),
        b"ERROR x\n".to_vec(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("decided locally") && err.contains("1 made alone"),
        "{err}"
    );
    assert!(
        err.to_lowercase().contains("certificate"),
        "the reason is given: {err}"
    );
}

/// A real nats-server with JetStream on a free loopback port; killed on drop.
struct Nats {
    child: Child,
    url: String,
    _store: tempfile::TempDir,
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nats() -> Nats {
    let port = free_port();
    let store = tempfile::tempdir().unwrap();
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("nats-server to listen", 20, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    Nats {
        child,
        url: format!("nats://127.0.0.1:{port}"),
        _store: store,
    }
}

/// Publish `lines` into stream LOGS (subject logs.in) with logalarm's own `--nats-out`.
fn publish(n: &Nats, lines: &[u8]) {
    let out = crate::support::run(
        &["--nats-out", &format!("{},logs.in,stream=LOGS", n.url)],
        lines.to_vec(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let count = lines.iter().filter(|&&b| b == b'\n').count();
    assert!(
        err.contains(&format!("{count} line(s) published, 0 dropped")),
        "{err}"
    );
}

fn detached(dir: &Path, name: &str, args: &[&str]) -> Member {
    let mut m = Member::start(dir, name, args);
    drop(m.stdin.take());
    m
}

fn numbered(n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n * 16);
    for i in 0..n {
        v.extend_from_slice(format!("line {i}\n").as_bytes());
    }
    v
}

/// Lines `line N` in every output, counted.
fn passed(members: &[Member]) -> std::collections::HashMap<String, usize> {
    let mut seen = std::collections::HashMap::new();
    for m in members {
        for l in m.output().lines().filter(|l| l.starts_with("line ")) {
            *seen.entry(l.to_string()).or_insert(0) += 1;
        }
    }
    seen
}

fn stop(members: Vec<Member>) -> Vec<(String, String)> {
    for m in &members {
        crate::support::signal(&m.child, libc::SIGTERM);
    }
    members
        .into_iter()
        .map(|mut m| {
            let t = Instant::now();
            while m.child.try_wait().unwrap().is_none() {
                assert!(
                    t.elapsed() < Duration::from_secs(30),
                    "logalarm did not stop"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            (m.output(), m.stderr())
        })
        .collect()
}

fn read_count(err: &str, what: &str) -> u64 {
    err.lines()
        .find(|l| l.contains("exit: nats nats://"))
        .and_then(|l| {
            let (head, _) = l.split_once(what)?;
            head.rsplit(' ')
                .nth(1)
                .or_else(|| head.split(' ').next_back())?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or_else(|| panic!("no `{what}` count in: {err}"))
}

#[test]
fn a_jetstream_stream_of_a_million_lines_shared_by_three_instances() {
    if !have("nats-server", &["--version"]) {
        return;
    }
    let n = nats();
    let input = numbered(1_000_000);
    publish(&n, &input);
    let dir = tempfile::tempdir().unwrap();
    let src = format!("{},LOGS,workers", n.url);
    let members: Vec<Member> = (1..=3)
        .map(|i| detached(dir.path(), &format!("c{i}"), &["--nats", &src]))
        .collect();
    wait_until("every line passed", 120, || {
        passed(&members).values().sum::<usize>() >= 1_000_000
    });
    let seen = passed(&members);
    let shares: Vec<usize> = members.iter().map(|m| m.output().lines().count()).collect();
    let ends = stop(members);
    assert_eq!(seen.len(), 1_000_000, "every line");
    assert!(
        seen.values().all(|&c| c == 1),
        "exactly once when nothing fails"
    );
    for share in &shares {
        assert!(*share > 100_000, "each instance takes a share: {shares:?}");
    }
    let mut acked = 0;
    for (_, err) in &ends {
        assert_eq!(read_count(err, "of them delivered again"), 0, "{err}");
        acked += read_count(err, "acknowledged");
    }
    assert_eq!(acked, 1_000_000, "every message acknowledged");
}

#[test]
fn an_instance_killed_mid_stream_has_its_lines_and_alarms_redelivered() {
    if !have("nats-server", &["--version"]) {
        return;
    }
    let n = nats();
    let total = 300_000;
    let input = numbered(total);
    publish(&n, &input);
    let dir = tempfile::tempdir().unwrap();
    let src = format!("{},LOGS,workers,ack_wait=4,batch=256", n.url);
    let args = [
        "--nats",
        &src,
        "--alarm",
        "seven log:",
        "--log-alarm",
        r"seven ^line \d*777$",
        "--alarm-freq",
        "0",
    ];
    // The instance to be killed also has an alarm on every line whose action takes 5 s (a
    // queue that never fills: its lines are written at once): what it has read waits for
    // those alarms, unacknowledged, when it dies.
    let http = crate::support::Server::start(
        "http_recorder.py",
        &dir.path().join("records"),
        &["--delay", "5"],
    );
    let slow = format!("slow curl:http://127.0.0.1:{}/hook;timeout=30", http.banner);
    let mut first: Vec<&str> = args.to_vec();
    first.extend([
        "--alarm",
        &slow,
        "--alarm-overflow",
        "slow block",
        "--alarm-queue",
        "400000",
        "--log-alarm",
        "slow ^line",
    ]);
    let mut members: Vec<Member> = vec![detached(dir.path(), "c1", &first)];
    members.extend((2..=3).map(|i| detached(dir.path(), &format!("c{i}"), &args)));
    wait_until("the first instance's first thousand lines", 60, || {
        members[0]
            .output()
            .lines()
            .filter(|l| l.starts_with("line "))
            .count()
            >= 1000
    });
    let held = members[0]
        .output()
        .lines()
        .filter(|l| l.starts_with("line "))
        .count() as u64;
    // SIGKILL: no shutdown, no acknowledgement of what is in flight.
    let _ = members[0].child.kill();
    let _ = members[0].child.wait();
    wait_until("every line passed by someone", 120, || {
        passed(&members).len() >= total
    });
    let seen = passed(&members);
    let alarmed: Vec<String> = members
        .iter()
        .flat_map(|m| {
            alarms(&m.output())
                .into_iter()
                .filter_map(|a| a.split("ALARM: ").nth(1).map(str::to_string))
                .collect::<Vec<_>>()
        })
        .collect();
    let killed = members.remove(0);
    let ends = stop(members);
    drop(killed);
    assert_eq!(seen.len(), total, "no line lost");
    let expected: Vec<String> = (0..total)
        .map(|i| format!("line {i}"))
        .filter(|l| l.ends_with("777"))
        .collect();
    for e in &expected {
        assert!(alarmed.contains(e), "alarm for `{e}` lost");
    }
    let dup_lines: usize = seen.values().map(|&c| c - 1).sum();
    let redelivered: u64 = ends
        .iter()
        .map(|(_, err)| read_count(err, "of them delivered again"))
        .sum();
    assert!(
        redelivered >= held,
        "every line the killed instance had read came again ({held} read, {redelivered} redelivered)"
    );
    assert!(
        dup_lines as u64 <= redelivered,
        "duplicates ({dup_lines}) are the redelivered messages ({redelivered}) at most"
    );
    // Bounded: what the consumer lets be unacknowledged at once (max_pending).
    assert!(redelivered <= 20_000, "{redelivered}");
    assert!(
        alarmed.len() - expected.len() <= dup_lines,
        "duplicate alarms come only from duplicate lines"
    );
}

#[test]
fn the_readme_two_host_example_pages_once() {
    if !have("redis-server", &["--version"]) {
        return;
    }
    let out = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/two-hosts.sh"
        ))
        .env("LOGALARM", crate::support::bin_path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text.matches("ALARM: ERROR db connection refused").count(),
        1,
        "{text}"
    );
    // One digest counting both hosts; on a loaded machine a host's last held lines may reach
    // the server after the claim and go out in a second digest: every line is told once.
    let told: u64 = text
        .lines()
        .filter_map(|l| {
            l.split("db: ")
                .nth(1)?
                .split(" more like this")
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert_eq!(told, 999, "{text}");
    assert!(text.contains("on 2 logalarm(s) (web1 "), "{text}");
    // The page and the digest go out through one host or through both (whichever host's
    // digest time comes first claims it): never more alarms than one page and the digest.
    assert_eq!(
        text.matches(" - ALARM: ").count(),
        1 + text.matches(" more like this").count(),
        "{text}"
    );
    assert_eq!(text.matches("500 lines passed").count(), 2, "{text}");
}

#[test]
fn alarms_slower_than_ack_wait_are_not_delivered_twice() {
    if !have("nats-server", &["--version"]) || !have("python3", &["--version"]) {
        return;
    }
    let n = nats();
    publish(&n, b"ERROR k1\nERROR k2\nERROR k3\n");
    let dir = tempfile::tempdir().unwrap();
    // Each alarm takes 2 s to deliver: 6 s in all, with ack_wait=1.
    let http = crate::support::Server::start(
        "http_recorder.py",
        &dir.path().join("records"),
        &["--delay", "2"],
    );
    let src = format!("{},LOGS,slow,ack_wait=1", n.url);
    let alarm = format!("page curl:http://127.0.0.1:{}/hook;timeout=10", http.banner);
    let args = [
        "--nats",
        &src,
        "--alarm",
        &alarm,
        "--alarm-overflow",
        "page block",
        "--log-alarm",
        "page ERROR",
        "--alarm-freq",
        "0",
    ];
    let members: Vec<Member> = (1..=2)
        .map(|i| detached(dir.path(), &format!("s{i}"), &args))
        .collect();
    http.wait_records(3, 30);
    std::thread::sleep(Duration::from_millis(1500));
    let ends = stop(members);
    assert_eq!(http.records().len(), 3, "each alarm delivered once");
    let passed: usize = ends
        .iter()
        .map(|(out, _)| out.lines().filter(|l| l.starts_with("ERROR k")).count())
        .sum();
    assert_eq!(passed, 3, "each line passed once");
    for (_, err) in &ends {
        assert_eq!(read_count(err, "of them delivered again"), 0, "{err}");
    }
}

#[test]
fn a_hung_redis_costs_at_most_the_timeout_then_the_host_decides_alone() {
    if !have("redis-server", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(free_port(), &[]);
    let url = format!("redis://127.0.0.1:{}/hung?timeout=100", redis.port);
    let mut m = Member::start(
        dir.path(),
        "m",
        &[
            "--alarm",
            "page log:",
            "--log-alarm",
            "page ERROR",
            "--alarm-cluster",
            &url,
        ],
    );
    m.send("ERROR before\n");
    wait_until("the first page", 20, || {
        m.output().contains("ALARM: ERROR before")
    });
    // The server stops answering (SIGSTOP: connections stay open, nothing is read).
    crate::support::signal(&redis.child, libc::SIGSTOP);
    let t = Instant::now();
    for i in 0..20 {
        m.send(&format!("ERROR while hung {i}\n"));
    }
    wait_until("20 pages decided alone", 20, || {
        m.output().matches("ALARM: ERROR while hung").count() == 20
    });
    let took = t.elapsed();
    crate::support::signal(&redis.child, libc::SIGCONT);
    // One timeout (100 ms, the lane waits at most twice that), then a try once a second.
    assert!(took < Duration::from_secs(5), "{took:?}");
    std::thread::sleep(Duration::from_millis(1500));
    m.send("ERROR after\n");
    wait_until("the page after", 20, || {
        m.output().contains("ALARM: ERROR after")
    });
    let (_, err) = m.finish();
    assert_eq!(err.matches("decided locally").count(), 1, "{err}");
    assert!(err.contains("back after"), "{err}");
    assert!(
        err.contains("20 made alone") || err.contains("made alone"),
        "{err}"
    );
}
