//! Secret redaction: what the proxies remove before anything is written to the store.
//!
//! Headers named `authorization`, `x-api-key` and `api-key` are dropped, query parameters of
//! those names lose their value, and text matching a configured pattern becomes
//! [`REDACTED`]. The values of secret headers seen on the wire are also remembered and scrubbed
//! from any text recorded later (an upstream error that echoes the API key, say), in every form
//! an echo can take: plain, JSON-escaped (`\u002d`, at any depth of nesting), URL-encoded
//! (`%2D`), in the decoded strings of a JSON body ([`Redactor::body`]), and split across the
//! deltas of a stream ([`Redactor::sse`]).

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use regex::Regex;
use serde_json::Value;

use tapedeck_wire::sse;

/// What a redacted secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Header and query-parameter names whose values are secrets.
pub const SECRET_NAMES: [&str; 3] = ["authorization", "x-api-key", "api-key"];

/// Removes secrets from headers, paths and recorded text.
#[derive(Debug, Default)]
pub struct Redactor {
    patterns: Vec<Regex>,
    seen: Mutex<Seen>,
}

/// How many learned secrets a redactor keeps, the most recent. A long-lived proxy whose
/// clients rotate short-lived tokens would otherwise keep every one, and search for each in
/// every recorded text; a key that far back in rotation no longer works anyway.
const MAX_SECRETS: usize = 64;

/// The secret values learned, oldest first, each with the expression matching it in any
/// encoding. One expression a secret: a single one over all of them could outgrow the regex
/// size limit with a few long tokens and fall back to plain forms for every key.
#[derive(Debug, Default)]
struct Seen {
    /// Each expression is shared rather than cloned: a cloned `Regex` starts a new cache pool,
    /// and building a lazy DFA cache on every search cost the proxy ~2 ms a request.
    secrets: Vec<(String, Arc<Regex>)>,
}

impl Seen {
    fn expressions(&self) -> Vec<Arc<Regex>> {
        self.secrets.iter().map(|(_, r)| Arc::clone(r)).collect()
    }
}

/// An expression matching `secret` written plainly, JSON-escaped or URL-encoded, character by
/// character (so also any mix of them).
fn encoded_forms(secret: &str) -> String {
    let mut out = String::new();
    for c in secret.chars() {
        let mut utf8 = [0u8; 4];
        let mut alternatives = vec![regex::escape(c.encode_utf8(&mut utf8))];
        // JSON: `\uXXXX` (UTF-16 units, hex in either case); a JSON text inside a JSON string
        // doubles the backslash once per level.
        let mut utf16 = [0u16; 2];
        alternatives.push(
            c.encode_utf16(&mut utf16)
                .iter()
                .map(|unit| format!(r"\\+u(?i:{unit:04x})"))
                .collect(),
        );
        if matches!(c, '/' | '"' | '\\') {
            alternatives.push(format!(r"\\+{}", regex::escape(&c.to_string())));
        }
        // URL: `%XX` per UTF-8 byte, `%25XX` once more per level of encoding.
        alternatives.push(
            c.encode_utf8(&mut utf8)
                .bytes()
                .map(|byte| format!("%(?:25)*(?i:{byte:02x})"))
                .collect(),
        );
        if c == ' ' {
            alternatives.push(r"\+".to_owned());
        }
        out.push_str("(?:");
        out.push_str(&alternatives.join("|"));
        out.push(')');
    }
    out
}

/// `value` with its `%XX` escapes decoded, when that is different text.
fn percent_decoded(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .filter(|_| bytes[i] == b'%')
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok().filter(|d| d != value)
}

/// Sorted, merged, non-empty ranges.
fn merged(mut spans: Vec<Range<usize>>) -> Vec<Range<usize>> {
    spans.retain(|s| !s.is_empty());
    spans.sort_by_key(|s| s.start);
    let mut out: Vec<Range<usize>> = Vec::with_capacity(spans.len());
    for span in spans {
        match out.last_mut() {
            Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
            _ => out.push(span),
        }
    }
    out
}

/// Whether a string field of a stream event is a piece of a longer text (a delta), whose
/// pieces are joined to find a secret split across events. Only those: joining the `id` every
/// event repeats would let a catch-all `--redact` pattern match across them and cut ids.
fn is_streamed_text(pointer: &str) -> bool {
    // Chat Completions `/choices/N/delta/…`, Anthropic `/delta/text` and
    // `/delta/partial_json`, the Responses API's `/delta`.
    pointer.contains("/delta")
}

/// Calls `f` with the JSON pointer and text of every string inside `value` (keys aside).
fn leaves(value: &Value, pointer: &mut String, f: &mut impl FnMut(&str, &str)) {
    let len = pointer.len();
    match value {
        Value::String(text) => f(pointer, text),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                pointer.push('/');
                pointer.push_str(&i.to_string());
                leaves(item, pointer, f);
                pointer.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                leaves(item, pointer, f);
                pointer.truncate(len);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// An event block with its `data` lines replaced by one line of `data`, its other lines and
/// line ends kept.
fn with_data(block: &str, data: &str) -> String {
    let end = if block.contains("\r\n") {
        "\r\n"
    } else if block.contains('\n') {
        "\n"
    } else {
        "\r"
    };
    let mut lines = Vec::new();
    let mut written = false;
    for line in block.split(end) {
        if line == "data" || line.starts_with("data:") {
            if !std::mem::replace(&mut written, true) {
                lines.push(format!("data: {data}"));
            }
        } else {
            lines.push(line.to_owned());
        }
    }
    lines.join(end)
}

impl Redactor {
    /// A redactor with extra patterns (regular expressions) on top of the secret names.
    pub fn new(patterns: &[String]) -> Result<Self, regex::Error> {
        Ok(Self {
            patterns: patterns
                .iter()
                .map(|p| Regex::new(p))
                .collect::<Result<_, _>>()?,
            seen: Mutex::new(Seen::default()),
        })
    }

    /// Whether a header (or query parameter) of this name carries a secret.
    pub fn is_secret_name(name: &str) -> bool {
        SECRET_NAMES.iter().any(|s| s.eq_ignore_ascii_case(name))
    }

    /// Remembers a secret value seen on the wire (a secret header's value), so that it is
    /// scrubbed from any text recorded later. `Bearer ` prefixes are dropped; a value with
    /// `%XX` escapes (from a query string) is remembered decoded too.
    pub fn learn(&self, value: &str) {
        let value = value.trim();
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .unwrap_or(value)
            .trim();
        let decoded = percent_decoded(token);
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for token in std::iter::once(token).chain(decoded.as_deref()) {
            // Very short values would scrub ordinary text; they are not keys anyway.
            if token.chars().count() < 8 || seen.secrets.iter().any(|(s, _)| s == token) {
                continue;
            }
            // Built from escaped text only: it cannot fail but for size (a very long token),
            // and then its plain form still applies.
            let expression =
                Regex::new(&encoded_forms(token)).or_else(|_| Regex::new(&regex::escape(token)));
            if let Ok(expression) = expression {
                seen.secrets.push((token.to_owned(), Arc::new(expression)));
            }
            if seen.secrets.len() > MAX_SECRETS {
                seen.secrets.remove(0);
            }
        }
    }

    /// Whether there is nothing to look for yet (no secret learned, no pattern).
    fn finds_nothing(&self) -> bool {
        self.patterns.is_empty()
            && self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .secrets
                .is_empty()
    }

    /// Where `text` holds a learned secret (in any form) or a pattern's match.
    fn spans(&self, text: &str) -> Vec<Range<usize>> {
        let secrets = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .expressions();
        // Overlapping matches (a secret inside another) merge into one span below.
        let mut spans: Vec<Range<usize>> = Vec::new();
        for secret in secrets {
            spans.extend(secret.find_iter(text).map(|m| m.range()));
        }
        for pattern in &self.patterns {
            spans.extend(pattern.find_iter(text).map(|m| m.range()));
        }
        merged(spans)
    }

    /// `text` with every learned secret (plain, JSON-escaped or URL-encoded) and every pattern
    /// match replaced.
    pub fn text(&self, text: &str) -> String {
        let spans = self.spans(text);
        if spans.is_empty() {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for span in spans {
            out.push_str(&text[at..span.start]);
            out.push_str(REDACTED);
            at = span.end;
        }
        out.push_str(&text[at..]);
        out
    }

    /// `text` that was cut short (a response truncated at the size bound, a stream that broke
    /// off) with a trailing start of a learned secret (4 characters or more, as written plainly)
    /// redacted: the rules above match a whole secret, and the cut may fall inside one.
    pub fn cut_end(&self, text: &str) -> String {
        let seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let longest = seen
            .secrets
            .iter()
            .filter_map(|(secret, _)| {
                (4..secret.len())
                    .rev()
                    .filter(|k| secret.is_char_boundary(*k))
                    .find(|k| text.ends_with(&secret[..*k]))
            })
            .max();
        match longest {
            Some(k) => format!("{}{REDACTED}", &text[..text.len() - k]),
            None => text.to_owned(),
        }
    }

    /// Whether any string (or key) inside a JSON value holds a secret.
    fn holds_secret(&self, value: &Value) -> bool {
        match value {
            Value::String(s) => !self.spans(s).is_empty(),
            Value::Array(items) => items.iter().any(|v| self.holds_secret(v)),
            Value::Object(map) => map.iter().any(|(k, v)| {
                Self::is_secret_name(k) || !self.spans(k).is_empty() || self.holds_secret(v)
            }),
            Value::Null | Value::Bool(_) | Value::Number(_) => false,
        }
    }

    /// A response or request body as it is recorded: the text rules applied to it as it is,
    /// and, for a JSON body whose decoded strings still hold a secret, the body re-encoded from
    /// its redacted value (a client served it in replay still gets JSON).
    pub fn body(&self, body: &str) -> String {
        if self.finds_nothing() {
            return body.to_owned();
        }
        let out = self.text(body);
        // Decoded strings differ from the raw text only through backslash escapes: without
        // one, the text rules above have seen everything.
        if !out.contains('\\') {
            return out;
        }
        match serde_json::from_str::<Value>(&out) {
            Ok(mut value) if self.holds_secret(&value) => {
                self.value(&mut value);
                value.to_string()
            }
            _ => out,
        }
    }

    /// The pieces of a server-sent-events response as they are recorded: the text rules
    /// applied to each event, and a secret split across the deltas of several events (the
    /// same field of each, such as `choices/0/delta/content`) removed from those events, which
    /// are re-encoded: the first holds [`REDACTED`] where its part was, the others lose
    /// theirs. The pieces keep their boundaries but where an event changed (its boundaries
    /// move to its end), so a replay re-emits the same chunking and valid events.
    pub fn sse(&self, chunks: &[String]) -> Vec<String> {
        if self.finds_nothing() {
            return chunks.to_vec();
        }
        let joined = chunks.concat();
        let blocks = sse::blocks(&joined);
        let mut values: Vec<Option<Value>> = blocks
            .iter()
            .map(|b| {
                let event = sse::parse_block(joined[b.clone()].trim_end_matches(['\r', '\n']))?;
                serde_json::from_str(&event.data).ok()
            })
            .collect();
        // The string leaves of each event, by where they are in it, in stream order.
        let mut fields: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
        for (i, value) in values.iter().enumerate() {
            if let Some(value) = value {
                leaves(value, &mut String::new(), &mut |pointer, text| {
                    if is_streamed_text(pointer) {
                        fields
                            .entry(pointer.to_owned())
                            .or_default()
                            .push((i, text.to_owned()));
                    }
                });
            }
        }
        let mut changed = vec![false; blocks.len()];
        for (pointer, pieces) in &fields {
            if pieces.len() < 2 {
                continue;
            }
            let whole: String = pieces.iter().map(|(_, t)| t.as_str()).collect();
            let mut starts = Vec::with_capacity(pieces.len());
            let mut at = 0;
            for (_, text) in pieces {
                starts.push(at);
                at += text.len();
            }
            // What to cut from each piece, and what to put there.
            let mut edits: Vec<Vec<(Range<usize>, &str)>> = vec![Vec::new(); pieces.len()];
            for span in self.spans(&whole) {
                let first = starts.partition_point(|s| *s <= span.start) - 1;
                let last = starts.partition_point(|s| *s < span.end) - 1;
                // A secret inside one piece is found by the text rules on the event itself.
                if first == last {
                    continue;
                }
                for n in first..=last {
                    let from = span.start.saturating_sub(starts[n]);
                    let to = (span.end - starts[n]).min(pieces[n].1.len());
                    let replacement = if n == first { REDACTED } else { "" };
                    edits[n].push((from..to, replacement));
                }
            }
            for ((block, text), edits) in pieces.iter().zip(edits) {
                if edits.is_empty() {
                    continue;
                }
                let mut new = String::with_capacity(text.len());
                let mut at = 0;
                for (range, replacement) in edits {
                    new.push_str(&text[at..range.start]);
                    new.push_str(replacement);
                    at = range.end;
                }
                new.push_str(&text[at..]);
                if let Some(Some(Value::String(slot))) = values
                    .get_mut(*block)
                    .map(|v| v.as_mut().and_then(|v| v.pointer_mut(pointer)))
                {
                    *slot = new;
                    changed[*block] = true;
                }
            }
        }
        // The new text of each block, and how its boundaries move.
        let mut out = String::with_capacity(joined.len());
        let mut moved: Vec<(Range<usize>, usize, bool)> = Vec::with_capacity(blocks.len());
        for (i, block) in blocks.iter().enumerate() {
            let raw = &joined[block.clone()];
            let rebuilt = match (&values[i], changed[i]) {
                (Some(value), true) => with_data(raw, &value.to_string()),
                _ => raw.to_owned(),
            };
            let redacted = self.text(&rebuilt);
            let start = out.len();
            let differs = redacted != raw;
            out.push_str(&redacted);
            moved.push((block.clone(), start, differs));
        }
        // Each piece ends where it ended, or at the end of the block it ended in if that block
        // changed.
        let mut pieces = Vec::with_capacity(chunks.len());
        let (mut from, mut old_end) = (0usize, 0usize);
        for chunk in chunks {
            old_end += chunk.len();
            let i = moved.partition_point(|(b, _, _)| b.end < old_end);
            let to = match moved.get(i) {
                Some((block, start, false)) => start + (old_end - block.start),
                Some((_, start, true)) => moved
                    .get(i + 1)
                    .map_or(out.len(), |(_, s, _)| *s)
                    .max(*start),
                None => out.len(),
            };
            if to > from {
                pieces.push(out[from..to].to_owned());
                from = to;
            }
        }
        if from < out.len() {
            pieces.push(out[from..].to_owned());
        }
        pieces
    }

    /// Redacts every string (keys too) inside a JSON value, in place.
    pub fn value(&self, value: &mut Value) {
        match value {
            Value::String(s) => {
                let redacted = self.text(s);
                if redacted != *s {
                    *s = redacted;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.value(v)),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (key, mut v) in entries {
                    if Self::is_secret_name(&key) {
                        v = Value::String(REDACTED.to_owned());
                    } else {
                        self.value(&mut v);
                    }
                    map.insert(self.text(&key), v);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// A path and query with the values of secret query parameters replaced, then the text
    /// rules applied.
    pub fn path(&self, path_and_query: &str) -> String {
        let Some((path, query)) = path_and_query.split_once('?') else {
            return self.text(path_and_query);
        };
        let query: Vec<String> = query
            .split('&')
            .map(|pair| {
                let name = pair.split_once('=').map_or(pair, |(n, _)| n);
                if Self::is_secret_name(name) {
                    format!("{name}={REDACTED}")
                } else {
                    pair.to_owned()
                }
            })
            .collect();
        self.text(&format!("{path}?{}", query.join("&")))
    }

    /// The headers worth recording: secret ones dropped (their values learned), the rest
    /// with the text rules applied.
    pub fn headers<'a>(
        &self,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> serde_json::Map<String, Value> {
        let mut out = serde_json::Map::new();
        for (name, value) in headers {
            if Self::is_secret_name(name) {
                self.learn(value);
                continue;
            }
            out.insert(name.to_ascii_lowercase(), Value::String(self.text(value)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_headers_are_dropped_and_their_values_scrubbed() {
        let r = Redactor::new(&[]).expect("no patterns");
        let h = r.headers([
            ("Authorization", "Bearer sk-test-1234567890"),
            ("content-type", "application/json"),
        ]);
        assert!(!h.contains_key("authorization"));
        assert_eq!(r.text("bad key sk-test-1234567890!"), "bad key [REDACTED]!");
    }

    #[test]
    fn query_params_and_patterns() {
        let r = Redactor::new(&["ssn-\\d+".to_owned()]).expect("valid");
        assert_eq!(
            r.path("/v1/x?api-key=abc&b=1&ssn=ssn-42"),
            "/v1/x?api-key=[REDACTED]&b=1&ssn=[REDACTED]"
        );
        let mut v = serde_json::json!({"a": ["ssn-7"], "x-api-key": "k"});
        r.value(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a": ["[REDACTED]"], "x-api-key": "[REDACTED]"})
        );
    }

    const KEY: &str = "sk-test-VERYSECRET-0123456789";

    fn learned() -> Redactor {
        let r = Redactor::new(&[]).expect("no patterns");
        r.learn(&format!("Bearer {KEY}"));
        r
    }

    #[test]
    fn json_escaped_and_url_encoded_echoes_are_scrubbed() {
        let r = learned();
        for echo in [
            r"sk\u002dtest\u002DVERYSECRET\u002d0123456789",
            r"\u0073\u006b-test-VERYSECRET-0123456789",
            r"sk\\u002dtest-VERYSECRET-0123456789",
            "sk%2Dtest%2dVERYSECRET%2D0123456789",
            "sk%252Dtest-VERYSECRET-0123456789",
        ] {
            assert_eq!(
                r.text(&format!("bad key {echo}!")),
                "bad key [REDACTED]!",
                "{echo}"
            );
        }
        // A body stays JSON, its decoded strings without the key.
        let body =
            r#"{"error": {"message": "bad key sk\u002dtest\u002dVERYSECRET\u002d0123456789"}}"#;
        let out = r.body(body);
        let value: Value = serde_json::from_str(&out).expect("still JSON");
        assert_eq!(value["error"]["message"], "bad key [REDACTED]");
    }

    #[test]
    fn a_query_secret_is_learned_decoded_too() {
        let r = Redactor::new(&[]).expect("no patterns");
        r.learn("sk%2Dquery%2DSECRET99");
        assert_eq!(r.text("echo sk-query-SECRET99"), "echo [REDACTED]");
    }

    fn delta(text: &str) -> String {
        format!(
            "data: {}\n\n",
            serde_json::json!({"choices": [{"index": 0, "delta": {"content": text}}]})
        )
    }

    #[test]
    fn a_key_split_across_deltas_is_scrubbed_from_the_pieces() {
        let r = learned();
        let (head, tail) = KEY.split_at(10);
        // The second event arrives in two pieces, and a third piece holds the end.
        let second = delta(&format!("{tail} and more"));
        let (a, b) = second.split_at(12);
        let chunks = vec![
            delta(&format!("the key is {head}")),
            a.to_owned(),
            b.to_owned(),
            "data: [DONE]\n\n".to_owned(),
        ];
        let out = r.sse(&chunks);
        let joined = out.concat();
        assert!(!joined.contains(&tail[..8]), "{joined}");
        let texts: Vec<String> = sse::blocks(&joined)
            .iter()
            .filter_map(|b| sse::parse_block(joined[b.clone()].trim_end()))
            .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
            .map(|v| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect();
        assert_eq!(texts.concat(), "the key is [REDACTED] and more");
        // The untouched last piece keeps its own boundary.
        assert_eq!(out.last().map(String::as_str), Some("data: [DONE]\n\n"));
    }

    /// Regression: the `id` every event repeats was joined like a delta, so a catch-all
    /// pattern matched across events and cut the ids of the recording.
    /// Regression: every token learned went into one expression, so a few long rotating
    /// tokens outgrew the regex size limit and every key fell back to its plain form only.
    #[test]
    fn rotating_tokens_keep_their_encoded_forms_and_are_bounded() {
        let r = Redactor::new(&[]).expect("no patterns");
        let token = |i: usize| format!("eyJ-{i:04}-{}", "abc-DEF-".repeat(50));
        for i in 0..MAX_SECRETS + 6 {
            r.learn(&format!("Bearer {}", token(i)));
        }
        let last = token(MAX_SECRETS + 5);
        let escaped = last.replace('-', "\\u002d");
        assert_eq!(r.text(&format!("echo {escaped}")), "echo [REDACTED]");
        let seen = r.seen.lock().expect("not poisoned");
        assert_eq!(seen.secrets.len(), MAX_SECRETS);
        assert!(
            seen.secrets.iter().all(|(s, _)| *s != token(0)),
            "the oldest is dropped"
        );
    }

    /// Regression: a response cut at the size bound inside an echoed key kept the key's start.
    #[test]
    fn the_start_of_a_key_at_a_cut_is_redacted() {
        let r = learned();
        let cut = format!("error: bad key {}", &KEY[..12]);
        assert_eq!(r.cut_end(&cut), "error: bad key [REDACTED]");
        assert_eq!(r.cut_end("nothing secret here"), "nothing secret here");
        // Three characters could be anything: left as they are.
        assert_eq!(
            r.cut_end(&format!("x {}", &KEY[..3])),
            format!("x {}", &KEY[..3])
        );
    }

    #[test]
    fn a_catch_all_pattern_leaves_repeated_ids_whole() {
        let r = Redactor::new(&["[A-Za-z0-9]{24,}".to_owned()]).expect("a pattern");
        let event = |text: &str| {
            format!(
                "data: {}\n\n",
                serde_json::json!({"id": "chatcmpl-AbCdEfGhIjKl0123456789", "choices": [{"index": 0, "delta": {"content": text}}]})
            )
        };
        let chunks = vec![event("Hello"), event(" world")];
        assert_eq!(r.sse(&chunks), chunks);
    }

    #[test]
    fn a_key_split_across_network_pieces_of_one_event_is_scrubbed() {
        let r = learned();
        let event = delta(&format!("key {KEY}!"));
        let cut = event.find("VERY").expect("the key");
        let chunks = vec![
            "data: {}\n\n".to_owned(),
            event[..cut].to_owned(),
            event[cut..].to_owned(),
            "data: [DONE]\n\n".to_owned(),
        ];
        let out = r.sse(&chunks);
        assert_eq!(
            out,
            vec![
                "data: {}\n\n".to_owned(),
                delta("key [REDACTED]!"),
                "data: [DONE]\n\n".to_owned()
            ]
        );
    }

    #[test]
    fn pieces_without_secrets_keep_their_boundaries() {
        let r = learned();
        let chunks = vec![
            "data: {\"a\"".to_owned(),
            ":1}\n\nda".to_owned(),
            "ta: [DONE]\n\n".to_owned(),
        ];
        assert_eq!(r.sse(&chunks), chunks);
    }
}
