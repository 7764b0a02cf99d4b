//! `--metrics` and `--stats`: the counters equal what the test sent, `promtool check metrics`
//! accepts the exposition, and the real Prometheus scrapes it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{bin, have, wait_until};

/// Start logalarm with `args` and read the addresses it serves from its standard error.
fn start(args: &[&str]) -> (Child, Vec<String>, std::thread::JoinHandle<Vec<String>>) {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut served = Vec::new();
    let wanted = args
        .iter()
        .filter(|a| **a == "--metrics" || **a == "--stats")
        .count();
    while served.len() < wanted {
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0, "logalarm ended");
        if let Some((_, addr)) = line.trim().split_once(" served on ") {
            let addr = addr
                .trim_start_matches("http://")
                .trim_start_matches("tcp ")
                .trim_end_matches("/metrics")
                .trim_end_matches('/');
            served.push(addr.to_string());
        }
    }
    let rest = std::thread::spawn(move || err.lines().map_while(Result::ok).collect());
    (child, served, rest)
}

fn http_get(addr: &str, path: &str, accept: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// The value of the sample `name{labels}` (labels as written, in order), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

#[test]
fn counters_equal_what_was_sent_and_promtool_accepts_them() {
    let (mut child, served, _err) = start(&[
        "--alarm",
        "db log:",
        "--alarm",
        "quiet cmd:true",
        "--log-alarm",
        r#"db ERROR "(\w+)""#,
        "--not-log-alarm",
        "db harmless",
        "--log-alarm",
        "quiet ^never$",
        "--alarm-freq",
        "0",
        "--metrics",
        "127.0.0.1:0",
        "--stats",
        "127.0.0.1:0",
    ]);
    let mut stdin = child.stdin.take().unwrap();
    let mut sent = 0usize;
    let (mut lines, mut raising, mut harmless) = (0u64, 0u64, 0u64);
    for i in 0..5000 {
        let line = match i % 50 {
            0 => {
                raising += 1;
                format!("ERROR \"db\" down {i}\n")
            }
            1 => {
                harmless += 1;
                format!("ERROR \"db\" harmless {i}\n")
            }
            _ => format!("GET /index {i} 200\n"),
        };
        stdin.write_all(line.as_bytes()).unwrap();
        sent += line.len();
        lines += 1;
    }
    stdin.flush().unwrap();
    let metrics = &served[0];
    let mut text = String::new();
    wait_until("the lines counted", 10, || {
        text = http_get(metrics, "/metrics", "*/*");
        sample(&text, "logalarm_input_lines_total{input=\"stdin\"}") == Some(lines as f64)
            && sample(
                &text,
                "logalarm_alarms_ran_total{alarm=\"db\",action=\"log\"}",
            ) == Some(raising as f64)
    });
    let get = |s: &str| sample(&text, s).unwrap_or_else(|| panic!("no {s} in:\n{text}"));
    assert_eq!(
        get("logalarm_input_bytes_total{input=\"stdin\"}"),
        sent as f64
    );
    assert_eq!(
        get("logalarm_input_passed_bytes_total{input=\"stdin\"}"),
        sent as f64
    );
    assert_eq!(
        get("logalarm_input_alarms_total{input=\"stdin\"}"),
        raising as f64
    );
    assert_eq!(
        get(r#"logalarm_rule_matches_total{index="1",rule="log-alarm db ERROR \"(\\w+)\""}"#),
        (raising + harmless) as f64
    );
    assert_eq!(
        get(r#"logalarm_rule_matches_total{index="2",rule="not-log-alarm db harmless"}"#),
        harmless as f64
    );
    assert_eq!(
        get(r#"logalarm_rule_matches_total{index="3",rule="log-alarm quiet ^never$"}"#),
        0.0
    );
    assert_eq!(
        get("logalarm_alarms_raised_total{alarm=\"db\",action=\"log\"}"),
        raising as f64
    );
    assert_eq!(
        get("logalarm_alarms_raised_total{alarm=\"quiet\",action=\"cmd\"}"),
        0.0
    );
    assert_eq!(
        get("logalarm_alarm_wait_seconds_count{alarm=\"db\"}"),
        raising as f64
    );
    assert_eq!(
        get("logalarm_alarm_run_seconds_bucket{le=\"+Inf\",alarm=\"db\"}"),
        raising as f64
    );
    // Read → match and read → start, for every raised line; each stage's time is within the
    // whole path's, and the whole path is within the run of this test.
    for h in ["read", "latency"] {
        assert_eq!(
            get(&format!("logalarm_alarm_{h}_seconds_count{{alarm=\"db\"}}")),
            raising as f64,
            "{h}"
        );
    }
    let sum = |h: &str| get(&format!("logalarm_alarm_{h}_seconds_sum{{alarm=\"db\"}}"));
    assert!(sum("read") <= sum("latency") + 1e-9, "{text}");
    assert!(sum("wait") <= sum("latency") + 1e-9, "{text}");
    assert!(sum("latency") > 0.0 && sum("latency") < 60.0 * raising as f64);
    assert!(
        get("logalarm_alarm_latency_seconds_bucket{le=\"0.00001\",alarm=\"db\"}")
            <= get("logalarm_alarm_latency_seconds_bucket{le=\"60.0\",alarm=\"db\"}"),
        "{text}"
    );
    assert_eq!(get("logalarm_queue_capacity{lane=\"main\"}"), 8192.0);
    assert!(get("logalarm_output_bytes_total") >= sent as f64);
    // The classic text format for promtool; OpenMetrics when asked for it.
    assert!(!text.contains("# EOF"));
    assert!(text.contains("# TYPE logalarm_input_lines_total counter"));
    let om = http_get(
        metrics,
        "/metrics",
        "application/openmetrics-text; version=1.0.0",
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("# TYPE logalarm_input_lines counter"));
    if have("promtool", &["--version"]) {
        let (status, said) = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .output_with(&text);
        assert!(status.success(), "promtool: {said}");
    }
    // The stats server: the same numbers, JSON on connect, as uWSGI's.
    let mut s = TcpStream::connect(&served[1]).unwrap();
    let mut json = String::new();
    s.read_to_string(&mut json).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["inputs"][0]["lines"], lines);
    assert_eq!(v["inputs"][0]["bytes"], sent as u64);
    assert_eq!(v["inputs"][0]["passed_bytes"], sent as u64);
    assert_eq!(v["alarms"][0]["alarm"], "db");
    assert_eq!(v["alarms"][0]["raised"], raising);
    assert_eq!(v["alarms"][0]["ran"], raising);
    assert_eq!(v["rules"][1]["matches"], harmless);
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

/// Run a command with `input` on its standard input: (status, stdout + stderr).
trait OutputWith {
    fn output_with(&mut self, input: &str) -> (std::process::ExitStatus, String);
}

impl OutputWith for Command {
    fn output_with(&mut self, input: &str) -> (std::process::ExitStatus, String) {
        let mut c = self
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let out = c.wait_with_output().unwrap();
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status, text)
    }
}

#[test]
fn supervised_exits_are_counted() {
    let (mut child, served, _err) = start(&[
        "--attach-daemon",
        "echo started; exit 3",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let mut text = String::new();
    wait_until("an exit counted", 10, || {
        text = http_get(&served[0], "/metrics", "*/*");
        sample(
            &text,
            "logalarm_process_exits_total{process=\"echo started; exit 3\",how=\"status 3\"}",
        )
        .is_some_and(|n| n >= 1.0)
    });
    assert!(
        sample(
            &text,
            "logalarm_process_starts_total{process=\"echo started; exit 3\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    crate::support::signal(&child, libc::SIGTERM);
    drop(child.stdin.take());
    let _ = child.wait();
}

#[test]
fn a_taken_port_is_a_start_up_error() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let out = bin()
        .args(["--alarm", "a log:", "--metrics", &addr])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("invalid metrics: {addr}")), "{err}");
    let out = bin()
        .args(["--metrics", "nowhere"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid metrics: nowhere"));
}

#[test]
fn the_real_prometheus_scrapes_it() {
    if !have("prometheus", &["--version"]) {
        return;
    }
    let (mut child, served, _err) = start(&[
        "--alarm",
        "db log:",
        "--log-alarm",
        "db ERROR",
        "--alarm-freq",
        "0",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..300 {
        writeln!(stdin, "{} {i}", if i % 3 == 0 { "ERROR" } else { "ok" }).unwrap();
    }
    stdin.flush().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: logalarm\n    static_configs:\n      - targets: ['{}']\n",
            served[0]
        ),
    )
    .unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut prom = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let api = format!("127.0.0.1:{port}");
    let query = |q: &str| -> Option<serde_json::Value> {
        let mut s = TcpStream::connect(&api).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET /api/v1/query?query={q} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        serde_json::from_str(out.split_once("\r\n\r\n")?.1).ok()
    };
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut last = None;
    let ok = loop {
        if let Some(v) = query("logalarm_alarms_raised_total") {
            let value = v["data"]["result"][0]["value"][1]
                .as_str()
                .map(str::to_string);
            if value.as_deref() == Some("100") {
                let up = query("up").unwrap();
                assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
                let lines = query("logalarm_input_lines_total").unwrap();
                assert_eq!(lines["data"]["result"][0]["value"][1], "300", "{lines}");
                assert_eq!(
                    lines["data"]["result"][0]["metric"]["input"], "stdin",
                    "{lines}"
                );
                break true;
            }
            last = Some(v);
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let _ = prom.kill();
    let _ = prom.wait();
    drop(stdin);
    let _ = child.wait();
    assert!(ok, "Prometheus never saw 100 alarms raised: {last:?}");
}
