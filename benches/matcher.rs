//! The matcher alone: one-pass scan of a buffer of whole lines, by rule count and match rate.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

mod common;

/// The matcher (and its lazy DFA cache) is made once per bench, outside the timed loop: a
/// long-running logalarm matches with a warm cache.
fn scan(m: &mut logalarm::Matcher, buf: &[u8]) -> usize {
    let mut n = 0;
    for chunk in buf.chunks(256 * 1024) {
        let end = memchr::memrchr(b'\n', chunk).map_or(chunk.len(), |i| i + 1);
        m.scan_lines(&chunk[..end], &mut |_, h| n += h.len());
    }
    n
}

fn corpus_rules(c: &mut Criterion) {
    let corpus = common::corpus();
    let mut g = c.benchmark_group("matcher/corpus");
    g.throughput(Throughput::Bytes(corpus.len() as u64));
    for n in [10usize, 100] {
        let set = common::build(&common::rules(n));
        g.bench_with_input(BenchmarkId::new("rules", n), &corpus, |b, buf| {
            let mut m = set.matcher();
            b.iter(|| scan(&mut m, buf))
        });
    }
    g.finish();
}

fn match_rate(c: &mut Criterion) {
    let mut g = c.benchmark_group("matcher/rate");
    let set = common::build(&[
        "NEEDLE \\w+".to_string(),
        "^\\d{4}-\\d\\d FATAL".to_string(),
    ]);
    for (name, every) in [("none", 0usize), ("1pct", 100), ("every_line", 1)] {
        let buf = common::synthetic(4 << 20, 200, every);
        g.throughput(Throughput::Bytes(buf.len() as u64));
        g.bench_with_input(BenchmarkId::new("lines200", name), &buf, |b, buf| {
            let mut m = set.matcher();
            b.iter(|| scan(&mut m, buf))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = corpus_rules, match_rate
}
criterion_main!(benches);
