//! Why a replayed request found no recorded one: the first field where it differs from the
//! closest recorded request, both values shortened around the part that differs, and an
//! `--ignore` pattern when that part looks volatile (a timestamp, a UUID, a hex id, a
//! numbered id).

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

/// How much text to keep on each side of the part that differs.
const CONTEXT: usize = 24;

/// The longest differing part shown whole.
const LONGEST_PART: usize = 60;

/// The first difference between a recorded and an actual request: where, and both values.
#[derive(Clone, Debug, PartialEq)]
pub struct Difference {
    /// The field, as a path (`body.messages[5].content`).
    pub path: String,
    /// The recorded value there (`None`: the recorded request has no such field).
    pub recorded: Option<Value>,
    /// The actual value there.
    pub actual: Option<Value>,
}

/// The first field where `recorded` and `actual` differ (keys in sorted order, arrays by
/// index), with both values.
pub fn first_difference(recorded: &Value, actual: &Value, path: &str) -> Option<Difference> {
    match (recorded, actual) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => first_difference(p, q, &sub),
                    (p, q) => Some(Difference {
                        path: sub,
                        recorded: p.cloned(),
                        actual: q.cloned(),
                    }),
                }
            })
        }
        (Value::Array(x), Value::Array(y)) => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                if let Some(d) = first_difference(p, q, &format!("{path}[{i}]")) {
                    return Some(d);
                }
            }
            let n = x.len().min(y.len());
            (x.len() != y.len()).then(|| Difference {
                path: format!("{path}[{n}]"),
                recorded: x.get(n).cloned(),
                actual: y.get(n).cloned(),
            })
        }
        _ => (recorded != actual).then(|| Difference {
            path: path.to_owned(),
            recorded: Some(recorded.clone()),
            actual: Some(actual.clone()),
        }),
    }
}

/// Volatile kinds of text, most specific first, with the pattern that matches them.
static VOLATILE: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    [
        (
            "a timestamp",
            r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?",
        ),
        ("a date", r"\d{4}-\d{2}-\d{2}"),
        ("a time of day", r"\d{1,2}:\d{2}(:\d{2})?"),
        (
            "a UUID",
            r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
        ),
        ("a numbered id", r"[A-Za-z]+[-_]\d+"),
        (
            "a hex id",
            r"\b(?:[0-9a-f]*\d[0-9a-f]*[a-f][0-9a-f]*|[0-9a-f]*[a-f][0-9a-f]*\d[0-9a-f]*)\b",
        ),
        ("a number", r"\d+"),
    ]
    .into_iter()
    .filter_map(|(name, pattern)| Some((name, Regex::new(pattern).ok()?)))
    .collect()
});

/// The text of a value as shown: a string as itself, anything else as JSON.
fn text_of(value: Option<&Value>) -> String {
    match value {
        None => "(absent)".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The byte ranges of `a` and `b` that differ, after their common prefix and suffix, on
/// character boundaries.
fn differing(a: &str, b: &str) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
    let prefix: usize = a
        .chars()
        .zip(b.chars())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x.len_utf8())
        .sum();
    let suffix: usize = a[prefix..]
        .chars()
        .rev()
        .zip(b[prefix..].chars().rev())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x.len_utf8())
        .sum();
    (prefix..a.len() - suffix, prefix..b.len() - suffix)
}

/// `text` around `part`, with the part marked `[-…-]` and at most [`CONTEXT`] characters of
/// context on either side.
fn marked(text: &str, part: &std::ops::Range<usize>) -> String {
    let before = &text[..part.start];
    let after = &text[part.end..];
    let cut_before: String = before
        .chars()
        .rev()
        .take(CONTEXT)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let cut_after: String = after.chars().take(CONTEXT).collect();
    let middle = &text[part.clone()];
    let middle = if middle.chars().count() > LONGEST_PART {
        let head: String = middle.chars().take(LONGEST_PART / 2).collect();
        let tail: String = middle
            .chars()
            .rev()
            .take(LONGEST_PART / 2)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("{head}…{tail}")
    } else {
        middle.to_owned()
    };
    format!(
        "{}{cut_before}[-{middle}-]{cut_after}{}",
        if cut_before.len() < before.len() {
            "…"
        } else {
            ""
        },
        if cut_after.len() < after.len() {
            "…"
        } else {
            ""
        },
    )
}

/// The match of `pattern` in `text` that covers the byte range `part`, if one does.
fn covering<'t>(pattern: &Regex, text: &'t str, part: &std::ops::Range<usize>) -> Option<&'t str> {
    pattern
        .find_iter(text)
        .find(|m| m.start() <= part.start && part.end <= m.end() && m.start() < m.end())
        .map(|m| m.as_str())
}

/// An `--ignore` pattern for the difference, when the differing part of both values is
/// covered by the same volatile kind of text: (what it looks like, the pattern).
fn volatile(recorded: &str, actual: &str) -> Option<(&'static str, String)> {
    let (a, b) = differing(recorded, actual);
    VOLATILE.iter().find_map(|(name, pattern)| {
        let x = covering(pattern, recorded, &a)?;
        let y = covering(pattern, actual, &b)?;
        (x != y).then(|| (*name, pattern.as_str().to_owned()))
    })
}

impl Difference {
    /// The difference for a person: the field, both values with the differing part marked,
    /// and an `--ignore` suggestion when it looks volatile.
    pub fn explain(&self) -> String {
        let recorded = text_of(self.recorded.as_ref());
        let actual = text_of(self.actual.as_ref());
        let (a, b) = differing(&recorded, &actual);
        let mut out = format!(
            "differs at `{}`\n  recorded: {}\n  actual:   {}",
            self.path,
            marked(&recorded, &a),
            marked(&actual, &b)
        );
        if let (Some(Value::String(x)), Some(Value::String(y))) = (&self.recorded, &self.actual)
            && let Some((looks, pattern)) = volatile(x, y)
        {
            out.push_str(&format!(
                "\n  the difference looks like {looks}: to match it anyway, replay with --ignore '{pattern}'"
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_field_and_both_values() {
        let a = json!({"body": {"model": "m", "messages": [{"content": "hi"}]}});
        let b =
            json!({"body": {"model": "m", "messages": [{"content": "hi"}, {"content": "more"}]}});
        let d = first_difference(&a, &b, "").expect("differs");
        assert_eq!(d.path, "body.messages[1]");
        assert_eq!(d.recorded, None);
        assert_eq!(d.actual, Some(json!({"content": "more"})));
    }

    #[test]
    fn marks_the_differing_part() {
        let d = Difference {
            path: "body.model".into(),
            recorded: Some(json!("gpt-4o-mini")),
            actual: Some(json!("gpt-5-mini")),
        };
        let text = d.explain();
        assert!(text.contains("recorded: gpt-[-4o-]-mini"), "{text}");
        assert!(text.contains("actual:   gpt-[-5-]-mini"), "{text}");
        assert!(!text.contains("--ignore"), "{text}");
    }

    #[test]
    fn suggests_an_ignore_pattern_for_volatile_text() {
        let cases = [
            (
                "Today is 2026-12-06T10:00:00Z.",
                "Today is 2026-12-07T11:30:00Z.",
                "a timestamp",
            ),
            (
                "ticket 3f9c2e1a-0000-4000-8000-000000000001 made",
                "ticket 3f9c2e1a-0000-4000-8000-0000000000ff made",
                "a UUID",
            ),
            (
                "created T-1041 for you",
                "created T-1042 for you",
                "a numbered id",
            ),
            ("commit 9f3c2e1ab done", "commit 1a2b3c4d5 done", "a hex id"),
        ];
        for (recorded, actual, looks) in cases {
            let d = Difference {
                path: "p".into(),
                recorded: Some(json!(recorded)),
                actual: Some(json!(actual)),
            };
            let text = d.explain();
            assert!(text.contains(looks), "{recorded} / {actual}: {text}");
            let pattern = text
                .rsplit_once("--ignore '")
                .and_then(|(_, p)| p.strip_suffix('\''))
                .expect("a pattern");
            let re = Regex::new(pattern).expect("valid");
            assert_eq!(
                re.replace_all(recorded, "<ignored>"),
                re.replace_all(actual, "<ignored>"),
                "{pattern} makes them equal"
            );
        }
    }

    #[test]
    fn long_values_are_shortened_around_the_difference() {
        let head = "x".repeat(500);
        let d = Difference {
            path: "p".into(),
            recorded: Some(json!(format!("{head} alpha {head}"))),
            actual: Some(json!(format!("{head} beta {head}"))),
        };
        let text = d.explain();
        assert!(text.len() < 300, "{text}");
        assert!(
            text.contains("[-alpha-]") || text.contains("[-alph"),
            "{text}"
        );
    }
}
