//! Writing a [`RunDiff`] for people: plain text (the terminal styles it), Markdown (a pull
//! request comment) and one self-contained HTML page. Each opens, for two proxy runs, with what
//! changed between their agent versions.

use std::fmt::Write as _;

use crate::agent::{AgentDiff, AgentRef};
use crate::compare::{Aligned, RunDiff, Verdict};

/// How a change reads: `+25%`, `-10%`, `new`, `=`.
pub fn change_text(change: Option<f64>) -> String {
    match change {
        None => String::new(),
        Some(c) if c.is_infinite() => "new".to_owned(),
        Some(c) if c.abs() < 1e-9 => "=".to_owned(),
        Some(c) => format!("{:+.0}%", c * 100.0),
    }
}

/// The verdict as a word.
pub fn verdict_text(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Ok => "ok",
        Verdict::Drift => "DRIFT",
        Verdict::Unknown => "unknown",
        Verdict::Info => "",
    }
}

/// The first 8 characters of a fingerprint (characters: a tape anyone can write sets it).
fn short_fingerprint(fingerprint: &str) -> String {
    fingerprint.chars().take(8).collect()
}

/// `support-bot: another version (fingerprint 1a2b3c4d → 5e6f7a8b)`, or `the same version`.
pub fn agent_headline(agent: &AgentDiff) -> String {
    let name = |a: &AgentRef| a.name.clone().unwrap_or_else(|| "(unnamed)".to_owned());
    let (b, c) = (&agent.baseline, &agent.candidate);
    let names = if b.name == c.name {
        name(b)
    } else {
        format!("{} → {}", name(b), name(c))
    };
    if agent.same_version {
        format!(
            "{names}: the same version (fingerprint {})",
            short_fingerprint(&b.fingerprint)
        )
    } else {
        format!(
            "{names}: another version (fingerprint {} → {})",
            short_fingerprint(&b.fingerprint),
            short_fingerprint(&c.fingerprint)
        )
    }
}

/// The changed parts of an agent version, as `(label, value)` rows: the models, the tools
/// added, removed and changed (the prompt diff is shown apart).
pub fn agent_rows(agent: &AgentDiff) -> Vec<(&'static str, String)> {
    let mut rows = Vec::new();
    if let Some(models) = &agent.models {
        let list = |m: &[String]| {
            if m.is_empty() {
                "(none)".to_owned()
            } else {
                m.join(", ")
            }
        };
        rows.push((
            "model",
            format!("{} → {}", list(&models.baseline), list(&models.candidate)),
        ));
    }
    for (label, tools) in [
        ("tools added", &agent.tools_added),
        ("tools removed", &agent.tools_removed),
        ("tools changed", &agent.tools_changed),
    ] {
        if !tools.is_empty() {
            rows.push((label, tools.join(", ")));
        }
    }
    rows
}

/// Plain text, one section after the other: verdict, agent versions, metrics, trajectory,
/// answer.
pub fn text(diff: &RunDiff) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} baseline {} → candidate {}",
        if diff.drift { "DRIFT" } else { "no drift:" },
        diff.baseline.id.short(),
        diff.candidate.id.short()
    );
    if let Some(agent) = &diff.agent {
        let _ = writeln!(out, "\nagent {}", agent_headline(agent));
        for (label, value) in agent_rows(agent) {
            let _ = writeln!(out, "  {label:<14} {value}");
        }
        if let Some(prompt) = &agent.system_prompt_diff {
            let _ = writeln!(out, "  system prompt");
            for line in prompt.lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    let _ = writeln!(
        out,
        "\n{:<24} {:>12} {:>12} {:>7}  {:<12} VERDICT",
        "METRIC", "BASELINE", "CANDIDATE", "CHANGE", "TOLERANCE"
    );
    for m in &diff.metrics {
        let _ = writeln!(
            out,
            "{:<24} {:>12} {:>12} {:>7}  {:<12} {}",
            m.metric,
            m.baseline,
            m.candidate,
            change_text(m.change),
            m.tolerance,
            verdict_text(m.verdict)
        );
    }
    let _ = writeln!(out, "\ntool calls");
    match &diff.first_divergence {
        None => {
            let n = diff.baseline.sequence.len();
            let _ = match n {
                0 => writeln!(out, "  no tool calls on either side"),
                1 => writeln!(out, "  the same call"),
                n => writeln!(out, "  the same {n} calls in the same order"),
            };
        }
        Some(d) => {
            let show = |c: &Option<crate::CallKey>| {
                c.as_ref()
                    .map_or_else(|| "(none)".to_owned(), |c| format!("{} {}", c.tool, c.args))
            };
            let _ = writeln!(
                out,
                "  first divergence at call {} of the baseline (call {} of the candidate)",
                d.baseline_index + 1,
                d.candidate_index + 1
            );
            let _ = writeln!(out, "    expected  {}", show(&d.expected));
            let _ = writeln!(out, "    actual    {}", show(&d.actual));
        }
    }
    for row in &diff.alignment {
        let (sign, call) = match row {
            Aligned::Same { call } => (' ', call),
            Aligned::Removed { call } => ('-', call),
            Aligned::Added { call } => ('+', call),
        };
        let _ = writeln!(out, "  {sign} {} {}", call.tool, shorten(&call.args, 80));
    }
    if diff.alignment_truncated {
        let _ = writeln!(
            out,
            "  (alignment stopped at its deadline: coarse but correct)"
        );
    }
    let _ = writeln!(out, "\nanswer (similarity {:.2})", diff.answer.similarity);
    let _ = writeln!(out, "  {}", diff.answer.diff.replace('\n', "\n  "));
    out.lines()
        .map(|l| l.trim_end().to_owned() + "\n")
        .collect()
}

/// A Markdown section for a pull-request comment.
pub fn markdown(diff: &RunDiff) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### {} `{}` → `{}`\n",
        if diff.drift {
            "⚠️ Drift:"
        } else {
            "✅ No drift:"
        },
        diff.baseline.id.short(),
        diff.candidate.id.short()
    );
    if let Some(agent) = &diff.agent {
        let _ = writeln!(out, "**Agent** {}\n", md_escape(&agent_headline(agent)));
        for (label, value) in agent_rows(agent) {
            let _ = writeln!(out, "- {label}: {}", md_escape(&value));
        }
        if let Some(prompt) = &agent.system_prompt_diff {
            let _ = writeln!(
                out,
                "- system prompt:\n\n```diff\n{}```",
                prompt.replace("```", "`` `")
            );
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "| metric | baseline | candidate | change | tolerance | verdict |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---|---|");
    for m in &diff.metrics {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            md_escape(&m.metric),
            md_escape(&m.baseline),
            md_escape(&m.candidate),
            change_text(m.change),
            m.tolerance,
            match m.verdict {
                Verdict::Drift => "**drift**",
                other => verdict_text(other),
            }
        );
    }
    if let Some(d) = &diff.first_divergence {
        let show = |c: &Option<crate::CallKey>| {
            c.as_ref()
                .map_or_else(|| "(none)".to_owned(), |c| format!("{} {}", c.tool, c.args))
        };
        let _ = writeln!(
            out,
            "\nFirst divergence at tool call {}: expected `{}`, got `{}`.",
            d.baseline_index + 1,
            md_escape(&shorten(&show(&d.expected), 120)),
            md_escape(&shorten(&show(&d.actual), 120))
        );
    }
    if diff.answer.similarity < 1.0 {
        let _ = writeln!(
            out,
            "\n<details><summary>answer diff (similarity {:.2})</summary>\n\n```text\n{}\n```\n</details>",
            diff.answer.similarity,
            diff.answer.diff.replace("```", "`` `")
        );
    }
    out
}

/// The style sheet of the HTML reports.
pub const HTML_STYLE: &str = "body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}\
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}tr.drift{background:#fde2e1}\
tr.removed{background:#fde2e1}tr.added{background:#e3f6e3}del{background:#fbb;text-decoration:line-through}\
ins{background:#bfb;text-decoration:none}h1 .drift{color:#b00}h1 .ok{color:#070}code{font-size:12px}";

/// One self-contained HTML page (no external resources).
pub fn html(diff: &RunDiff) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>tapedeck diff {b} → {c}</title>\
<style>{HTML_STYLE}</style></head><body>{body}</body></html>\n",
        b = diff.baseline.id.short(),
        c = diff.candidate.id.short(),
        body = html_body(diff),
    )
}

/// The body of [`html`]: verdict heading, metrics, tool calls side by side, answer diff (for
/// pages that show several diffs, such as a golden suite's report).
pub fn html_body(diff: &RunDiff) -> String {
    let mut rows = String::new();
    for m in &diff.metrics {
        let class = match m.verdict {
            Verdict::Drift => "drift",
            Verdict::Ok => "ok",
            _ => "info",
        };
        let _ = write!(
            rows,
            "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&m.metric),
            esc(&m.baseline),
            esc(&m.candidate),
            esc(&change_text(m.change)),
            esc(&m.tolerance),
            esc(verdict_text(m.verdict))
        );
    }
    let mut timeline = String::new();
    for row in &diff.alignment {
        let (class, left, right) = match row {
            Aligned::Same { call } => ("same", Some(call), Some(call)),
            Aligned::Removed { call } => ("removed", Some(call), None),
            Aligned::Added { call } => ("added", None, Some(call)),
        };
        let cell = |c: Option<&crate::CallKey>| {
            c.map_or_else(String::new, |c| {
                format!(
                    "<b>{}</b> <code>{}</code>",
                    esc(&c.tool),
                    esc(&shorten(&c.args, 120))
                )
            })
        };
        let _ = write!(
            timeline,
            "<tr class=\"{class}\"><td>{}</td><td>{}</td></tr>",
            cell(left),
            cell(right)
        );
    }
    let mut agent_section = String::new();
    if let Some(agent) = &diff.agent {
        let _ = write!(
            agent_section,
            "<h2>Agent</h2><p>{}</p>",
            esc(&agent_headline(agent))
        );
        let rows: String = agent_rows(agent)
            .iter()
            .map(|(label, value)| format!("<tr><th>{label}</th><td>{}</td></tr>", esc(value)))
            .collect();
        if !rows.is_empty() {
            let _ = write!(agent_section, "<table>{rows}</table>");
        }
        if let Some(prompt) = &agent.system_prompt_diff {
            let lines: String = prompt
                .lines()
                .map(|line| match line.chars().next() {
                    Some('-') => format!("<del>{}</del>\n", esc(line)),
                    Some('+') => format!("<ins>{}</ins>\n", esc(line)),
                    _ => format!("{}\n", esc(line)),
                })
                .collect();
            let _ = write!(agent_section, "<h3>System prompt</h3><pre>{lines}</pre>");
        }
    }
    let answer = esc(&diff.answer.diff)
        .replace("[-", "<del>")
        .replace("-]", "</del>")
        .replace("{+", "<ins>")
        .replace("+}", "</ins>");
    format!(
        "<h1><span class=\"{cls}\">{verdict}</span> baseline {b} → candidate {c}</h1>{agent_section}\
<h2>Metrics</h2><table><tr><th>metric</th><th>baseline</th><th>candidate</th><th>change</th><th>tolerance</th><th>verdict</th></tr>{rows}</table>\
<h2>Tool calls, side by side</h2><table><tr><th>baseline</th><th>candidate</th></tr>{timeline}</table>\
<h2>Answer (similarity {sim:.2})</h2><p>{answer}</p>",
        b = diff.baseline.id.short(),
        c = diff.candidate.id.short(),
        cls = if diff.drift { "drift" } else { "ok" },
        verdict = if diff.drift { "Drift:" } else { "No drift:" },
        sim = diff.answer.similarity,
    )
}

/// HTML-escapes text.
pub fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

pub(crate) fn md_escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

pub(crate) fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(max - 1).collect();
        s.push('…');
        s
    }
}
