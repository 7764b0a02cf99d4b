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

/// The literal search alone over the corpus, its windows placed by the rarity model and then by
/// the window counts of the corpus's first MiB (what the matchers do after a stream's first
/// MiB: `rules::placed`).
fn literal_placement(c: &mut Criterion) {
    let corpus = common::corpus();
    let mut g = c.benchmark_group("litscan/placement");
    g.throughput(Throughput::Bytes(corpus.len() as u64));
    let set = common::build(&common::rules(100));
    let Some(model) = set.literal_search() else {
        panic!("rules100 has literals the search takes");
    };
    let sample = &corpus[..corpus.len().min(1 << 20)];
    let placed = logalarm::testing::placed_by_sample(model, sample);
    let count = |s: &logalarm::testing::LitScan, buf: &[u8]| {
        let mut n = 0usize;
        s.each(buf, 0, buf.len(), &mut |_, _| {
            n += 1;
            true
        });
        n
    };
    g.bench_with_input(BenchmarkId::new("rules100", "model"), &corpus, |b, buf| {
        b.iter(|| count(model, buf))
    });
    if let Some(placed) = &placed {
        g.bench_with_input(BenchmarkId::new("rules100", "stream"), &corpus, |b, buf| {
            b.iter(|| count(placed, buf))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = corpus_rules, match_rate, literal_placement
}
criterion_main!(benches);
