//! Fuzz config parsing (CLI arguments and ini text) and plan building: no panic, errors are text.
#![no_main]

#[path = "../../tests/integration/fuzz_bodies.rs"]
mod fuzz_bodies;
#[path = "../../tests/integration/oracle.rs"]
mod oracle;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_bodies::config(data));
