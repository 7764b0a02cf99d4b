//! Alarm latency probe: from a matching line written into logalarm's input pipe to its `cmd`
//! action starting, under a background stream.
//!
//! `cargo run --release --example latency -- [CORPUS] [MB_PER_S] [PROBES]`
//!
//! Runs `target/release/logalarm` with an alarm `cmd:probe` and `--binsh` set to this very
//! program, which, started as `PROGRAM -c probe`, first reads the clock, then the line on its
//! stdin, and appends "TIME LINE" to a file: the time the action's process starts (exec of a
//! small binary, no shell start-up). `--bash` measures the former way instead: `--binsh
//! /bin/bash` and `cmd:echo "$EPOCHREALTIME $(cat)" >> FILE` (bash's start-up included);
//! `--static` uses `scripts/latency_probe.c`, the same probe in C built with `cc -static` (no
//! dynamic loader runs before its clock read).
//! Feeds CORPUS at MB_PER_S (default 100) and, every 20 ms, a line `LATENCY_PROBE <n>` whose
//! send time is recorded. Prints p50, p99 and max over PROBES (default 200) probes.
//! `LOGALARM_BIN=PATH` runs another build of logalarm.
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Started by logalarm as the alarm's shell: `PROGRAM -c COMMAND`, the message on stdin.
fn as_action() {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    if let Some(path) = std::env::var_os("LATENCY_OUT") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
        {
            let _ = f.write_all(format!("{t:.6} {}\n", line.trim_end()).as_bytes());
        }
    }
}

fn main() {
    let all: Vec<String> = std::env::args().collect();
    if all.get(1).map(String::as_str) == Some("-c") {
        return as_action();
    }
    let bash = all.iter().any(|a| a == "--bash");
    let static_probe = all.iter().any(|a| a == "--static");
    let args: Vec<String> = all
        .into_iter()
        .filter(|a| a != "--bash" && a != "--static")
        .collect();
    let corpus = std::fs::read(args.get(1).map_or("/tmp/corpus256.log", String::as_str))
        .unwrap_or_else(|_| {
            b"2026-11-23 10:00:00,000 INFO [worker] request served in 3 ms\n".repeat(200_000)
        });
    let rate: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100.0) * 1e6;
    let probes: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(200);
    let dir = std::env::temp_dir().join(format!("logalarm-latency-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let out = dir.join("probes");
    // LOGALARM_BIN: another build to compare.
    let bin = std::env::var("LOGALARM_BIN").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/logalarm").to_string()
    });
    let me = std::env::current_exe().unwrap_or_default();
    let (binsh, action) = if bash {
        (
            std::path::PathBuf::from("/bin/bash"),
            format!("a cmd:echo \"$EPOCHREALTIME $(cat)\" >> {}", out.display()),
        )
    } else if static_probe {
        // The same probe in C, linked statically: no dynamic loader before its first clock read.
        let probe = dir.join("probe");
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/latency_probe.c");
        let built = Command::new("cc")
            .args(["-O2", "-static", "-o"])
            .arg(&probe)
            .arg(src)
            .status();
        if !built.is_ok_and(|s| s.success()) {
            eprintln!("cannot build {src} with cc -static");
            std::process::exit(1);
        }
        (probe, "a cmd:probe".to_string())
    } else {
        (me, "a cmd:probe".to_string())
    };
    let mut child = Command::new(&bin)
        .arg("--binsh")
        .arg(&binsh)
        .args([
            "--alarm-freq",
            "0",
            "--log-alarm",
            "a ^LATENCY_PROBE",
            "--alarm",
        ])
        .arg(action)
        .env("LATENCY_OUT", &out)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e} (cargo build --release first)"));
    let mut stdin = child.stdin.take().expect("piped");
    let mut sent = Vec::with_capacity(probes);
    let start = Instant::now();
    let mut pos = 0usize;
    let mut written = 0f64;
    let chunk = 64 * 1024;
    let mut next_probe = start;
    while sent.len() < probes {
        let now = Instant::now();
        if now >= next_probe {
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            let _ = stdin.write_all(format!("LATENCY_PROBE {}\n", sent.len()).as_bytes());
            sent.push(t);
            next_probe += Duration::from_millis(20);
        }
        // Background stream, paced to `rate` bytes per second, whole lines.
        if written < rate * start.elapsed().as_secs_f64() {
            let end = (pos + chunk).min(corpus.len());
            let end = memchr::memrchr(b'\n', &corpus[pos..end]).map_or(end, |i| pos + i + 1);
            let _ = stdin.write_all(&corpus[pos..end]);
            written += (end - pos) as f64;
            pos = if end >= corpus.len() { 0 } else { end };
        } else {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    drop(stdin);
    let _ = child.wait();
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let mut lat: Vec<f64> = text
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let started: f64 = it.next()?.parse().ok()?;
            let n: usize = it.nth(1)?.parse().ok()?;
            Some((started - sent.get(n)?) * 1e3)
        })
        .collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    if lat.is_empty() {
        eprintln!("no probe arrived");
        std::process::exit(1);
    }
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "{} probes at {:.0} MB/s background: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        rate / 1e6,
        pct(0.5),
        pct(0.99),
        lat[lat.len() - 1]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
