//! Embedding logalarm's log path in a Rust service: build a plan from uWSGI options, feed it
//! bytes, receive every byte to pass on and every alarm through your own `Sink`.
//!
//!   printf 'ok\nERROR disk full\n' | cargo run --release --example embed

use std::io::Read;

use logalarm::{build_plan, parse_args, Pipeline, Sink};

/// Passes lines to standard output and prints each alarm with its name.
struct Service {
    names: Vec<String>,
    out: std::io::Stdout,
}

impl Sink for Service {
    fn pass(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        std::io::Write::write_all(&mut self.out, bytes)
    }

    fn alarm(&mut self, alarm: u32, msg: &[u8]) {
        let name = self.names.get(alarm as usize).map_or("?", String::as_str);
        eprintln!("alarm {name}: {}", String::from_utf8_lossy(msg).trim_end());
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = [
        "--alarm",
        "disk log:",
        "--alarm",
        "oom log:",
        "--log-alarm",
        "disk No space left|disk full",
        "--log-alarm",
        "oom (?i)out of memory",
    ];
    let config = parse_args(args.iter().map(Into::into))?;
    let plan = build_plan(&config)?;
    let mut sink = Service {
        names: plan.alarm_names(),
        out: std::io::stdout(),
    };
    let mut pipeline = Pipeline::new(plan.rules().matcher(), 1 << 20);
    let mut buf = vec![0u8; 64 * 1024];
    let mut input = std::io::stdin().lock();
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        pipeline.feed(&buf[..n], &mut sink)?;
    }
    pipeline.finish(&mut sink)?;
    Ok(())
}
