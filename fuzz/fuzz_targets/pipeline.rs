//! Fuzz the log path: arbitrary bytes in arbitrary chunks → output identical to input and alarms
//! equal to the naive oracle's.
#![no_main]

#[path = "../../tests/integration/fuzz_bodies.rs"]
mod fuzz_bodies;
#[path = "../../tests/integration/oracle.rs"]
mod oracle;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_bodies::pipeline(data));
