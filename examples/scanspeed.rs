//! Quick throughput probe: `cargo run --release --example scanspeed -- RULES.txt CORPUS`.
//! Runs the in-memory pipeline (no I/O) over a corpus with one alarm per rule set.
use logalarm::pipeline::{CountSink, Pipeline};
use logalarm::rules::RuleSet;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(rules), Some(corpus)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: scanspeed RULES CORPUS");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(rules).unwrap_or_default();
    let pats: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    let t = Instant::now();
    let set = match RuleSet::one_alarm(&pats, 8192) {
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
        let mut s = CountSink::default();
        let t = Instant::now();
        let _ = p.feed(&data, &mut s);
        let _ = p.finish(&mut s);
        let dt = t.elapsed().as_secs_f64();
        println!(
            "{:.0} MB/s  alarms={} confirmed={}",
            data.len() as f64 / dt / 1e6,
            s.alarms,
            p.stats.confirmed
        );
    }
}
