//! Shared presentation: numbers, money, durations, times, tables and the error line.

use anstyle::{AnsiColor, Style};
use comfy_table::{ContentArrangement, Table, presets};
use tapedeck_trace::{Run, RunStatus, Timestamp};

/// Style of headings.
pub const HEADING: Style = Style::new().bold();
/// Style of de-emphasized text.
pub const DIM: Style = Style::new().dimmed();
/// Style of good news.
pub const GOOD: Style = AnsiColor::Green.on_default();
/// Style of warnings and guardrail stops.
pub const WARN: Style = AnsiColor::Yellow.on_default();
/// Style of failures.
pub const BAD: Style = AnsiColor::Red.on_default().bold();

/// Prints an error as one line on stderr.
pub fn error(err: &anyhow::Error) {
    let style = BAD;
    anstream::eprintln!("{style}error:{style:#} {}", one_line(err.as_ref()));
}

/// An error and its causes on one line ([`tapedeck_trace::one_line`]), its own line breaks
/// made spaces.
pub fn one_line(err: &(dyn std::error::Error + 'static)) -> String {
    tapedeck_trace::one_line(err).replace('\n', " ")
}

/// `12,345`, or `?` when unknown.
pub fn count(n: Option<u64>) -> String {
    match n {
        Some(n) => thousands(n),
        None => "?".to_owned(),
    }
}

/// `12,345`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `$10.80`, `$0.0042`, or `?` when unknown.
pub fn usd(amount: Option<f64>) -> String {
    match amount {
        None => "?".to_owned(),
        Some(a) if a > 0.0 && a < 0.00005 => "<$0.0001".to_owned(),
        Some(a) if a != 0.0 && a.abs() < 0.01 => format!("${a:.4}"),
        Some(a) => format!("${}", with_commas(a)),
    }
}

fn with_commas(a: f64) -> String {
    let cents = (a * 100.0).round() as i64;
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}{}.{:02}", thousands(cents / 100), cents % 100)
}

/// `850ms`, `4.2s`, `3m 12s`, `2h 05m`.
pub fn millis(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1_000..=59_999 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..=3_599_999 => format!("{}m {:02}s", ms / 60_000, (ms / 1000) % 60),
        _ => format!("{}h {:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

/// `2026-11-26 02:54:18` (UTC).
pub fn time(ts: Timestamp) -> String {
    ts.to_jiff().strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// The style a status is shown in.
pub fn status_style(status: RunStatus) -> Style {
    match status {
        RunStatus::Ok => GOOD,
        RunStatus::Stopped | RunStatus::Running => WARN,
        RunStatus::Error | RunStatus::Incomplete => BAD,
    }
}

/// A borderless table that never wraps, like `ps` output.
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().copied());
    table
}

/// How a run ended, in three lines (the third only with an error): its status and `stop`
/// reason with its totals (`noun` names its steps), the error, and its id.
pub fn run_ending(run: &Run, stop: &str, noun: &str, error: Option<&str>) -> Vec<String> {
    let dim = DIM;
    let style = status_style(run.status);
    let t = &run.totals;
    let mut lines = vec![format!(
        "{style}{} — {stop}{style:#} {dim}· {} {noun}{} · {} tool call{} · {} tokens · {}{dim:#}",
        run.status,
        t.steps,
        plural(t.steps),
        t.tool_calls_total(),
        plural(t.tool_calls_total()),
        count(t.tokens_total()),
        usd(t.cost_usd),
    )];
    if let Some(error) = error {
        lines.push(format!("{dim}reason:{dim:#} {error}"));
    }
    lines.push(format!(
        "{dim}run{dim:#} {}  {dim}(tapedeck show {}){dim:#}",
        run.id.short(),
        run.id.short()
    ));
    lines
}

/// The plural `s` for a count of `n`.
pub fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A string cut to `max` characters, with `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    let single_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if single_line.chars().count() <= max {
        return single_line;
    }
    let mut out: String = single_line.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Prints a warning as one line on stderr.
pub fn warning(message: &str) {
    let style = WARN;
    anstream::eprintln!("{style}warning:{style:#} {message}");
}

/// A progress bar on stderr when it is a terminal; a hidden one elsewhere (CI logs, pipes).
pub fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    let template = format!("{{bar:40}} {{pos}}/{{len}} {what} ({{eta}} left)");
    if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}
