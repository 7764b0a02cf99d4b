use logalarm::litscan::{LitScan, Needle};
use std::time::Instant;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let text = std::fs::read_to_string(&args[1]).unwrap();
    let data = std::fs::read(&args[2]).unwrap();
    let mut needles = vec![];
    for (i, l) in text.lines().filter(|l| !l.is_empty()).enumerate() {
        let h = logalarm::rules::parse_regex(l).unwrap();
        if let Some((lits, ci)) = logalarm::rules::rule_needles(&h) {
            for b in lits {
                needles.push(Needle {
                    bytes: b.into(),
                    ci,
                    rule: i as u32,
                });
            }
        }
    }
    calib(&data);
    calib(&data);
    let s = LitScan::new(needles).unwrap();
    eprintln!("{:?}", s.shape());
    for _ in 0..3 {
        let t = Instant::now();
        let mut n = 0usize;
        s.each(&data, 0, data.len(), &mut |_, _| {
            n += 1;
            true
        });
        eprintln!(
            "{:.0} MB/s verified={n}",
            data.len() as f64 / t.elapsed().as_secs_f64() / 1e6
        );
    }
}
#[allow(dead_code)]
fn calib(data: &[u8]) {
    let t = Instant::now();
    let n = memchr::memchr_iter(b'\n', data).count();
    eprintln!(
        "memchr count {n}: {:.0} MB/s",
        data.len() as f64 / t.elapsed().as_secs_f64() / 1e6
    );
    let t = Instant::now();
    let mut x = 0u64;
    let mut q = 0;
    while q + 8 <= data.len() {
        x = x.wrapping_add(
            (u32::from_le_bytes(data[q..q + 4].try_into().unwrap()).wrapping_mul(0x9E3779B1) >> 20)
                as u64,
        );
        q += 4;
    }
    eprintln!(
        "hash loop {x}: {:.0} MB/s",
        data.len() as f64 / t.elapsed().as_secs_f64() / 1e6
    );
}
