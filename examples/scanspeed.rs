//! Quick throughput probe: `cargo run --release --example scanspeed -- RULES.txt CORPUS`.
//! Runs the in-memory pipeline (no I/O) over a corpus with one alarm per rule set.
use logalarm::testing::CountSink;
use logalarm::Pipeline;
use std::time::Instant;

mod common;

fn main() {
    let (set, data, _) = common::rules_and_corpus("scanspeed");
    for _ in 0..3 {
        let mut p = Pipeline::new(set.matcher(), logalarm::DEFAULT_CAPACITY);
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
