//! `webhook:` (JSON, Slack/Mattermost, PagerDuty Events v2 shapes) against a real HTTP server
//! on loopback, and `alertmanager:` against the real Prometheus Alertmanager (Debian's
//! `prometheus-alertmanager`), its API read back: labels, grouping, resolution.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{have, run, Server};

#[test]
fn webhook_shapes_post_escaped_json_with_their_headers() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start("http_recorder.py", &dir.path().join("rec"), &[]);
    let port = srv.banner.clone();
    let url = format!("http://127.0.0.1:{port}");
    let out = run(
        &[
            "--alarm-freq",
            "0",
            "--alarm",
            &format!("j webhook:{url}/json;header=X-Team: ops"),
            "--alarm",
            &format!("s webhook:{url}/slack;shape=slack"),
            "--alarm",
            &format!("p webhook:{url}/pd;shape=pagerduty;routing_key=hunter2;severity=warning;header=Authorization: Bearer APIKEY123"),
            "--log-alarm",
            "j,s,p ^ALARM",
        ],
        b"ok\nALARM a \"quoted\" \\ line\n".to_vec(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let recs = srv.wait_records(3, 10);
    assert_eq!(recs.len(), 3, "{recs:?}");
    let body = |path: &str| -> (serde_json::Value, serde_json::Value) {
        let r = recs.iter().find(|r| r["path"] == path).unwrap();
        assert_eq!(r["method"], "POST");
        assert_eq!(r["headers"]["content-type"], "application/json");
        let b: serde_json::Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        (b, r["headers"].clone())
    };
    let line = "ALARM a \"quoted\" \\ line";
    let (j, h) = body("/json");
    assert_eq!(j["alarm"], "j");
    assert_eq!(j["message"], line);
    assert!(j["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(h["x-team"], "ops");
    let (s, _) = body("/slack");
    assert_eq!(s["text"], format!("[s] {line}"));
    let (p, h) = body("/pd");
    assert_eq!(p["routing_key"], "hunter2");
    assert_eq!(p["event_action"], "trigger");
    assert_eq!(p["payload"]["severity"], "warning");
    assert_eq!(p["payload"]["summary"], format!("[p] {line}"));
    assert_eq!(h["authorization"], "Bearer APIKEY123");
    // The listing masks the key and the headers.
    let list = run(
        &[
            "--alarm",
            "p webhook:http://h/x;shape=pagerduty;routing_key=hunter2;header=Authorization: Bearer APIKEY123",
            "--log-alarm",
            "p x",
            "--alarm-list",
        ],
        Vec::new(),
    );
    let text =
        String::from_utf8_lossy(&list.stdout).to_string() + &String::from_utf8_lossy(&list.stderr);
    assert!(
        !text.contains("hunter2") && !text.contains("APIKEY123"),
        "{text}"
    );
    assert!(text.contains("routing_key=***"), "{text}");
}

/// Alertmanager on a free loopback port, with `config`; stopped on drop.
struct Alertmanager {
    child: Child,
    url: String,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

use crate::support::free_port;

fn get(url: &str) -> Option<serde_json::Value> {
    let out = Command::new("curl").args(["-sf", url]).output().ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

fn alertmanager(dir: &Path, config: &str) -> Alertmanager {
    let port = free_port();
    let cfg = dir.join("am.yml");
    std::fs::write(&cfg, config).unwrap();
    let child = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let am = Alertmanager { child, url };
    let t = Instant::now();
    while get(&format!("{}/api/v2/status", am.url)).is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "alertmanager did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    am
}

#[test]
fn alertmanager_receives_labelled_alerts_grouped_as_configured() {
    if !have("prometheus-alertmanager", &["--version"]) || !have("curl", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let am = alertmanager(
        dir.path(),
        "route:\n  receiver: 'null'\n  group_by: ['service']\n  group_wait: 1s\nreceivers:\n  - name: 'null'\n",
    );
    let out = run(
        &[
            "--alarm-freq",
            "0",
            "--alarm",
            &format!(
                "api_down alertmanager:{};label.service=api;label.severity=page",
                am.url
            ),
            "--alarm",
            &format!(
                "api_slow alertmanager:{}/;label.service=api;resolve=3600",
                am.url
            ),
            "--alarm",
            &format!("db_down alertmanager:{};label.service=db;resolve=2", am.url),
            "--log-alarm",
            "api_down ^api: connection refused",
            "--log-alarm",
            "api_slow ^api: slow",
            "--log-alarm",
            "db_down ^db: ",
        ],
        b"api: connection refused \"x\"\napi: slow 2.5 s\ndb: gone\nok\n".to_vec(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alerts = get(&format!("{}/api/v2/alerts", am.url)).unwrap();
    let alerts = alerts.as_array().unwrap();
    assert_eq!(alerts.len(), 3, "{alerts:?}");
    let by = |name: &str| {
        alerts
            .iter()
            .find(|a| a["labels"]["alertname"] == name)
            .unwrap_or_else(|| panic!("no {name} in {alerts:?}"))
    };
    let a = by("api_down");
    assert_eq!(a["labels"]["service"], "api");
    assert_eq!(a["labels"]["severity"], "page");
    assert_eq!(a["annotations"]["summary"], "api: connection refused \"x\"");
    assert_eq!(a["status"]["state"], "active");
    assert_eq!(by("api_slow")["annotations"]["summary"], "api: slow 2.5 s");
    // Grouped as configured: by service, two groups (api: two alerts, db: one).
    let t = Instant::now();
    let groups = loop {
        let g = get(&format!("{}/api/v2/alerts/groups", am.url)).unwrap();
        if g.as_array().is_some_and(|g| g.len() == 2) || t.elapsed() > Duration::from_secs(10) {
            break g;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut sizes: Vec<(String, usize)> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["labels"]["service"].as_str().unwrap().to_string(),
                g["alerts"].as_array().unwrap().len(),
            )
        })
        .collect();
    sizes.sort();
    assert_eq!(sizes, [("api".to_string(), 2), ("db".to_string(), 1)]);
    // `resolve=2`: db_down resolves 2 s after it fired.
    let t = Instant::now();
    loop {
        let alerts = get(&format!("{}/api/v2/alerts?active=true", am.url)).unwrap();
        let active: Vec<&str> = alerts
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a["labels"]["alertname"].as_str())
            .collect();
        if !active.contains(&"db_down") {
            assert!(active.contains(&"api_down") && active.contains(&"api_slow"));
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "db_down never resolved: {active:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn alertmanager_labels_from_captures_and_an_absence_resolved() {
    if !have("prometheus-alertmanager", &["--version"]) || !have("curl", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let am = alertmanager(
        dir.path(),
        "route:\n  receiver: 'null'\n  group_by: ['alertname']\nreceivers:\n  - name: 'null'\n",
    );
    let mut child = crate::support::spawn_open(&[
        "--alarm-freq",
        "0",
        "--alarm",
        &format!(
            "brute alertmanager:{};label.ip={{ip}};label.user=u-{{1}};label.team=sec",
            am.url
        ),
        "--log-alarm",
        r"brute Failed password for (\w+) from (?<ip>[\d.]+)",
        "--alarm",
        &format!("cron alertmanager:{};label.job=backup", am.url),
        "--log-alarm",
        "cron backup done",
        "--alarm-absence",
        "cron 1",
    ]);
    let mut stdin = child.stdin.take().unwrap();
    use std::io::Write;
    stdin
        .write_all(b"backup done\nFailed password for root from 10.0.0.7 port 22\nFailed password for admin from 10.0.0.9 port 22\n")
        .unwrap();
    // The absence (1 s without `backup done`) fires, then the heartbeat resolves it.
    let active = |name: &str| -> Vec<serde_json::Value> {
        get(&format!("{}/api/v2/alerts?active=true", am.url))
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a["labels"]["alertname"] == name)
            .collect()
    };
    let t = Instant::now();
    while active("cron").is_empty() {
        assert!(t.elapsed() < Duration::from_secs(10), "no absence alert");
        std::thread::sleep(Duration::from_millis(100));
    }
    let cron = active("cron");
    assert_eq!(cron[0]["labels"]["job"], "backup");
    assert!(cron[0]["annotations"]["summary"]
        .as_str()
        .unwrap()
        .starts_with("cron: no line for 1 s"));
    stdin.write_all(b"backup done\n").unwrap();
    let t = Instant::now();
    while !active("cron").is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the absence was not resolved"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // One alert per address: labels from the raising rule's groups.
    let mut brute: Vec<(String, String, String)> = active("brute")
        .iter()
        .map(|a| {
            let l = &a["labels"];
            (
                l["ip"].as_str().unwrap().to_string(),
                l["user"].as_str().unwrap().to_string(),
                l["team"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    brute.sort();
    let want = [
        ("10.0.0.7", "u-root", "sec"),
        ("10.0.0.9", "u-admin", "sec"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(brute, want);
    drop(stdin);
    assert!(child.wait().unwrap().success());
    // Spooled, these labels would be lost: refused at start-up.
    let out = run(
        &[
            "--alarm-spool",
            dir.path().join("spool").to_str().unwrap(),
            "--alarm",
            "brute alertmanager:http://127.0.0.1:1;label.ip={ip}",
            "--log-alarm",
            r"brute from (?<ip>\S+)",
        ],
        Vec::new(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the spool keeps messages only"), "{err}");
}

#[test]
fn curl_arguments_are_templates_only_when_asked_and_escaped_where_they_land() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start("http_recorder.py", &dir.path().join("rec"), &[]);
    let port = srv.banner.clone();
    let input = b"login failed for user a b&c/d from 10.0.0.1\nlogin failed for user evil\rBcc: x@evil.example from 10.0.0.3\n";
    let out = run(
        &[
            "--alarm-freq",
            "0",
            "--alarm",
            &format!("t curl:http://127.0.0.1:{port}/hook/{{ip}}?u={{user}};templates=1;method=POST;subject=login {{user}} from {{ip}};mail_to={{user}}@example.com,ops@example.com"),
            "--alarm",
            // Without templates=1 the braces are text, as in uWSGI.
            &format!("plain curl:http://127.0.0.1:{port}/plain;method=POST;subject=literal {{ip}}"),
            "--log-alarm",
            r"t,plain login failed for user (?<user>.+) from (?<ip>\S+)",
        ],
        input.to_vec(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs = srv.wait_records(4, 10);
    assert_eq!(recs.len(), 4, "{recs:?}");
    let mut templated: Vec<(String, String)> = recs
        .iter()
        .filter(|r| r["path"].as_str().unwrap().starts_with("/hook/"))
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_string(),
                r["body"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    templated.sort();
    assert_eq!(templated[0].0, "/hook/10.0.0.1?u=a%20b%26c%2Fd");
    assert!(
        templated[0].1.starts_with(
            "To: abcd@example.com,ops@example.com\r\nSubject: login a b&c/d from 10.0.0.1\r\n\r\n"
        ),
        "{:?}",
        templated[0].1
    );
    // A carriage return in a capture cannot start a header of its own.
    assert_eq!(
        templated[1].0,
        "/hook/10.0.0.3?u=evil%0DBcc%3A%20x%40evil.example"
    );
    assert!(
        templated[1]
            .1
            .starts_with("To: evilBccx@evil.example@example.com,ops@example.com\r\nSubject: login evil Bcc: x@evil.example from 10.0.0.3\r\n\r\n"),
        "{:?}",
        templated[1].1
    );
    let plain: Vec<&serde_json::Value> = recs.iter().filter(|r| r["path"] == "/plain").collect();
    assert_eq!(plain.len(), 2);
    assert!(plain[0]["body"]
        .as_str()
        .unwrap()
        .starts_with("Subject: literal {ip}\r\n"));
}
