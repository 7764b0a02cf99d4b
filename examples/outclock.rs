//! The clock of `scripts/bench-compare.sh`'s "many" workload: reads standard input until
//! BYTES have arrived (or it ends) and prints when they did, in seconds since START (seconds
//! since the epoch, as `date +%s.%N` prints them, taken just before the run began):
//!
//!     outclock START BYTES  ->  "<last byte> <10 % of the bytes> <90 % of the bytes>"
//!
//! The whole run's rate is BYTES over the first figure; the steady rate is 80 % of BYTES over
//! the last two figures' difference: it leaves out the start (100 supervised processes take
//! ~0.2 s of this machine's CPU to start, before most of their bytes flow) and the end (the
//! last inputs to finish run alone). Reads 1 MiB at a time into one buffer, as `head -c` does.
use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(start), Some(total)) = (
        args.first().and_then(|s| s.parse::<f64>().ok()),
        args.get(1).and_then(|s| s.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: outclock START BYTES (START: seconds since the epoch)");
        std::process::exit(2);
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut stdin = std::io::stdin().lock();
    let (mut got, mut at10, mut at90) = (0u64, None, None);
    while got < total {
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("outclock: {e}");
                std::process::exit(1);
            }
        }
        let t = now() - start;
        if at10.is_none() && got * 10 >= total {
            at10 = Some(t);
        }
        if at90.is_none() && got * 10 >= total * 9 {
            at90 = Some(t);
        }
    }
    let end = now() - start;
    if got < total {
        eprintln!("outclock: the input ended after {got} of {total} bytes");
    }
    println!(
        "{end:.4} {:.4} {:.4}",
        at10.unwrap_or(end),
        at90.unwrap_or(end)
    );
}
