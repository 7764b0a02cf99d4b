//! The integration tests: one binary, one module per area. Every test runs the real
//! `logalarm` executable or the library's public API; servers are real (HTTP/HTTPS/SMTP
//! recorders, prosody, espeak-ng, uWSGI), started on loopback by `support`.
//!
//! - `cli`: pass-through, start-up errors, cmd/log actions, signals, output failures;
//! - `case`: the one scenario format, `tests/cases/*.toml`, which the next two run;
//! - `scenarios`: every self-contained case through the binary and the library (3 chunkings);
//! - `conformance`: every case not marked `uwsgi = false`, the real uWSGI beside logalarm;
//! - `matcher_prop`: property tests against the naive `oracle`;
//! - `fuzz_replay`: the fuzz targets' kept inputs (`fuzz/regressions`) through `fuzz_bodies`;
//! - `overflow`: storms per overflow policy, stuck outputs, a full disk;
//! - `monitors`, `supervise`, `curl`, `xmpp`, `speech`: one per monitor or action family.

mod case;
mod check;
mod cli;
mod conformance;
mod curl;
mod fleet;
mod fuzz_bodies;
mod fuzz_replay;
mod matcher_prop;
mod metrics;
mod monitors;
mod oracle;
mod overflow;
mod reliability;
mod reload;
mod replay;
mod scenarios;
mod speech;
mod supervise;
mod support;
mod suppress;
mod webhook;
mod xmpp;
