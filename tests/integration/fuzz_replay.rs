//! Replays every input kept in `fuzz/regressions/<target>/` (crashes found by fuzzing, and
//! seeds) through the fuzz targets' bodies, as ordinary tests.

use crate::fuzz_bodies;

fn replay(target: &str, f: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        f(&std::fs::read(&p).unwrap());
        n += 1;
    }
    assert!(n > 0, "no inputs in {}", dir.display());
}

#[test]
fn config_regressions() {
    replay("config", fuzz_bodies::config);
}

#[test]
fn pipeline_regressions() {
    replay("pipeline", fuzz_bodies::pipeline);
}
