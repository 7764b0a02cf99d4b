//! The integration tests: one binary, one module per area. Every test runs the real
//! `logalarm` executable or the library's public API; servers are real (HTTP/HTTPS/SMTP
//! recorders, prosody, espeak-ng, uWSGI), started on loopback by `support`.
//!
//! - `cli`: pass-through, start-up errors, cmd/log actions, signals, output failures;
//! - `scenarios`: the scenario files of `tests/data/*.toml`, through the library and the binary;
//! - `conformance`: the real uWSGI beside logalarm on `tests/conformance/cases/*.toml`;
//! - `matcher_prop`: property tests against the naive `oracle`;
//! - `fuzz_replay`: the fuzz targets' kept inputs (`fuzz/regressions`) through `fuzz_bodies`;
//! - `monitors`, `supervise`, `curl`, `xmpp`, `speech`: one per monitor or action family.

mod cli;
mod conformance;
mod curl;
mod fuzz_bodies;
mod fuzz_replay;
mod matcher_prop;
mod monitors;
mod oracle;
mod scenarios;
mod speech;
mod supervise;
mod support;
mod xmpp;
