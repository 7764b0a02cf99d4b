//! Per rule: how many lines its literals name (candidates) and how many it matches, the 25
//! rules with most candidates first (which literals send lines to confirmation in vain):
//! `cargo run --release --example candstats -- RULES.txt CORPUS`.
mod common;

fn main() {
    let (set, data, pats) = common::rules_and_corpus("candstats");
    let Some(s) = set.literal_search() else {
        std::process::exit(1);
    };
    let res: Vec<Option<regex_automata::meta::Regex>> = pats
        .iter()
        .map(|p| regex_automata::meta::Regex::new(p).ok())
        .collect();
    let mut named = vec![0usize; pats.len()];
    let mut matched = vec![0usize; pats.len()];
    let mut lines = 0usize;
    let mut cands = 0usize;
    let mut mark = vec![u32::MAX; pats.len()];
    for (li, line) in data.split(|&b| b == b'\n').enumerate() {
        lines += 1;
        let mut any = false;
        s.each(line, 0, line.len(), &mut |_, n| {
            let r = n.rule as usize;
            if mark[r] != li as u32 {
                mark[r] = li as u32;
                named[r] += 1;
                if res[r].as_ref().is_some_and(|re| re.is_match(line)) {
                    matched[r] += 1;
                }
            }
            any = true;
            true
        });
        cands += any as usize;
    }
    println!("lines {lines} candidates {cands}");
    let mut v: Vec<usize> = (0..pats.len()).collect();
    v.sort_by_key(|&i| std::cmp::Reverse(named[i]));
    for i in v.into_iter().take(25) {
        println!("{:>8} {:>8}  {}", named[i], matched[i], pats[i]);
    }
}
