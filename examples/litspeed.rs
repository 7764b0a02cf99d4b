//! Throughput of the literal-first search alone (no confirmation, no pipeline):
//! `cargo run --release --example litspeed -- RULES.txt CORPUS`.
//! Builds the rule set as logalarm does, then prints its literal search's shape, MB/s and the
//! literal occurrences found, three passes; then the same for the search placed again by the
//! first MiB's window counts (as the matchers place it).
use std::time::Instant;

mod common;

fn main() {
    let (set, data, _) = common::rules_and_corpus("litspeed");
    let Some(s) = set.literal_search() else {
        eprintln!("no rule has literals the search takes");
        std::process::exit(1);
    };
    println!("(literals, width, stride, filter bits) = {:?}", s.shape());
    pass(s, &data);
    // The search placed by the first MiB's window counts, as the matchers place it.
    let t = Instant::now();
    let sample = &data[..data.len().min(1 << 20)];
    match logalarm::testing::placed_by_sample(s, sample) {
        Some(placed) => {
            println!(
                "placed by the first MiB's counts ({:?} to count and build):",
                t.elapsed()
            );
            pass(&placed, &data);
        }
        None => println!("the first MiB's counts place no literal elsewhere"),
    }
}

fn pass(s: &logalarm::testing::LitScan, data: &[u8]) {
    for _ in 0..3 {
        let t = Instant::now();
        let mut n = 0usize;
        s.each(data, 0, data.len(), &mut |_, _| {
            n += 1;
            true
        });
        let mbs = data.len() as f64 / t.elapsed().as_secs_f64() / 1e6;
        println!("{mbs:.0} MB/s  occurrences={n}");
    }
}
