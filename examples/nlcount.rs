//! The newline-count floor of `scripts/bench-compare.sh`: count `\n` with memchr.
//! `nlcount` reads stdin (grown to a 1 MiB pipe, as logalarm grows it) in reads of
//! `NLCOUNT_READ` bytes (default 128 KiB: the floor with a pipe); `nlcount FILE` reads FILE
//! into memory first and prints the in-memory rate (the floor for splitting lines) on stderr.
//! PERF: 128 KiB, not 1 MiB: a read that fits the L2 cache leaves the bytes there for memchr.
//! `cat` of 256 MiB into a C counter (2026-12-03, 3 runs each): 0.16-0.21 s with 128 KiB or
//! 64 KiB reads, 0.23-0.38 s with 1 MiB reads; a floor read the slow way flattered logalarm
//! (its reader thread overlaps the copy with matching: 1,358 MB/s against 927 "floor").
use std::io::Read;
use std::time::Instant;

fn main() {
    if let Some(path) = std::env::args().nth(1) {
        let data = std::fs::read(&path).unwrap_or_default();
        let mut best = 0f64;
        for _ in 0..5 {
            let t = Instant::now();
            let n = memchr::memchr_iter(b'\n', &data).count();
            best = best.max(data.len() as f64 / t.elapsed().as_secs_f64() / 1e6);
            std::hint::black_box(n);
        }
        eprintln!("{best:.0}");
        return;
    }
    // The same 1 MiB pipe logalarm asks for (F_SETPIPE_SZ), so the floor reads as it does.
    // SAFETY: fcntl on descriptor 0 with an integer argument; a failure leaves the pipe as is.
    unsafe {
        libc::fcntl(0, libc::F_SETPIPE_SZ, 1 << 20);
    }
    let size = std::env::var("NLCOUNT_READ")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(128 << 10);
    let mut buf = vec![0u8; size];
    let mut stdin = std::io::stdin().lock();
    let mut n = 0usize;
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => n += memchr::memchr_iter(b'\n', &buf[..k]).count(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("nlcount: {e}");
                std::process::exit(1);
            }
        }
    }
    println!("{n}");
}
