//! Nothing to run: this crate only builds OpenSSL (build.rs).
fn main() {}
