//! Throughput of the literal-first search alone (no confirmation, no pipeline):
//! `cargo run --release --example litspeed -- RULES.txt CORPUS`.
//! Builds the rule set as logalarm does, then prints its literal search's shape, MB/s and the
//! literal occurrences found, three passes.
use std::time::Instant;

mod common;

fn main() {
    let (set, data, _) = common::rules_and_corpus("litspeed");
    let Some(s) = set.literal_search() else {
        eprintln!("no rule has literals the search takes");
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
