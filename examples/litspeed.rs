//! Throughput of the literal-first search alone (no confirmation, no pipeline):
//! `cargo run --release --example litspeed -- RULES.txt CORPUS`.
//! Prints the filter's shape, then MB/s and the literal occurrences found, three passes.
use logalarm::litscan::{LitScan, Needle};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(rules), Some(corpus)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: litspeed RULES CORPUS");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(rules).unwrap_or_default();
    let data = std::fs::read(corpus).unwrap_or_default();
    let mut needles = Vec::new();
    for (i, l) in text.lines().filter(|l| !l.is_empty()).enumerate() {
        let Ok(h) = logalarm::rules::parse_regex(l) else {
            continue;
        };
        if let Some((lits, ci)) = logalarm::rules::fast_needles(&h) {
            needles.extend(lits.into_iter().map(|b| Needle {
                bytes: b.into(),
                ci,
                rule: i as u32,
            }));
        }
    }
    let Some(s) = LitScan::new(needles) else {
        eprintln!("no literals");
        std::process::exit(1);
    };
    println!("(literals, width, stride, filter bits) = {:?}", s.shape());
    for _ in 0..3 {
        let t = Instant::now();
        let mut n = 0usize;
        s.each(&data, 0, data.len(), &mut |_, _| {
            n += 1;
            true
        });
        let mbs = data.len() as f64 / t.elapsed().as_secs_f64() / 1e6;
        println!("{mbs:.0} MB/s  occurrences={n}");
    }
}
