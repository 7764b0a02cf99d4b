//! `logalarm replay`: the alarm path over historical logs in the log's own time, checked
//! against calculations written here (small and obvious), and against a recorded live run.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::bin;

const LOGHUB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/corpus/loghub");

pub(crate) fn corpus(name: &str) -> String {
    let path = format!("{LOGHUB}/{name}");
    assert!(
        std::path::Path::new(&path).is_file(),
        "corpus file missing: {path}"
    );
    path
}

pub(crate) fn replay_json(args: &[&str]) -> serde_json::Value {
    let out = bin()
        .arg("replay")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(2000)])
        )
    })
}

/// One predicted alarm: (line in its file, alarm, fired, time or none).
type Predicted = (u64, String, bool, Option<String>);

fn events(v: &serde_json::Value) -> Vec<Predicted> {
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["alarm"].as_str().unwrap().to_string(),
                e["verdict"] == "fire",
                e["time"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// uWSGI's anti-flood over (time in µs, alarm, message): suppressed when the message equals
/// the last one fired for that alarm less than `freq_us` ago.
struct Flood {
    last: std::collections::HashMap<String, (Vec<u8>, i64)>,
    freq_us: i64,
}

impl Flood {
    fn fires(&mut self, alarm: &str, msg: &[u8], t: i64) -> bool {
        if let Some((m, at)) = self.last.get(alarm) {
            if m == msg && t - at < self.freq_us {
                return false;
            }
        }
        self.last.insert(alarm.to_string(), (msg.to_vec(), t));
        true
    }
}

#[test]
fn apache_corpus_as_an_independent_calculation_predicts() {
    // `[Sun Dec 04 04:47:44 2005] [error] ...`: the whole corpus is December 2005, so the
    // time is the day of the month and the clock.
    let path = corpus("Apache_2k.log");
    let text = std::fs::read(&path).unwrap();
    let mut flood = Flood {
        last: Default::default(),
        freq_us: 3_000_000,
    };
    let mut want = Vec::new();
    for (i, line) in text.split_inclusive(|&b| b == b'\n').enumerate() {
        let s = String::from_utf8_lossy(line);
        let alarm = if s.contains("[error]") {
            "err"
        } else if s.contains("[notice]") {
            "note"
        } else {
            continue;
        };
        assert_eq!(&s[5..8], "Dec");
        assert_eq!(&s[21..25], "2005");
        let day: i64 = s[9..11].trim().parse().unwrap();
        let (h, m, sec): (i64, i64, i64) = (
            s[12..14].parse().unwrap(),
            s[15..17].parse().unwrap(),
            s[18..20].parse().unwrap(),
        );
        let t = (((day * 24 + h) * 60 + m) * 60 + sec) * 1_000_000;
        let fired = flood.fires(alarm, line, t);
        let time = format!("2005-12-{day:02}T{h:02}:{m:02}:{sec:02}.000Z");
        want.push((i as u64 + 1, alarm.to_string(), fired, Some(time)));
    }
    let v = replay_json(&[
        &path,
        "--alarm",
        "err log:",
        "--alarm",
        "note log:",
        "--log-alarm",
        r"err \[error\]",
        "--log-alarm",
        r"note \[notice\]",
        "--alarm-freq",
        "3",
    ]);
    let got = events(&v);
    let suppressed = want.iter().filter(|w| !w.2).count();
    assert!(suppressed > 100, "the corpus repeats lines: {suppressed}");
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
    let s = &v["summary"];
    assert_eq!(s["lines"], 2000);
    assert_eq!(s["untimed"], 0);
    assert_eq!(s["rules"][0]["lines"], 595);
    assert_eq!(s["rules"][1]["lines"], 1405);
    assert_eq!(s["first"], "2005-12-04T04:47:44.000Z");
    let fired: u64 = want.iter().filter(|w| w.2).count() as u64;
    let a = &s["alarms"];
    assert_eq!(
        a[0]["fired"].as_u64().unwrap() + a[1]["fired"].as_u64().unwrap(),
        fired
    );
    let timeline: u64 = a[0]["timeline"]["raised"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .sum();
    assert_eq!(timeline, 595);
}

#[test]
fn lines_without_time_at_a_given_rate() {
    // Proxifier's lines without their `[10.30 16:49:06] ` stamp: many identical messages,
    // placed in time by their position at 50 lines a second.
    let text = std::fs::read_to_string(corpus("Proxifier_2k.log")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("untimed.log");
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.split_once("] ").map_or(l, |(_, rest)| rest))
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let mut flood = Flood {
        last: Default::default(),
        freq_us: 2_000_000,
    };
    let mut want = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if !l.starts_with("chrome.exe") {
            continue;
        }
        let t = i as i64 * 1_000_000 / 50;
        let msg = format!("{l}\n");
        want.push((
            i as u64 + 1,
            "p".to_string(),
            flood.fires("p", msg.as_bytes(), t),
        ));
    }
    let v = replay_json(&[
        file.to_str().unwrap(),
        "--rate",
        "50",
        "--alarm",
        "p log:",
        "--log-alarm",
        "p ^chrome\\.exe",
        "--alarm-freq",
        "2",
    ]);
    let got: Vec<_> = events(&v)
        .into_iter()
        .map(|(l, a, f, _)| (l, a, f))
        .collect();
    assert!(want.iter().filter(|w| !w.2).count() > 50);
    assert!(want.iter().filter(|w| w.2).count() > 50);
    assert_eq!(got, want);
}

#[test]
fn syslog_without_a_year_and_text_summary() {
    let path = corpus("Linux_2k.log");
    let out = bin()
        .args(["replay", &path, "--year", "2005", "--alarm", "auth log:"])
        .args(["--log-alarm", "auth authentication failure", "--summary"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let n = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| l.contains("authentication failure"))
        .count();
    assert!(n > 100);
    assert!(
        text.contains(&format!(
            "\"auth\" (log:)  raised {n}, would fire {n}, suppressed 0"
        )),
        "{text}"
    );
    assert!(
        text.contains("log time 2005-06-14 15:16:01.000 → 2005-07-26"),
        "{text}"
    );
    // `lines matched  candidate lines checked  time confirming  rule`
    let row = text
        .lines()
        .find(|l| l.ends_with("ms  log-alarm auth authentication failure"))
        .unwrap_or_else(|| panic!("{text}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[0], n.to_string(), "{row}");
    assert!(cols[1].parse::<u64>().unwrap() >= n as u64, "{row}");
    assert!(cols[2].parse::<f64>().is_ok(), "{row}");
    let spark = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("raised |"))
        .and_then(|l| l.strip_suffix('|'))
        .unwrap();
    assert_eq!(spark.chars().count(), 48, "{text}");
    assert!(spark.contains('█'), "{text}");
    assert!(!text.contains("FIRE"), "--summary prints no events");
}

#[test]
fn bad_replay_arguments_are_named() {
    for (args, says) in [
        (&["replay"][..], "no log file given"),
        (
            &["replay", "x.log", "--rate", "fast"],
            "--rate: not a positive number",
        ),
        (
            &["replay", "x.log", "--time-format", "%Q %H"],
            "unknown code %Q",
        ),
        (&["replay", "x.log", "--bogus"], "unknown option: --bogus"),
        (
            &["replay", "/nonexistent.log", "--alarm", "a log:"],
            "cannot read /nonexistent.log",
        ),
        (&["replay", "x.log", "--log-alarm", "nope x"], "nope"),
    ] {
        let out = bin().args(args).stdin(Stdio::null()).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

fn iso_now() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let (secs, ms) = (d.as_secs() as i64, d.subsec_millis());
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Days since the epoch to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[test]
fn replay_of_a_recorded_live_run_gives_the_same_alarms() {
    // The message is the line cut to 20 bytes, and the time is at the end of the line: the
    // same message comes back at different times, so anti-flood decides, live and in replay.
    let args = [
        "--alarm",
        "db log:",
        "--alarm",
        "disk log:",
        "--log-alarm",
        "db ^ERROR db",
        "--log-alarm",
        "disk ^ERROR disk",
        "--not-log-alarm",
        "db harmless",
        "--alarm-msg-size",
        "20",
        "--alarm-freq",
        "2",
    ];
    // (seconds from the start, text): boundaries at least 0.3 s away from the 2 s window.
    let schedule = [
        (0.0, "ERROR db down"),
        (0.0, "ERROR db down"),
        (0.4, "ERROR db down"),
        (0.5, "INFO all fine"),
        (0.7, "ERROR disk full"),
        (1.2, "ERROR db down"),
        (1.4, "ERROR db down harmless"),
        (2.5, "ERROR db down"),
        (3.0, "ERROR db down"),
        (3.1, "ERROR db is slow"),
        (3.3, "ERROR db down"),
        (3.5, "ERROR disk full"),
    ];
    let mut live = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = live.stdin.take().unwrap();
    let mut recorded = String::new();
    let start = Instant::now();
    for (at, text) in schedule {
        let due = start + Duration::from_secs_f64(at);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let line = format!("{text:<24} at {}\n", iso_now());
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.flush().unwrap();
        recorded.push_str(&line);
    }
    drop(stdin);
    let out = live.wait_with_output().unwrap();
    assert!(out.status.success());
    let live_fired: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(" - ALARM: ").map(|(_, m)| m.to_string()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("recorded.log");
    std::fs::write(&file, &recorded).unwrap();
    let mut replay_args = vec![file.to_str().unwrap()];
    replay_args.extend(args);
    let v = replay_json(&replay_args);
    let evs = v["events"].as_array().unwrap();
    let replay_fired: Vec<String> = evs
        .iter()
        .filter(|e| e["verdict"] == "fire")
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect();
    // Fired: db 0.0, disk 0.7, db 2.5, "ERROR db is slow" 3.1, "ERROR db down" again at 3.3
    // (a different message fired in between), disk 3.5 (0.7 + 2.8). Suppressed: 0.0, 0.4,
    // 1.2, 3.0.
    assert_eq!(live_fired.len(), 6, "{live_fired:?}");
    assert_eq!(replay_fired, live_fired);
    let suppressed = evs.iter().filter(|e| e["verdict"] == "suppress").count();
    assert_eq!(suppressed, 4, "{evs:?}");
    // --execute: the log: action really runs for each alarm that fires, into standard output
    // as live (the report goes to standard error): the same alarm lines as the live run.
    let mut exec_args = vec!["replay", file.to_str().unwrap(), "--execute", "--summary"];
    exec_args.extend(args);
    let out = bin().args(&exec_args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let executed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(" - ALARM: ").map(|(_, m)| m.to_string()))
        .collect();
    assert_eq!(executed, live_fired);
    assert!(String::from_utf8_lossy(&out.stderr).contains("would fire 4"));
}

#[test]
fn html_report_is_drawn_in_chromium() {
    if !crate::support::have("chromium", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let out = bin()
        .args(["replay", &corpus("Apache_2k.log"), "--summary"])
        .args(["--alarm", "err log:", "--alarm", "note log:"])
        .args([
            "--log-alarm",
            r"err \[error\]",
            "--log-alarm",
            r"note \[notice\]",
        ])
        .args(["--report", page.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.contains("<script"), "no script");
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("src="),
        "no network"
    );
    let chromium = |extra: &[&str]| {
        let profile = dir.path().join("profile");
        std::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(format!("file://{}", page.display()))
            .output()
            .unwrap()
    };
    // The DOM Chromium built: every alarm and rule named, bars drawn.
    let dom = String::from_utf8(chromium(&["--dump-dom"]).stdout).unwrap();
    for name in [
        "alarm \"err\" (log:)",
        "alarm \"note\" (log:)",
        r"log-alarm err \[error\]",
        r"log-alarm note \[notice\]",
    ] {
        assert!(
            dom.contains(&name.replace('"', "&quot;")) || dom.contains(name),
            "{name} not in the DOM"
        );
    }
    assert!(dom.matches("class=\"fired\"").count() > 20);
    assert!(dom.matches("class=\"suppressed\"").count() > 5);
    assert!(dom.matches("class=\"matched\"").count() > 20);
    // The screenshot: the plot areas hold the bars' colours.
    let shot = dir.path().join("shot.png");
    let o = chromium(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1100,1400",
    ]);
    assert!(
        shot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let decoder = png::Decoder::new(std::fs::File::open(&shot).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = match info.color_type {
        png::ColorType::Rgba => 4,
        png::ColorType::Rgb => 3,
        other => panic!("unexpected colour type {other:?}"),
    };
    let count = |rgb: (u8, u8, u8)| {
        buf[..info.buffer_size()]
            .chunks(px)
            .filter(|p| {
                p[0].abs_diff(rgb.0) < 12 && p[1].abs_diff(rgb.1) < 12 && p[2].abs_diff(rgb.2) < 12
            })
            .count()
    };
    let (fired, suppressed, matched, plot) = (
        count((0xd6, 0x27, 0x28)),
        count((0x9e, 0x9e, 0x9e)),
        count((0x1f, 0x77, 0xb4)),
        count((0xf4, 0xf4, 0xf4)),
    );
    assert!(plot > 50_000, "plot areas drawn: {plot}");
    assert!(fired > 2_000, "fired bars: {fired}");
    assert!(suppressed > 200, "suppressed bars: {suppressed}");
    assert!(matched > 1_000, "rule bars: {matched}");
}

#[test]
fn per_rule_cost_counts_the_candidate_lines_each_rule_was_checked_on() {
    // Apache_2k: 595 `[error]` lines, 1,405 `[notice]` lines, every line starting `[Day Mon`.
    let path = corpus("Apache_2k.log");
    let v = replay_json(&[
        &path,
        "--alarm",
        "a log:",
        "--log-alarm",
        r"a \[error\] mod_jk child workerEnv in error state",
        "--log-alarm",
        r"a this_text_is_nowhere_in_the_apache_sample",
        "--log-alarm",
        r"a ^\[\w+ \w+ \d+ [\d:]+ \d+\] \[notice\]",
    ]);
    let rules = v["summary"]["rules"].as_array().unwrap();
    let n = |i: usize, k: &str| rules[i][k].as_f64().unwrap();
    assert_eq!(rules.len(), 3);
    for r in rules {
        let m = |k: &str| r[k].as_f64().unwrap();
        assert!(m("checked") >= m("lines"), "{r}");
    }
    assert!(n(0, "lines") > 0.0);
    // The absent literal names no line: never checked, no time.
    assert_eq!(n(1, "lines"), 0.0);
    assert_eq!(n(1, "checked"), 0.0, "{}", rules[1]);
    assert_eq!(n(1, "confirm_ms"), 0.0);
    // `[notice]` is a literal of the third rule: checked on the notice lines at least.
    assert_eq!(n(2, "lines"), 1405.0);
    assert!(n(0, "confirm_ms") + n(2, "confirm_ms") > 0.0);
}
