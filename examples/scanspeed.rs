//! Quick throughput probe: `cargo run --release --example scanspeed -- RULES.txt CORPUS`.
//! Runs the in-memory pipeline (no I/O) over a corpus with one alarm per rule set.
use logalarm::pipeline::{Pipeline, Sink};
use logalarm::rules::{Rule, RuleSet};
use std::time::Instant;

struct Count(u64, u64);
impl Sink for Count {
    fn pass(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.0 += b.len() as u64;
        Ok(())
    }
    fn alarm(&mut self, _: u32, _: &[u8]) {
        self.1 += 1;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(rules), Some(corpus)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: scanspeed RULES CORPUS");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(rules).unwrap_or_default();
    let pats: Vec<(&str, Rule)> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            (
                l,
                Rule {
                    alarms: vec![0],
                    negate: false,
                },
            )
        })
        .collect();
    let t = Instant::now();
    let set = match RuleSet::new(&pats, 1, 8192) {
        Ok(s) => s,
        Err((i, e)) => {
            eprintln!("rule {i}: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("compile: {:?}", t.elapsed());
    let data = std::fs::read(corpus).unwrap_or_default();
    for _ in 0..3 {
        let mut p = Pipeline::new(set.matcher(), logalarm::pipeline::DEFAULT_CAPACITY);
        let mut s = Count(0, 0);
        let t = Instant::now();
        let _ = p.feed(&data, &mut s);
        let _ = p.finish(&mut s);
        let dt = t.elapsed().as_secs_f64();
        println!(
            "{:.0} MB/s  alarms={} confirmed={}",
            data.len() as f64 / dt / 1e6,
            s.1,
            p.stats.confirmed
        );
    }
}
