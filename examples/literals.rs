//! Show the required literals logalarm's prefilter picks for each rule of a rules file (uWSGI's
//! PCRE dialect, translated as `log-alarm` translates it):
//! `cargo run --release --example literals -- RULES.txt`.
fn main() {
    let path = std::env::args().nth(1).unwrap_or_default();
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    for l in text.lines().filter(|l| !l.is_empty()) {
        let pattern = match logalarm::testing::translate_pcre(l) {
            Ok(t) => t.pattern,
            Err(e) => {
                println!("{l}\n    -> error {e}");
                continue;
            }
        };
        match logalarm::testing::parse_regex(&pattern) {
            Ok(h) => match logalarm::testing::rule_needles(&h) {
                Some((lits, ci)) => {
                    let shown: Vec<String> = lits
                        .iter()
                        .map(|b| format!("{:?}", String::from_utf8_lossy(b)))
                        .collect();
                    println!(
                        "{l}\n    -> {}{}",
                        if ci { "(ignoring case) " } else { "" },
                        shown.join(" | ")
                    );
                }
                None => println!("{l}\n    -> (DFA)"),
            },
            Err(e) => println!("{l}\n    -> error {e}"),
        }
    }
}
