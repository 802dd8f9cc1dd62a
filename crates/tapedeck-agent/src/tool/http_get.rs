//! The builtin `http.get` tool: an HTTP(S) GET limited to the hosts in its `allow_hosts`,
//! redirects included.
//!
//! Arguments: `{"url": "https://host/path", "headers"?: {"name": "value"}}`. The result is
//! `{"status": N, "headers": {…}, "body": …}`: the body is the parsed JSON when the response
//! says it is JSON, otherwise text, cut at 64 KiB (then `"truncated": true`). A 4xx/5xx answer
//! is a tool failure (`HTTP 503 Service Unavailable`), so the runtime counts it as an error.

use std::error::Error as StdError;
use std::fmt;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Url;
use reqwest::blocking::Client;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::redirect::{Attempt, Policy};
use serde_json::{Map, Value, json};

use crate::AgentError;
use crate::tool::{ToolBackend, ToolFailure};

/// The most body that is returned; longer bodies are cut and marked `"truncated": true`.
pub const MAX_BODY: usize = 64 * 1024;
/// The most redirects followed.
const MAX_REDIRECTS: usize = 10;
/// How many characters of an error response's body its failure quotes.
const ERROR_BODY_CHARS: usize = 200;
/// Response headers copied into the result (the rest are volatile or noise).
const KEPT_HEADERS: [&str; 7] = [
    "content-type",
    "content-length",
    "content-language",
    "etag",
    "last-modified",
    "location",
    "retry-after",
];

/// One `allow_hosts` entry: a host, optionally with the one port it may be reached on.
#[derive(Clone, Debug, PartialEq, Eq)]
struct AllowedHost {
    host: String,
    port: Option<u16>,
}

/// The hosts `http.get` may reach.
#[derive(Clone, Debug, Default)]
struct AllowList(Vec<AllowedHost>);

impl AllowList {
    fn parse(entries: &[String]) -> Result<Self, String> {
        let mut hosts = Vec::new();
        for entry in entries {
            let bad = || {
                format!(
                    "allow_hosts entry `{entry}` is not a host (write e.g. `api.example.com` or `127.0.0.1:8080`)"
                )
            };
            let trimmed = entry.trim();
            if trimmed.is_empty()
                || trimmed.contains("://")
                || trimmed.contains(['/', '@', '?', '#'])
            {
                return Err(bad());
            }
            let url = Url::parse(&format!("http://{trimmed}/")).map_err(|_| bad())?;
            let host = url.host_str().map(normalize_host).ok_or_else(bad)?;
            let port = if has_explicit_port(trimmed) {
                url.port_or_known_default()
            } else {
                None
            };
            hosts.push(AllowedHost { host, port });
        }
        Ok(Self(hosts))
    }

    fn allows(&self, url: &Url) -> bool {
        let Some(host) = url.host_str().map(normalize_host) else {
            return false;
        };
        let port = url.port_or_known_default();
        self.0
            .iter()
            .any(|a| a.host == host && a.port.is_none_or(|p| Some(p) == port))
    }
}

/// Lower case, no IPv6 brackets, no trailing dot.
fn normalize_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// Whether an `allow_hosts` entry names a port (`host:8080`, `[::1]:8080`).
fn has_explicit_port(entry: &str) -> bool {
    let after_host = match entry.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or("", |(_, after)| after),
        None if entry.matches(':').count() == 1 => entry.split_once(':').map_or("", |(_, p)| p),
        None => return false,
    };
    let port = after_host.strip_prefix(':').unwrap_or(after_host);
    !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
}

/// A redirect the policy refused; found again in the error chain to explain it.
#[derive(Debug)]
struct Refused {
    message: String,
    /// Refused for where it leads (else: for how many there were).
    not_allowed: bool,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for Refused {}

/// The builtin `http.get`.
pub struct HttpGet {
    allow: Arc<AllowList>,
    /// Built on the first call (building one starts a thread).
    client: Mutex<Option<Client>>,
}

impl fmt::Debug for HttpGet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpGet")
            .field("allow", &self.allow)
            .finish_non_exhaustive()
    }
}

impl HttpGet {
    /// `http.get` limited to `allow_hosts`: exact host names or IP addresses (case does not
    /// matter), each optionally with a port (`127.0.0.1:8080`) to allow only that port.
    pub fn new(allow_hosts: Vec<String>) -> Result<Self, AgentError> {
        let allow = AllowList::parse(&allow_hosts).map_err(|message| AgentError::Tool {
            tool: "http.get".to_owned(),
            message,
        })?;
        Ok(Self {
            allow: Arc::new(allow),
            client: Mutex::new(None),
        })
    }

    fn client(&self) -> Result<Client, ToolFailure> {
        let mut slot = self
            .client
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let allow = Arc::clone(&self.allow);
        let client = crate::model::http::client_builder()
            .redirect(Policy::custom(move |attempt| redirect(&allow, attempt)))
            .build()
            .map_err(|e| {
                ToolFailure::Unavailable(format!(
                    "cannot set up the HTTP client: {}",
                    tapedeck_trace::one_line(&e)
                ))
            })?;
        *slot = Some(client.clone());
        Ok(client)
    }
}

/// Follows a redirect only to an allowed http(s) host.
fn redirect(allow: &AllowList, attempt: Attempt<'_>) -> reqwest::redirect::Action {
    let url = attempt.url();
    if !matches!(url.scheme(), "http" | "https") {
        let message = format!(
            "redirect to a `{}` URL refused: http.get only follows http and https",
            url.scheme()
        );
        return attempt.error(Refused {
            message,
            not_allowed: true,
        });
    }
    if !allow.allows(url) {
        let host = url.host_str().unwrap_or("").to_owned();
        return attempt.error(Refused {
            message: format!(
                "redirect to host `{host}` refused: it is not in allow_hosts of http.get"
            ),
            not_allowed: true,
        });
    }
    if attempt.previous().len() >= MAX_REDIRECTS {
        return attempt.error(Refused {
            message: format!("more than {MAX_REDIRECTS} redirects"),
            not_allowed: false,
        });
    }
    attempt.follow()
}

impl ToolBackend for HttpGet {
    fn call(&self, args: &Value, timeout: Duration) -> Result<Value, ToolFailure> {
        let Some(raw) = args.get("url").and_then(Value::as_str) else {
            return Err(ToolFailure::Failed(
                "http.get needs a string argument `url`".to_owned(),
            ));
        };
        let url = Url::parse(raw)
            .map_err(|e| ToolFailure::Failed(format!("`{raw}` is not a valid URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ToolFailure::Unavailable(format!(
                "http.get only fetches http and https URLs, not `{}`",
                url.scheme()
            )));
        }
        if !self.allow.allows(&url) {
            let host = url.host_str().unwrap_or("");
            return Err(ToolFailure::Unavailable(format!(
                "host `{host}` is not in allow_hosts of http.get"
            )));
        }
        let headers = request_headers(args.get("headers"))?;

        let client = self.client()?;
        let mut response = client
            .get(url.clone())
            .headers(headers)
            .timeout(timeout)
            .send()
            .map_err(|e| send_failure(&e, &url, timeout))?;

        let status = response.status();
        let final_url = response.url().clone();
        if status.is_client_error() || status.is_server_error() {
            let mut message = format!(
                "HTTP {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            )
            .trim_end()
            .to_owned();
            let mut body = Vec::new();
            let _ = (&mut response).take(4096).read_to_end(&mut body);
            let snippet = one_line(&String::from_utf8_lossy(&body), ERROR_BODY_CHARS);
            if !snippet.is_empty() {
                message.push_str(": ");
                message.push_str(&snippet);
            }
            return Err(ToolFailure::Failed(message));
        }

        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let kept = kept_headers(response.headers());

        let mut bytes = Vec::new();
        (&mut response)
            .take(MAX_BODY as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| {
                if crate::model::http::is_timeout(&e) {
                    ToolFailure::Timeout(timeout)
                } else {
                    ToolFailure::Failed(format!(
                        "cannot read the body from {url}: {}",
                        tapedeck_trace::one_line(&e)
                    ))
                }
            })?;
        let truncated = bytes.len() > MAX_BODY;
        bytes.truncate(MAX_BODY);

        let json_body = !truncated && content_type.as_deref().is_some_and(is_json_type);
        let body = match json_body.then(|| serde_json::from_slice::<Value>(&bytes)) {
            Some(Ok(value)) => value,
            _ => Value::String(text(&bytes, truncated)),
        };
        let mut out = Map::new();
        out.insert("status".to_owned(), json!(status.as_u16()));
        out.insert("headers".to_owned(), Value::Object(kept));
        out.insert("body".to_owned(), body);
        if truncated {
            out.insert("truncated".to_owned(), Value::Bool(true));
        }
        if final_url != url {
            out.insert("url".to_owned(), Value::String(final_url.to_string()));
        }
        Ok(Value::Object(out))
    }
}

/// The `headers` argument: an object of string values. `Host` may not be set.
fn request_headers(arg: Option<&Value>) -> Result<HeaderMap, ToolFailure> {
    let mut headers = HeaderMap::new();
    let Some(arg) = arg.filter(|v| !v.is_null()) else {
        return Ok(headers);
    };
    let Some(object) = arg.as_object() else {
        return Err(ToolFailure::Failed(
            "`headers` must be an object of header names to string values".to_owned(),
        ));
    };
    for (name, value) in object {
        let Some(value) = value.as_str() else {
            return Err(ToolFailure::Failed(format!(
                "header `{name}` must be a string"
            )));
        };
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ToolFailure::Failed(format!("`{name}` is not a valid header name")))?;
        if header == reqwest::header::HOST {
            return Err(ToolFailure::Failed(
                "the `Host` header cannot be set: it follows the URL".to_owned(),
            ));
        }
        let value = HeaderValue::from_str(value)
            .map_err(|_| ToolFailure::Failed(format!("header `{name}` has an invalid value")))?;
        headers.append(header, value);
    }
    Ok(headers)
}

/// Why sending failed, as a tool failure.
fn send_failure(e: &reqwest::Error, url: &Url, timeout: Duration) -> ToolFailure {
    let mut source: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(refused) = err.downcast_ref::<Refused>() {
            return if refused.not_allowed {
                ToolFailure::Unavailable(refused.message.clone())
            } else {
                ToolFailure::Failed(refused.message.clone())
            };
        }
        source = err.source();
    }
    if e.is_timeout() {
        return ToolFailure::Timeout(timeout);
    }
    let target = match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => url.to_string(),
    };
    // reqwest's own message repeats the URL; its causes say what went wrong.
    let why = e
        .source()
        .map_or_else(|| e.to_string(), tapedeck_trace::one_line);
    ToolFailure::Failed(format!("cannot reach {target}: {why}"))
}

/// The kept response headers, as strings.
fn kept_headers(headers: &HeaderMap) -> Map<String, Value> {
    KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            headers.get(*name).map(|v| {
                (
                    (*name).to_owned(),
                    Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
                )
            })
        })
        .collect()
}

/// `application/json`, `text/json` and `…+json`.
fn is_json_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence == "text/json" || essence.ends_with("+json")
}

/// The body as text; a cut body loses a character split by the cut rather than gaining `�`.
fn text(bytes: &[u8], truncated: bool) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(e) if truncated && e.error_len().is_none() => {
            String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Whitespace collapsed, at most `max` characters (with `…` when cut).
fn one_line(text: &str, max: usize) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match collapsed.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &collapsed[..at]),
        None => collapsed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("test URL")
    }

    #[test]
    fn hosts_match_exactly_and_ignore_case() {
        let allow = AllowList::parse(&[
            "Status.Example.com".to_owned(),
            "127.0.0.1:8080".to_owned(),
            "[::1]".to_owned(),
        ])
        .expect("valid entries");
        assert!(allow.allows(&url("https://status.example.com/x")));
        assert!(allow.allows(&url("https://STATUS.example.com:8443/x")));
        assert!(allow.allows(&url("https://status.example.com./x")));
        assert!(!allow.allows(&url("https://evil.status.example.com/x")));
        assert!(!allow.allows(&url("https://status.example.com.evil.net/x")));
        assert!(!allow.allows(&url("https://example.com/x")));
        assert!(allow.allows(&url("http://127.0.0.1:8080/")));
        assert!(!allow.allows(&url("http://127.0.0.1:8081/")));
        assert!(allow.allows(&url("http://[::1]:9/")));
        assert!(!allow.allows(&url("http://user@evil.com/")));
    }

    #[test]
    fn bad_entries_are_refused() {
        for entry in ["", "https://x.com", "x.com/path", "a@b"] {
            assert!(AllowList::parse(&[entry.to_owned()]).is_err(), "{entry}");
        }
    }

    #[test]
    fn explicit_ports() {
        assert!(has_explicit_port("a:80"));
        assert!(has_explicit_port("[::1]:80"));
        assert!(!has_explicit_port("[::1]"));
        assert!(!has_explicit_port("a"));
    }

    #[test]
    fn json_types() {
        assert!(is_json_type("application/json; charset=utf-8"));
        assert!(is_json_type("application/problem+json"));
        assert!(!is_json_type("text/html"));
    }

    #[test]
    fn cut_text_drops_a_split_character() {
        let bytes = "aé".as_bytes();
        assert_eq!(text(&bytes[..2], true), "a");
    }
}
