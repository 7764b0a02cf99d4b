//! Alarms people want: message templates with captures, thresholds, anti-flood per key —
//! through the binary (live, the real clock) and through `replay` (virtual time), against
//! calculations written here.

use std::collections::{HashMap, VecDeque};

use crate::replay::{corpus, replay_json};

/// The brute-force recipe of README's cookbook.
const BRUTE: [&str; 10] = [
    "--alarm",
    "brute log:",
    "--log-alarm",
    r"brute Failed password for (invalid user )?(?<user>\S+) from (?<ip>\d+\.\d+\.\d+\.\d+)",
    "--alarm-key",
    "brute {ip}",
    "--alarm-threshold",
    "brute 5 60",
    "--alarm-template",
    "brute {count} failed logins for {user} from {ip} between {first} and {last}",
];

/// Per key: the times of the matches not yet counted, and when it last fired.
#[derive(Default)]
struct Key {
    hits: VecDeque<i64>,
    fired: Option<i64>,
}

#[test]
fn brute_force_per_ip_in_replay_is_what_a_calculation_predicts() {
    let path = corpus("OpenSSH_2k.log");
    let text = std::fs::read_to_string(&path).unwrap();
    let re = regex::Regex::new(
        r"Failed password for (invalid user )?(?P<user>\S+) from (?P<ip>\d+\.\d+\.\d+\.\d+)",
    )
    .unwrap();
    // `Dec 10 06:55:46 ...`: all of December (replayed as 2026).
    let (count, window, freq) = (5usize, 60i64, 600i64);
    let show = |t: i64| {
        format!(
            "2026-12-{:02} {:02}:{:02}:{:02}.000",
            t / 86400,
            t / 3600 % 24,
            t / 60 % 60,
            t % 60
        )
    };
    let mut keys: HashMap<String, Key> = HashMap::new();
    // (line, verdict, why, message when fired)
    let mut want: Vec<(u64, &str, &str, Option<String>)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(c) = re.captures(line) else { continue };
        assert_eq!(&line[..4], "Dec ");
        let day: i64 = line[4..6].trim().parse().unwrap();
        let hms: Vec<i64> = line[7..15].split(':').map(|x| x.parse().unwrap()).collect();
        let t = day * 86400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
        let k = keys.entry(c["ip"].to_string()).or_default();
        k.hits.push_back(t);
        while k.hits.front().is_some_and(|&h| t - h >= window) {
            k.hits.pop_front();
        }
        let n = i as u64 + 1;
        if k.hits.len() < count {
            want.push((n, "suppress", "threshold", None));
            continue;
        }
        if k.fired.is_some_and(|f| t - f < freq) {
            want.push((n, "suppress", "anti_flood", None));
            continue;
        }
        k.fired = Some(t);
        let first = k.hits[k.hits.len() - count];
        k.hits.clear();
        let msg = format!(
            "{count} failed logins for {} from {} between {} and {}",
            &c["user"],
            &c["ip"],
            show(first),
            show(t)
        );
        want.push((n, "fire", "", Some(msg)));
    }
    let mut args = vec![path.as_str(), "--year", "2026", "--alarm-freq", "600"];
    args.extend(BRUTE);
    let v = replay_json(&args);
    let got: Vec<(u64, &str, &str, Option<String>)> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let verdict = e["verdict"].as_str().unwrap();
            let why = if e["reason"]["threshold"].is_object() {
                "threshold"
            } else if e["reason"]["anti_flood"]["same_key_fired_at"].is_string() {
                "anti_flood"
            } else {
                ""
            };
            let msg = (verdict == "fire").then(|| e["message"].as_str().unwrap().to_string());
            (e["line"].as_u64().unwrap(), verdict, why, msg)
        })
        .collect();
    let fired = want.iter().filter(|w| w.1 == "fire").count();
    let flooded = want.iter().filter(|w| w.2 == "anti_flood").count();
    assert!(
        fired >= 3 && flooded >= 10,
        "the sample has storms: {fired} fired, {flooded} held"
    );
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
}

#[test]
fn live_threshold_per_key_with_captures_in_the_message() {
    // Lines for three clients; within one second, so the 60 s window holds them all.
    let plan = [
        ("10.0.0.1", 6),
        ("10.0.0.2", 2),
        ("10.0.0.3", 3),
        ("10.0.0.4", 9),
    ];
    let mut input = String::new();
    let mut left: Vec<(&str, usize)> = plan.to_vec();
    let mut n = 0;
    while left.iter().any(|l| l.1 > 0) {
        for (ip, k) in left.iter_mut().filter(|l| l.1 > 0) {
            *k -= 1;
            n += 1;
            input.push_str(&format!("req {n} denied for user{n} from {ip}\n"));
            input.push_str("GET /health 200\n");
        }
    }
    let out = crate::support::run(
        &[
            "--alarm",
            "deny log:",
            "--log-alarm",
            r"deny denied for (\w+) from (?<ip>[\d.]+)",
            "--alarm-key",
            "deny {ip}",
            "--alarm-threshold",
            "deny 3 60",
            "--alarm-template",
            "deny {count} denials from {ip}, the last for {1}",
            "--alarm-freq",
            "600",
        ],
        input.clone().into_bytes(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // Every line passed through, unchanged, in order.
    let passed: String = stdout
        .lines()
        .filter(|l| !l.contains("ALARM: "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(passed, input);
    // Predicted: each client with 3 or more lines fires once, at its third line (anti-flood
    // per key holds the rest: 600 s).
    let mut want = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for l in input.lines().filter(|l| l.contains("denied")) {
        let ip = l.rsplit(' ').next().unwrap();
        let user = l.split(' ').nth(4).unwrap();
        let c = seen.entry(ip).or_default();
        *c += 1;
        if *c == 3 {
            want.push(format!("3 denials from {ip}, the last for {user}"));
        }
    }
    let got: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.split_once("ALARM: ").map(|(_, m)| m.to_string()))
        .collect();
    assert_eq!(got, want);
    let raised: usize = plan.iter().map(|p| p.1).sum();
    assert!(
        err.contains(&format!(
            "raised {raised}, ran {}, suppressed {}",
            want.len(),
            raised - want.len()
        )),
        "{err}"
    );
}

#[test]
fn bad_templates_keys_and_thresholds_are_named() {
    let base = [
        "--alarm",
        "a log:",
        "--log-alarm",
        r"a user (?<user>\w+) from (\S+)",
    ];
    let cases: [(&[&str], &str); 7] = [
        (
            &["--alarm-template", "a {host} failed"],
            "invalid alarm-template: a {host} failed: `{host}`: no rule of alarm \"a\" has a group of that name (named groups: user)",
        ),
        (
            &["--alarm-template", "a {3}"],
            "invalid alarm-template: a {3}: `{3}`: the rules of alarm \"a\" have at most 2 group(s)",
        ),
        (&["--alarm-key", "a {ip"], "invalid alarm-key: a {ip: `{ip`: an unclosed `{`"),
        (&["--alarm-key", "b {1}"], "invalid alarm-key: b {1}: no alarm named \"b\""),
        (
            &["--alarm-threshold", "a 0 60"],
            "invalid alarm-threshold: a 0 60: `0`: COUNT must be a whole number from 1 to 1000000",
        ),
        (
            &["--alarm-threshold", "a 5"],
            "invalid alarm-threshold: a 5: expected \"NAME[,NAME...] COUNT SECONDS\"",
        ),
        (&["--alarm-template", "a"], "invalid alarm-template: a: expected"),
    ];
    for (extra, want) in cases {
        let mut args: Vec<&str> = base.to_vec();
        args.extend(extra);
        let out = crate::support::run(&args, Vec::new());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {err}");
        assert!(err.contains(want), "{extra:?}:\nwant {want}\ngot  {err}");
    }
}
