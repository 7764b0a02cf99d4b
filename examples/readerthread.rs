//! Experiment: a reader thread feeding whole-line buffers to one matching thread.
use logalarm::rules::RuleSet;
use std::io::Read;
use std::sync::mpsc::sync_channel;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let text = std::fs::read_to_string(&args[1]).unwrap_or_default();
    let pats: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    let Ok(set) = RuleSet::one_alarm(&pats, 8192) else {
        return;
    };
    let cap: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1 << 20);
    let nbuf: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(4);
    let (full_tx, full_rx) = sync_channel::<(Vec<u8>, usize)>(nbuf);
    let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(nbuf + 2);
    for _ in 0..nbuf + 1 {
        let _ = empty_tx.send(vec![0u8; cap]);
    }
    std::thread::scope(|s| {
        s.spawn(move || {
            unsafe {
                libc::fcntl(0, libc::F_SETPIPE_SZ, 1 << 20);
            }
            let mut stdin = std::io::stdin().lock();
            let mut carry: Vec<u8> = Vec::new();
            let null = std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .unwrap();
            use std::io::Write;
            let mut null = null;
            while let Ok(mut b) = empty_rx.recv() {
                let mut len = carry.len();
                b[..len].copy_from_slice(&carry);
                let n = match stdin.read(&mut b[len..]) {
                    Ok(0) | Err(_) => 0,
                    Ok(n) => n,
                };
                if n == 0 {
                    let _ = full_tx.send((b, len));
                    return;
                }
                let _ = null.write_all(&b[len..len + n]);
                len += n;
                let end = memchr::memrchr(b'\n', &b[..len]).map_or(0, |i| i + 1);
                carry.clear();
                carry.extend_from_slice(&b[end..len]);
                let _ = full_tx.send((b, end));
            }
        });
        let mut m = set.matcher();
        let mut alarms = 0u64;
        while let Ok((b, len)) = full_rx.recv() {
            m.scan_lines(&b[..len], &mut |_, h| alarms += h.len() as u64);
            if empty_tx.send(b).is_err() {
                break;
            }
        }
        eprintln!("alarms {alarms}");
    });
}
