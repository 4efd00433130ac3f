//! The runs' figures as a Markdown table and as an SVG plot.

use std::fmt::Write as _;

use crate::{Outcome, Scenario};

const MIB: f64 = 1024.0 * 1024.0;

/// The figures of `outcomes` as Markdown: throughput and latency per scenario, then memory.
pub fn markdown(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    out.push_str(
        "| adapter | users | sessions | scenario | ops/s | p50 ms | p99 ms | p99.9 ms | server core | errors |\n\
         |---|--:|--:|---|--:|--:|--:|--:|--:|--:|\n",
    );
    for outcome in outcomes {
        for m in &outcome.measured {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.0} % | {} |",
                outcome.store,
                count(outcome.users),
                count(outcome.sessions),
                m.scenario.name(),
                m.ops_per_second(),
                m.p50_us as f64 / 1000.0,
                m.p99_us as f64 / 1000.0,
                m.p999_us as f64 / 1000.0,
                m.server_cpu * 100.0,
                m.errors,
            );
        }
    }
    out.push_str(
        "\n| adapter | users | sessions | RSS idle | RSS peak under load | per 10^5 sessions |\n\
         |---|--:|--:|--:|--:|--:|\n",
    );
    for outcome in outcomes {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.1} MiB | {:.1} MiB | {} |",
            outcome.store,
            count(outcome.users),
            count(outcome.sessions),
            outcome.rss_idle as f64 / MIB,
            outcome.rss_peak as f64 / MIB,
            per_sessions(outcome, outcomes),
        );
    }
    out
}

/// Resident memory per 100,000 sessions: measured in process for the memory adapter (the
/// sessions loaded after the users); for the others, the idle server's growth over the
/// smallest population of the same adapter (users included, marked `*`).
fn per_sessions(outcome: &Outcome, all: &[Outcome]) -> String {
    if outcome.sessions == 0 {
        return "–".into();
    }
    if outcome.rss_sessions != outcome.rss_users {
        let grown = outcome.rss_sessions.saturating_sub(outcome.rss_users) as f64;
        return format!("{:.1} MiB", grown / outcome.sessions as f64 * 1e5 / MIB);
    }
    let base = all
        .iter()
        .filter(|o| o.store == outcome.store && o.sessions < outcome.sessions)
        .min_by_key(|o| o.sessions);
    match base {
        Some(base) => {
            let grown = outcome.rss_idle as f64 - base.rss_idle as f64;
            let more = (outcome.sessions - base.sessions) as f64;
            format!("{:.1} MiB*", grown / more * 1e5 / MIB)
        }
        None => "–".into(),
    }
}

fn count(n: u64) -> String {
    match n {
        0 => "0".into(),
        n if n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// Colours of the adapters' lines.
const COLOURS: [(&str, &str); 3] = [
    ("memory", "#1b9e77"),
    ("sled", "#d95f02"),
    ("postgres", "#7570b3"),
];

/// The figures of `outcomes` as an SVG: for each scenario, operations per second (top
/// row) and p99 latency (bottom row) against the population, one line per adapter.
pub fn svg(outcomes: &[Outcome]) -> String {
    const PANEL_W: f64 = 220.0;
    const PANEL_H: f64 = 170.0;
    const LEFT: f64 = 60.0;
    const TOP: f64 = 50.0;
    const GAP_X: f64 = 40.0;
    const GAP_Y: f64 = 70.0;
    let scenarios: Vec<Scenario> = Scenario::ALL
        .into_iter()
        .filter(|s| {
            outcomes
                .iter()
                .any(|o| o.measured.iter().any(|m| m.scenario == *s))
        })
        .collect();
    let mut populations: Vec<u64> = outcomes.iter().map(|o| o.users).collect();
    populations.sort_unstable();
    populations.dedup();
    let width = LEFT + scenarios.len() as f64 * (PANEL_W + GAP_X) + 20.0;
    let height = TOP + 2.0 * (PANEL_H + GAP_Y) + 10.0;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let mut x_legend = LEFT;
    for (store, colour) in COLOURS {
        if outcomes.iter().any(|o| o.store == store) {
            let _ = writeln!(
                out,
                "<rect x=\"{x_legend:.0}\" y=\"12\" width=\"12\" height=\"12\" fill=\"{colour}\"/>\
                 <text x=\"{:.0}\" y=\"22\">{store}</text>",
                x_legend + 16.0
            );
            x_legend += 90.0;
        }
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.0}\" y=\"22\">x: users loaded; one core for the server</text>",
        x_legend + 20.0
    );
    let rows: [(&str, Figure); 2] = [
        ("operations/s", |m| m.ops_per_second()),
        ("p99 latency, ms", |m| m.p99_us as f64 / 1000.0),
    ];
    for (row, (label, value)) in rows.iter().enumerate() {
        for (col, scenario) in scenarios.iter().enumerate() {
            let x0 = LEFT + col as f64 * (PANEL_W + GAP_X);
            let y0 = TOP + row as f64 * (PANEL_H + GAP_Y);
            let points = |store: &str| -> Vec<(u64, f64)> {
                outcomes
                    .iter()
                    .filter(|o| o.store == store)
                    .filter_map(|o| {
                        let m = o.measured.iter().find(|m| m.scenario == *scenario)?;
                        Some((o.users, value(m)))
                    })
                    .collect()
            };
            let top = COLOURS
                .iter()
                .flat_map(|(store, _)| points(store))
                .map(|(_, v)| v)
                .fold(0.0_f64, f64::max);
            let top = nice_ceiling(top);
            let _ = writeln!(
                out,
                "<rect x=\"{x0:.0}\" y=\"{y0:.0}\" width=\"{PANEL_W:.0}\" height=\"{PANEL_H:.0}\" \
                 fill=\"none\" stroke=\"#999\"/>\
                 <text x=\"{:.0}\" y=\"{:.0}\" font-weight=\"bold\">{} — {label}</text>",
                x0,
                y0 - 8.0,
                scenario.name()
            );
            for tick in 0..=4 {
                let v = top * tick as f64 / 4.0;
                let y = y0 + PANEL_H - PANEL_H * tick as f64 / 4.0;
                let _ = writeln!(
                    out,
                    "<line x1=\"{x0:.0}\" x2=\"{:.0}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/>\
                     <text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                    x0 + PANEL_W,
                    x0 - 4.0,
                    y + 4.0,
                    short(v)
                );
            }
            let x_of = |users: u64| {
                let i = populations.iter().position(|p| *p == users).unwrap_or(0);
                let n = populations.len().max(2) - 1;
                x0 + 15.0 + (PANEL_W - 30.0) * i as f64 / n as f64
            };
            for users in &populations {
                let _ = writeln!(
                    out,
                    "<text x=\"{:.1}\" y=\"{:.0}\" text-anchor=\"middle\">{}</text>",
                    x_of(*users),
                    y0 + PANEL_H + 14.0,
                    count(*users)
                );
            }
            for (store, colour) in COLOURS {
                let line: Vec<String> = points(store)
                    .iter()
                    .map(|(users, v)| {
                        let y = y0 + PANEL_H - PANEL_H * v / top;
                        format!("{:.1},{:.1}", x_of(*users), y)
                    })
                    .collect();
                if line.is_empty() {
                    continue;
                }
                let _ = writeln!(
                    out,
                    "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>",
                    line.join(" ")
                );
                for point in &line {
                    let (x, y) = point.split_once(',').unwrap_or(("0", "0"));
                    let _ = writeln!(
                        out,
                        "<circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"{colour}\"/>"
                    );
                }
            }
        }
    }
    out.push_str("</svg>\n");
    out
}

/// What a row of panels plots.
type Figure = fn(&crate::Measured) -> f64;

/// The smallest 1, 2 or 5 times a power of ten at or above `v` (1 for nothing).
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * power)
}

fn short(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 1000.0 {
        format!("{:.1}k", v / 1000.0)
    } else if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}
