//! Alarm latency probe: from a matching line written into logalarm's input pipe to its `cmd`
//! action starting, under a background stream.
//!
//! `cargo run --release --example latency -- [CORPUS] [MB_PER_S] [PROBES]`
//!
//! Runs `target/release/logalarm` with `--binsh /bin/bash` and an alarm
//! `cmd:echo "$EPOCHREALTIME $(cat)" >> FILE` (bash's builtin clock: the time the action's shell
//! runs), feeds CORPUS at MB_PER_S (default 100) and, every 20 ms, a line `LATENCY_PROBE <n>`
//! whose send time is recorded. Prints p50, p99 and max over PROBES (default 200) probes.
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let corpus = std::fs::read(args.get(1).map_or("/tmp/corpus256.log", String::as_str))
        .unwrap_or_else(|_| {
            b"2026-11-23 10:00:00,000 INFO [worker] request served in 3 ms\n".repeat(200_000)
        });
    let rate: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100.0) * 1e6;
    let probes: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(200);
    let dir = std::env::temp_dir().join(format!("logalarm-latency-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let out = dir.join("probes");
    let bin = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/logalarm");
    let mut child = Command::new(bin)
        .args([
            "--binsh",
            "/bin/bash",
            "--alarm-freq",
            "0",
            "--log-alarm",
            "a ^LATENCY_PROBE",
        ])
        .arg("--alarm")
        .arg(format!(
            "a cmd:echo \"$EPOCHREALTIME $(cat)\" >> {}",
            out.display()
        ))
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
