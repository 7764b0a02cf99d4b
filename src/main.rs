//! `logalarm`: parse, run, exit. Everything else is in the library.

fn main() {
    let code = logalarm::main(std::env::args_os().skip(1).collect());
    std::process::exit(code);
}
