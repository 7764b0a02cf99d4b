//! The whole in-memory log path: roll buffer, split, match, pass through, raise (into a counting
//! sink), by rule count, match rate and line length.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use logalarm::testing::CountSink;
use logalarm::Pipeline;

mod common;

/// The pipeline (buffer and warm caches) is made once per bench, outside the timed loop.
fn run(p: &mut Pipeline, buf: &[u8]) -> u64 {
    let mut s = CountSink::default();
    let _ = p.feed(buf, &mut s);
    let _ = p.finish(&mut s);
    s.bytes + s.alarms
}

fn pipeline(c: &mut Criterion) {
    let corpus = common::corpus();
    let mut g = c.benchmark_group("pipeline/corpus");
    g.throughput(Throughput::Bytes(corpus.len() as u64));
    for n in [10usize, 100] {
        let set = common::build(&common::rules(n));
        g.bench_with_input(BenchmarkId::new("rules", n), &corpus, |b, buf| {
            let mut p = Pipeline::new(set.matcher(), logalarm::DEFAULT_CAPACITY);
            b.iter(|| run(&mut p, buf))
        });
    }
    let none = common::build(&[]);
    g.bench_with_input(BenchmarkId::new("rules", 0), &corpus, |b, buf| {
        let mut p = Pipeline::new(none.matcher(), logalarm::DEFAULT_CAPACITY);
        b.iter(|| run(&mut p, buf))
    });
    g.finish();

    let mut g = c.benchmark_group("pipeline/shape");
    let set = common::build(&[
        "NEEDLE \\w+".to_string(),
        "^\\d{4}-\\d\\d FATAL".to_string(),
    ]);
    for len in [50usize, 200, 2000] {
        for (name, every) in [("none", 0usize), ("1pct", 100), ("every_line", 1)] {
            let buf = common::synthetic(4 << 20, len, every);
            g.throughput(Throughput::Bytes(buf.len() as u64));
            g.bench_with_input(
                BenchmarkId::new(format!("len{len}"), name),
                &buf,
                |b, buf| {
                    let mut p = Pipeline::new(set.matcher(), logalarm::DEFAULT_CAPACITY);
                    b.iter(|| run(&mut p, buf))
                },
            );
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = pipeline
}
criterion_main!(benches);
