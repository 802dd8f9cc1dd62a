//! Proxy: the latency `tapedeck record`'s HTTP proxy adds, recording into a store, against
//! clients talking straight to the same fake OpenAI-compatible upstream on 127.0.0.1 (p50 and
//! p99 over 10k requests from 8 keep-alive clients, the two in alternating rounds so they share
//! the machine's noise); the time to first byte it adds to a stream; and this process's RSS
//! after 1k and after 10k proxied requests (the proxy, its recorder and the store's page cache
//! all live in it).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tapedeck_proxy::http::{self, Backend, Pricing, Proxy, Upstreams};
use tapedeck_proxy::redact::Redactor;
use tapedeck_store::Store;
use tapedeck_trace::{Run, Source};

use crate::Exit;
use crate::render;

/// Options of `bench proxy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Requests each way (direct and proxied)
    #[arg(long, default_value_t = 10_000)]
    requests: usize,
    /// Concurrent clients
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Streamed requests each way, for the time to first byte
    #[arg(long, default_value_t = 500)]
    streams: usize,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            requests: 10_000,
            clients: 8,
            streams: 500,
        }
    }
}

/// Requests each way per round (the first RSS sample is taken after one round).
const ROUND: usize = 1_000;

pub fn run(args: Args) -> anyhow::Result<Exit> {
    anyhow::ensure!(args.clients > 0, "--clients must be at least 1");
    let dir = super::scratch_dir()?;
    let upstream = start_upstream()?;
    let store = Store::open(dir.join("proxy.db"))?;
    let writer = store.writer()?;
    let recorder = writer.start_run(Run::new(Source::Proxy))?;
    let proxy = recording_proxy(upstream, recorder)?;
    // As `tapedeck record` runs it.
    let runtime = http::runtime().context("cannot start the async runtime")?;
    let running = runtime.block_on(http::start(proxy, SocketAddr::from(([127, 0, 0, 1], 0))))?;
    let through = running.addr;

    anstream::println!(
        "proxy: {} chat completions from {} keep-alive clients, straight to a fake upstream on 127.0.0.1 and through the recording proxy, in alternating rounds",
        render::thousands(args.requests as u64),
        args.clients
    );
    let mut direct_conns = connect(upstream, args.clients)?;
    let mut proxy_conns = connect(through, args.clients)?;
    // Warm up both paths (connections, the proxy's pool to the upstream, caches).
    phase(&mut direct_conns, 10 * args.clients, false)?;
    phase(&mut proxy_conns, 10 * args.clients, false)?;

    let mut direct = Vec::with_capacity(args.requests);
    let mut proxied = Vec::with_capacity(args.requests);
    let mut rss_first = None;
    let mut done = 0;
    let mut round = 0;
    while done < args.requests {
        let n = ROUND.min(args.requests - done);
        // Alternate which goes first, so neither always follows the other.
        if round % 2 == 0 {
            direct.extend(phase(&mut direct_conns, n, false)?.into_iter().map(|t| t.1));
            proxied.extend(phase(&mut proxy_conns, n, false)?.into_iter().map(|t| t.1));
        } else {
            proxied.extend(phase(&mut proxy_conns, n, false)?.into_iter().map(|t| t.1));
            direct.extend(phase(&mut direct_conns, n, false)?.into_iter().map(|t| t.1));
        }
        done += n;
        round += 1;
        if rss_first.is_none() {
            rss_first = Some((done, super::status_bytes("VmRSS").unwrap_or(0)));
        }
    }
    let rss_last = super::status_bytes("VmRSS").unwrap_or(0);

    // Streams: time to the first chunk of the body.
    let mut direct_ttfb = Vec::with_capacity(args.streams);
    let mut proxied_ttfb = Vec::with_capacity(args.streams);
    let mut streamed = 0;
    while streamed < args.streams {
        let n = (args.streams / 5)
            .max(args.clients)
            .min(args.streams - streamed);
        direct_ttfb.extend(phase(&mut direct_conns, n, true)?.into_iter().map(|t| t.0));
        proxied_ttfb.extend(phase(&mut proxy_conns, n, true)?.into_iter().map(|t| t.0));
        streamed += n;
    }
    drop(direct_conns);
    drop(proxy_conns);

    let proxy = runtime.block_on(running.stop());
    let run = proxy.finish(Some(0))?;
    drop(runtime);
    let events = store.last_seq(&run.id)?;
    let calls = 10 * args.clients + args.requests + streamed;
    anyhow::ensure!(
        events >= 3 * calls as u64,
        "the proxy recorded {events} events for {calls} calls"
    );

    let (d50, d99) = (percentile(&mut direct, 50.0), percentile(&mut direct, 99.0));
    let (p50, p99) = (
        percentile(&mut proxied, 50.0),
        percentile(&mut proxied, 99.0),
    );
    anstream::println!("  direct    p50 {:.3} ms   p99 {:.3} ms", ms(d50), ms(d99));
    anstream::println!(
        "  proxied   p50 {:.3} ms   p99 {:.3} ms   (recording: {} events)",
        ms(p50),
        ms(p99),
        render::thousands(events)
    );
    anstream::println!(
        "  added     p50 {:.3} ms   (goal < 1 ms)   p99 {:.3} ms   (goal < 5 ms)",
        ms(p50.saturating_sub(d50)),
        ms(p99.saturating_sub(d99))
    );
    if streamed > 0 {
        let (s50, t50) = (
            percentile(&mut direct_ttfb, 50.0),
            percentile(&mut proxied_ttfb, 50.0),
        );
        let (s99, t99) = (
            percentile(&mut direct_ttfb, 99.0),
            percentile(&mut proxied_ttfb, 99.0),
        );
        anstream::println!(
            "  streaming, {} requests each way: time to first byte p50 {:.3} ms direct, {:.3} ms proxied: added {:.3} ms   (goal < 1 ms); p99 {:.3} / {:.3} ms",
            render::thousands(streamed as u64),
            ms(s50),
            ms(t50),
            ms(t50.saturating_sub(s50)),
            ms(s99),
            ms(t99)
        );
    }
    if let Some((first_n, first)) = rss_first {
        anstream::println!(
            "  RSS after {} proxied requests {:.1} MB, after {} {:.1} MB: {:+.1} MB   (goal flat: a few MB)",
            render::thousands(first_n as u64),
            first as f64 / 1e6,
            render::thousands(args.requests as u64),
            rss_last as f64 / 1e6,
            (rss_last as f64 - first as f64) / 1e6
        );
    }
    drop(writer);
    drop(store);
    Ok(Exit::Ok)
}

/// `tapedeck record`'s proxy, recording into `recorder` what it forwards to the fake upstream at
/// `upstream`.
pub(super) fn recording_proxy(
    upstream: SocketAddr,
    recorder: tapedeck_store::Recorder,
) -> anyhow::Result<std::sync::Arc<Proxy>> {
    Ok(Proxy::new(
        Backend::Live {
            client: http::client().context("cannot set up the HTTP client")?,
            upstreams: Upstreams {
                openai: format!("http://{upstream}/v1"),
                anthropic: format!("http://{upstream}"),
            },
        },
        Redactor::new(&[])?,
        Pricing::default(),
        recorder,
    ))
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// The `p`th percentile (nearest rank) of `values`, in µs.
fn percentile(values: &mut [u64], p: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let i = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    values[i.min(values.len() - 1)]
}

/// One keep-alive HTTP/1.1 connection (TCP_NODELAY).
pub(super) struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    host: SocketAddr,
}

/// `n` keep-alive connections to `addr`.
pub(super) fn connect(addr: SocketAddr, n: usize) -> anyhow::Result<Vec<Conn>> {
    (0..n)
        .map(|_| {
            let stream = TcpStream::connect(addr)?;
            stream.set_nodelay(true)?;
            Ok(Conn {
                reader: BufReader::new(stream.try_clone()?),
                writer: stream,
                host: addr,
            })
        })
        .collect()
}

/// Sends `n` requests spread over the connections, each on its own thread; returns each
/// request's (time to the first body byte, time to the whole response) in µs.
fn phase(conns: &mut [Conn], n: usize, stream: bool) -> anyhow::Result<Vec<(u64, u64)>> {
    let clients = conns.len();
    std::thread::scope(|s| {
        let handles: Vec<_> = conns
            .iter_mut()
            .enumerate()
            .map(|(c, conn)| {
                let count = n / clients + usize::from(c < n % clients);
                s.spawn(move || -> anyhow::Result<Vec<(u64, u64)>> {
                    (0..count)
                        .map(|i| conn.request(c * 1_000_000 + i, stream))
                        .collect()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(n);
        for h in handles {
            out.extend(
                h.join()
                    .map_err(|_| anyhow::anyhow!("a client thread panicked"))??,
            );
        }
        Ok(out)
    })
}

/// A response as [`Conn::post`] read it.
pub(super) struct Reply {
    pub status: u16,
    /// From sending the request to the first byte of the body (of its first chunk, when
    /// chunked).
    pub first: Duration,
    /// From sending the request to the end of the body.
    pub total: Duration,
    /// The body, its chunks joined.
    pub body: Vec<u8>,
}

impl Conn {
    /// A small chat completion (`"stream": stream`), distinct for every `i`, which must be
    /// answered 200; returns (time to the first body byte, time to the whole response) in µs.
    fn request(&mut self, i: usize, stream: bool) -> anyhow::Result<(u64, u64)> {
        let body = chat_body(&i.to_string(), stream);
        let reply = self.post("/v1/chat/completions", body.as_bytes())?;
        anyhow::ensure!(
            reply.status == 200,
            "HTTP {} from {}",
            reply.status,
            self.host
        );
        Ok((
            reply.first.as_micros() as u64,
            reply.total.as_micros() as u64,
        ))
    }

    /// POSTs a JSON `body` to `path` and reads the whole response.
    pub(super) fn post(&mut self, path: &str, body: &[u8]) -> anyhow::Result<Reply> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\nauthorization: Bearer sk-bench-0000\r\ncontent-length: {}\r\n\r\n",
            self.host,
            body.len()
        );
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        let start = Instant::now();
        self.writer.write_all(&bytes)?;
        let (status, headers) = read_head(&mut self.reader)?;
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let mut body = Vec::new();
        let first = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            let mut seen = None;
            loop {
                let mut line = String::new();
                self.reader.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .with_context(|| format!("bad chunk size {line:?}"))?;
                let mut chunk = vec![0; size + 2];
                self.reader.read_exact(&mut chunk)?;
                if size == 0 {
                    break;
                }
                seen.get_or_insert_with(|| start.elapsed());
                body.extend_from_slice(&chunk[..size]);
            }
            seen.unwrap_or_else(|| start.elapsed())
        } else {
            let length: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .context("a response with neither a length nor chunks")?;
            body.resize(length, 0);
            self.reader.read_exact(&mut body)?;
            start.elapsed()
        };
        Ok(Reply {
            status,
            first,
            total: start.elapsed(),
            body,
        })
    }
}

/// The body of a one-message chat completion asking to "say ok ({tag})".
pub(super) fn chat_body(tag: &str, stream: bool) -> String {
    format!(
        r#"{{"model":"gpt-test","messages":[{{"role":"user","content":"Say ok ({tag})."}}],"stream":{stream}}}"#
    )
}

/// Reads a status line and headers (names in lower case).
fn read_head(reader: &mut BufReader<TcpStream>) -> anyhow::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {line:?}"))?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            anyhow::bail!("the connection closed mid-head");
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    Ok((status, headers))
}

/// A fake OpenAI-compatible upstream on 127.0.0.1: a thread per keep-alive connection,
/// answering a small chat completion at once, or (`"stream":true`) a stream whose first chunk
/// goes at once and the rest a millisecond later.
pub(super) fn start_upstream() -> anyhow::Result<SocketAddr> {
    start_upstream_pausing(Duration::from_millis(1))
}

/// [`start_upstream`] with `pause` between a stream's first chunk and the rest. Every answer
/// has its own id (`chatcmpl-N`), so no two are the same.
pub(super) fn start_upstream_pausing(pause: Duration) -> anyhow::Result<SocketAddr> {
    let count = std::sync::atomic::AtomicU64::new(0);
    start_fake(move |body| {
        let n = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if body.windows(13).any(|w| w == b"\"stream\":true") {
            let chunk = |content: &str, finish: &str| {
                format!(
                    r#"{{"id":"chatcmpl-{n}","object":"chat.completion.chunk","created":1,"model":"gpt-test","choices":[{{"index":0,"delta":{{"content":"{content}"}},"finish_reason":{finish}}}]}}"#
                )
            };
            Answer::Stream {
                first: chunk("o", "null"),
                pause,
                rest: vec![
                    chunk("k", "null"),
                    chunk("", "\"stop\""),
                    "[DONE]".to_owned(),
                ],
            }
        } else {
            Answer::Json(format!(
                r#"{{"id":"chatcmpl-{n}","object":"chat.completion","created":1,"model":"gpt-test","choices":[{{"index":0,"finish_reason":"stop","message":{{"role":"assistant","content":"ok"}}}}],"usage":{{"prompt_tokens":12,"completion_tokens":1,"total_tokens":13}}}}"#
            ))
        }
    })
}

/// What a fake upstream answers a request with.
pub(super) enum Answer {
    /// A JSON body, `content-length` framed.
    Json(String),
    /// A chunked event stream: `first` at once, then after `pause` the `rest`, each a `data:`
    /// event.
    Stream {
        first: String,
        pause: Duration,
        rest: Vec<String>,
    },
}

/// A fake upstream on 127.0.0.1, a thread per keep-alive connection, answering every request
/// (whatever its path) with what `answer` makes of its body.
pub(super) fn start_fake(
    answer: impl Fn(&[u8]) -> Answer + Send + Sync + 'static,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let answer = std::sync::Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let answer = std::sync::Arc::clone(&answer);
            std::thread::spawn(move || {
                // An error means the client went away.
                let _ = serve(stream, &*answer);
            });
        }
    });
    Ok(addr)
}

fn sse_chunk(data: &str) -> String {
    let event = format!("data: {data}\n\n");
    format!("{:x}\r\n{event}\r\n", event.len())
}

fn serve(stream: TcpStream, answer: &dyn Fn(&[u8]) -> Answer) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let Some(headers) = read_head_request(&mut reader)? else {
            return Ok(());
        };
        let length: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        match answer(&body) {
            Answer::Stream { first, pause, rest } => {
                let mut head = String::from(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
                );
                head.push_str(&sse_chunk(&first));
                out.write_all(head.as_bytes())?;
                if !pause.is_zero() {
                    std::thread::sleep(pause);
                }
                let mut tail: String = rest.iter().map(|data| sse_chunk(data)).collect();
                tail.push_str("0\r\n\r\n");
                out.write_all(tail.as_bytes())?;
            }
            Answer::Json(json) => {
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{json}",
                    json.len()
                );
                out.write_all(reply.as_bytes())?;
            }
        }
    }
}

/// Reads a request line and headers (names in lower case); `None` when the client closed the
/// connection.
fn read_head_request(
    reader: &mut BufReader<TcpStream>,
) -> anyhow::Result<Option<Vec<(String, String)>>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            return Ok(None);
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    Ok(Some(headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&mut v, 50.0), 51);
        assert_eq!(percentile(&mut v, 99.0), 99);
        assert_eq!(percentile(&mut [], 50.0), 0);
    }
}
