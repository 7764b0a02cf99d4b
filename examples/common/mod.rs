//! What the developer probes share: `PROBE RULES.txt CORPUS` on the command line, a rules file
//! of one regex per line in uWSGI's PCRE dialect (translated as `log-alarm` translates it: a
//! construct only PCRE runs is in its relaxed form, as the automaton runs it), each raising
//! alarm 0.

use logalarm::RuleSet;

/// The rule set, the corpus and the rules file's patterns named on the command line; exits
/// with a usage line or the failing rule otherwise.
pub(crate) fn rules_and_corpus(probe: &str) -> (RuleSet, Vec<u8>, Vec<String>) {
    let args: Vec<String> = std::env::args().collect();
    let (Some(rules), Some(corpus)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: {probe} RULES CORPUS");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(rules).unwrap_or_default();
    let mut pats: Vec<String> = Vec::new();
    for (i, l) in text.lines().filter(|l| !l.is_empty()).enumerate() {
        match logalarm::testing::translate_pcre(l) {
            Ok(t) => pats.push(t.pattern),
            Err(e) => {
                eprintln!("rule {} ({l}): {e}", i + 1);
                std::process::exit(1);
            }
        }
    }
    let pats: Vec<&str> = pats.iter().map(String::as_str).collect();
    let t = std::time::Instant::now();
    let set = match RuleSet::one_alarm(&pats, 8192) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rule {:?}: {e}", e.rule);
            std::process::exit(1);
        }
    };
    eprintln!("compile: {:?}", t.elapsed());
    let data = std::fs::read(corpus).unwrap_or_default();
    let pats = pats.into_iter().map(String::from).collect();
    (set, data, pats)
}
