//! Throughput of the literal-first search alone (no confirmation, no pipeline):
//! `cargo run --release --example litspeed -- RULES.txt CORPUS`.
//! Builds the rule set as logalarm does, then prints its literal search's shape, MB/s and the
//! literal occurrences found, three passes.
use logalarm::rules::RuleSet;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(rules), Some(corpus)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: litspeed RULES CORPUS");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(rules).unwrap_or_default();
    let pats: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    let data = std::fs::read(corpus).unwrap_or_default();
    let set = match RuleSet::one_alarm(&pats, 8192) {
        Ok(s) => s,
        Err((i, e)) => {
            eprintln!("rule {i}: {e}");
            std::process::exit(1);
        }
    };
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
