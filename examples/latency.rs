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
//! `--in-process` measures inside logalarm instead: the probe raises a `log:`, a `mule:` and a
//! `signal:` alarm, and the latency histograms of `--metrics`
//! (`logalarm_alarm_latency_seconds`: read of the line's bytes → action start; `_read_`: read →
//! match; `_wait_`: match → start) give each stage's p50/p99 (the upper bound of the bucket
//! holding it) and the share of probes started within 200 µs of their read.
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
    let in_process = all.iter().any(|a| a == "--in-process");
    let args: Vec<String> = all
        .into_iter()
        .filter(|a| a != "--bash" && a != "--static" && a != "--in-process")
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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(19187);
    let mut command = Command::new(&bin);
    if in_process {
        command.args([
            "--alarm-freq",
            "0",
            "--attach-daemon",
            "exec sleep 100000",
            "--mule",
            "exec cat > /dev/null",
            "--alarm",
            "log log:",
            "--alarm",
            "mule mule:1",
            "--alarm",
            "signal signal:28",
            "--log-alarm",
            "log,mule,signal ^LATENCY_PROBE",
            "--metrics",
        ]);
        command.arg(format!("127.0.0.1:{port}"));
    } else {
        command
            .arg("--binsh")
            .arg(&binsh)
            .args([
                "--alarm-freq",
                "0",
                "--log-alarm",
                "a ^LATENCY_PROBE",
                "--alarm",
            ])
            .arg(action);
    }
    let mut child = command
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
    if in_process {
        std::thread::sleep(Duration::from_millis(300));
        let text = scrape(port);
        drop(stdin);
        // Supervised processes keep logalarm running after its input ends: stop it.
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        return report_histograms(&text, rate);
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

/// `GET /metrics` from logalarm's `--metrics` on `port`.
fn scrape(port: u16) -> String {
    use std::io::Read;
    let mut text = String::new();
    match std::net::TcpStream::connect(("127.0.0.1", port)) {
        Ok(mut c) => {
            let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = c.write_all(
                b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            );
            let _ = c.read_to_string(&mut text);
        }
        Err(e) => eprintln!("cannot reach --metrics on port {port}: {e}"),
    }
    text
}

/// Print, per alarm and stage, the bucket bounds holding p50 and p99, and the share of events
/// within 200 µs.
fn report_histograms(text: &str, rate: f64) {
    let mut printed = 0;
    for stage in ["latency", "read", "wait"] {
        let prefix = format!("logalarm_alarm_{stage}_seconds_bucket{{");
        let mut per_alarm: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        for line in text.lines().filter(|l| l.starts_with(&prefix)) {
            let field = |k: &str| {
                let at = line.find(&format!("{k}=\""))? + k.len() + 2;
                let end = line[at..].find('"')? + at;
                Some(line[at..end].to_string())
            };
            let (Some(alarm), Some(le)) = (field("alarm"), field("le")) else {
                continue;
            };
            let le: f64 = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::NAN)
            };
            let n: f64 = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            match per_alarm.iter_mut().find(|(a, _)| *a == alarm) {
                Some((_, b)) => b.push((le, n)),
                None => per_alarm.push((alarm, vec![(le, n)])),
            }
        }
        for (alarm, buckets) in per_alarm {
            let total = buckets.last().map_or(0.0, |b| b.1);
            if total == 0.0 {
                continue;
            }
            let at = |q: f64| {
                buckets
                    .iter()
                    .find(|b| b.1 >= q * total)
                    .map_or(f64::INFINITY, |b| b.0 * 1e6)
            };
            let within = buckets
                .iter()
                .find(|b| (b.0 - 0.0002).abs() < 1e-12)
                .map_or(0.0, |b| b.1 / total * 100.0);
            println!(
                "{alarm:>6} {stage:>7}: {total:.0} probes at {:.0} MB/s background: p50 <= {:.0} us, p99 <= {:.0} us, {within:.1} % within 200 us",
                rate / 1e6,
                at(0.5),
                at(0.99),
            );
            printed += 1;
        }
    }
    if printed == 0 {
        eprintln!("no latency histogram in the metrics");
        std::process::exit(1);
    }
}
