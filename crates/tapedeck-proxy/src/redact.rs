//! Secret redaction: what the proxies remove before anything is written to the store.
//!
//! Headers named `authorization`, `x-api-key` and `api-key` are dropped, query parameters of
//! those names lose their value, and text matching a configured pattern becomes
//! [`REDACTED`]. The values of secret headers seen on the wire are also remembered and scrubbed
//! from any text recorded later (an upstream error that echoes the API key, say).

use std::sync::Mutex;

use regex::Regex;
use serde_json::Value;

/// What a redacted secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Header and query-parameter names whose values are secrets.
pub const SECRET_NAMES: [&str; 3] = ["authorization", "x-api-key", "api-key"];

/// Removes secrets from headers, paths and recorded text.
#[derive(Debug, Default)]
pub struct Redactor {
    patterns: Vec<Regex>,
    seen: Mutex<Vec<String>>,
}

impl Redactor {
    /// A redactor with extra patterns (regular expressions) on top of the secret names.
    pub fn new(patterns: &[String]) -> Result<Self, regex::Error> {
        Ok(Self {
            patterns: patterns
                .iter()
                .map(|p| Regex::new(p))
                .collect::<Result<_, _>>()?,
            seen: Mutex::new(Vec::new()),
        })
    }

    /// Whether a header (or query parameter) of this name carries a secret.
    pub fn is_secret_name(name: &str) -> bool {
        SECRET_NAMES.iter().any(|s| s.eq_ignore_ascii_case(name))
    }

    /// Remembers a secret value seen on the wire (a secret header's value), so that it is
    /// scrubbed from any text recorded later. `Bearer ` prefixes are dropped.
    pub fn learn(&self, value: &str) {
        let value = value.trim();
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .unwrap_or(value)
            .trim();
        // Very short values would scrub ordinary text; they are not keys anyway.
        if token.len() < 8 {
            return;
        }
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !seen.iter().any(|s| s == token) {
            seen.push(token.to_owned());
        }
    }

    /// `text` with every learned secret and every pattern match replaced.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        {
            let seen = self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for secret in seen.iter() {
                if out.contains(secret.as_str()) {
                    out = out.replace(secret.as_str(), REDACTED);
                }
            }
        }
        for pattern in &self.patterns {
            if pattern.is_match(&out) {
                out = pattern.replace_all(&out, REDACTED).into_owned();
            }
        }
        out
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
}
