//! `replay --report FILE.html`: one self-contained page (inline SVG and CSS, no script, no
//! network) showing the storm's shape: per alarm, the alarms that would fire and those
//! anti-flood would suppress over the log's time; per rule, the raising lines it matched.

use std::fmt::Write as _;

use super::{time, Opts, Replay};

/// Columns of a chart.
const COLS: usize = 120;
const WIDTH: usize = 960;
const ALARM_HEIGHT: usize = 120;
const RULE_HEIGHT: usize = 56;

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Bars of `layers` (stacked, bottom first), each (values, CSS class), in an SVG of `height`.
fn chart(id: &str, layers: &[(&[u64], &str)], height: usize, first: &str, last: &str) -> String {
    let max = (0..COLS)
        .map(|i| layers.iter().map(|(v, _)| v[i]).sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let plot = height - 18;
    let bar = WIDTH as f64 / COLS as f64;
    let mut s = format!(
        "<svg id=\"{id}\" class=\"chart\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\">\
         <rect class=\"plot\" x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{plot}\"/>"
    );
    for i in 0..COLS {
        let mut y = plot as f64;
        for (v, class) in layers {
            if v[i] == 0 {
                continue;
            }
            let h = (v[i] as f64 / max as f64 * (plot - 4) as f64).max(1.5);
            y -= h;
            let _ = write!(
                s,
                "<rect class=\"{class}\" x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\"><title>{}</title></rect>",
                i as f64 * bar,
                (bar - 1.0).max(1.0),
                v[i]
            );
        }
    }
    let _ = write!(
        s,
        "<text x=\"2\" y=\"{}\" class=\"axis\">{}</text><text x=\"{}\" y=\"{}\" class=\"axis\" text-anchor=\"end\">{}</text><text x=\"{}\" y=\"12\" class=\"axis\" text-anchor=\"end\">max {max}</text></svg>",
        height - 4,
        esc(first),
        WIDTH - 2,
        height - 4,
        esc(last),
        WIDTH - 4
    );
    s
}

/// The whole page.
pub(super) fn page(r: &Replay, opts: &Opts, rules: &[String], hits: &[u64], bytes: u64) -> String {
    let (first, last) = match (r.first_time, r.max_time) {
        (Some(a), Some(b)) => (time::show(a), time::show(b)),
        _ => ("(no time)".to_string(), String::new()),
    };
    let files = opts
        .files
        .iter()
        .map(|f| esc(&f.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut s = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>logalarm replay</title><style>\
         body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fff}\
         h1{font-size:20px}h2{font-size:16px;margin:28px 0 6px}h3{font-size:14px;margin:14px 0 4px;font-family:monospace;font-weight:normal}\
         table{border-collapse:collapse}td,th{padding:2px 10px;text-align:right}td.l,th.l{text-align:left;font-family:monospace}\
         .plot{fill:#f4f4f4}.fired{fill:#d62728}.suppressed{fill:#9e9e9e}.matched{fill:#1f77b4}.axis{font-size:11px;fill:#555}\
         .key span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}\
         </style></head><body>\n",
    );
    let _ = write!(
        s,
        "<h1>logalarm replay</h1><p>{files}: {} lines, {bytes} bytes; log time {} &rarr; {} (anti-flood: alarm-freq {} s)</p>",
        r.lines,
        esc(&first),
        esc(&last),
        r.freq.as_secs_f64()
    );
    s.push_str("<h2>Alarms</h2><p class=\"key\"><span class=\"k\" style=\"background:#d62728\"></span>would fire<span style=\"background:#9e9e9e\"></span>suppressed by anti-flood</p>\n<table><tr><th class=\"l\">alarm</th><th>raised</th><th>would fire</th><th>suppressed</th></tr>");
    for a in &r.alarms {
        let _ = write!(
            s,
            "<tr><td class=\"l\">{} ({}:)</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&a.name),
            a.kind,
            a.raised,
            a.fired,
            a.suppressed
        );
    }
    s.push_str("</table>\n");
    for (i, a) in r.alarms.iter().enumerate() {
        let raised = r.spread(a.timeline.iter().map(|(&k, &(n, _))| (k, n)), COLS);
        let fired = r.spread(a.timeline.iter().map(|(&k, &(_, f))| (k, f)), COLS);
        let suppressed: Vec<u64> = raised.iter().zip(&fired).map(|(r, f)| r - f).collect();
        let _ = writeln!(
            s,
            "<h3 class=\"alarm\">alarm \"{}\" ({}:)</h3>{}",
            esc(&a.name),
            a.kind,
            chart(
                &format!("alarm-{i}"),
                &[(&fired, "fired"), (&suppressed, "suppressed")],
                ALARM_HEIGHT,
                &first,
                &last
            )
        );
    }
    s.push_str("<h2>Rules</h2><p>Lines matched in all; the chart shows the lines that raised an alarm.</p>\n");
    for (i, (rule, n)) in rules.iter().zip(hits).enumerate() {
        let per: Vec<u64> = match &r.report {
            Some((_, _, timeline)) => match timeline.get(i) {
                Some(tl) => r.spread(tl.iter().map(|(&k, &n)| (k, n)), COLS),
                None => vec![0; COLS],
            },
            None => vec![0; COLS],
        };
        let (checked, ms) = r.cost_of(i);
        let _ = writeln!(
            s,
            "<h3 class=\"rule\">{} <small>({n} lines; {checked} candidate lines checked in {ms:.1} ms)</small></h3>{}",
            esc(rule),
            chart(
                &format!("rule-{i}"),
                &[(&per, "matched")],
                RULE_HEIGHT,
                &first,
                &last
            )
        );
    }
    s.push_str("</body></html>\n");
    s
}
