//! Proxy replay: the rate at which a replay proxy (`tapedeck replay RUN -- CMD`'s, serving a
//! recording read from the store) answers chat completions, against the rate at which
//! `tapedeck record`'s proxy answers the same requests recording them from a fake
//! OpenAI-compatible upstream on 127.0.0.1 that answers at once. Every request has its own
//! body, so replay matches each one by its body; every fourth is streamed. The replayed answers
//! are checked against the recorded ones.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use tapedeck_proxy::http::{self, Pricing, Proxy};
use tapedeck_proxy::redact::Redactor;
use tapedeck_replay::MissPolicy;
use tapedeck_replay::session::{CommandReplay, ModelSource, replay_proxy};
use tapedeck_store::Store;
use tapedeck_trace::{Run, Source};

use super::proxy::{Conn, chat_body, connect, start_upstream_pausing};
use crate::Exit;
use crate::render;

/// Options of `bench proxy-replay`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Chat completions each way (recorded, then replayed); every fourth is streamed
    #[arg(long, default_value_t = 4_000)]
    requests: usize,
    /// Concurrent keep-alive clients
    #[arg(long, default_value_t = 4)]
    clients: usize,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            requests: 4_000,
            clients: 4,
        }
    }
}

/// The goal: replay answers at least this fraction of the live rate.
const GOAL: f64 = 0.90;

/// One pass of every request through a proxy.
struct Pass {
    /// Each half's time (the first half of every client's requests, then the second): a rate
    /// that falls from one half to the next grows with the recording's length.
    halves: [Duration; 2],
    /// Every response body, by client, in the order sent.
    bodies: Vec<Vec<Vec<u8>>>,
}

impl Pass {
    fn rate(&self, requests: usize) -> f64 {
        requests as f64 / (self.halves[0] + self.halves[1]).as_secs_f64()
    }

    fn half_rates(&self, requests: usize) -> [f64; 2] {
        let first = requests / 2;
        [
            first as f64 / self.halves[0].as_secs_f64(),
            (requests - first) as f64 / self.halves[1].as_secs_f64(),
        ]
    }
}

pub fn run(args: Args) -> anyhow::Result<Exit> {
    anyhow::ensure!(args.clients > 0, "--clients must be at least 1");
    anyhow::ensure!(
        args.requests >= 2 * args.clients,
        "--requests must be at least twice --clients"
    );
    let dir = super::scratch_dir()?;
    let upstream = start_upstream_pausing(Duration::ZERO)?;
    let store = Store::open(dir.join("proxy-replay.db"))?;
    let writer = store.writer()?;
    // As `tapedeck record` and `tapedeck replay -- CMD` run their proxies.
    let runtime = http::runtime().context("cannot start the async runtime")?;
    let local = SocketAddr::from(([127, 0, 0, 1], 0));

    anstream::println!(
        "proxy replay: {} chat completions (every fourth streamed) from {} keep-alive clients, recorded through the proxy from a fake upstream on 127.0.0.1 answering at once, then replayed from the store",
        render::thousands(args.requests as u64),
        args.clients
    );
    let proxy =
        super::proxy::recording_proxy(upstream, writer.start_run(Run::new(Source::Proxy))?)?;
    let (recorded, live) = serve_pass(&runtime, proxy, local, &args)?;

    // As `tapedeck replay RUN -- CMD` builds its proxy: the recording read back from the store.
    let loading = Instant::now();
    let options = CommandReplay {
        model: ModelSource::Recorded,
        on_miss: MissPolicy::Error,
        live_allow: Default::default(),
        match_position: false,
        ignore: Vec::new(),
        redactor: Redactor::new(&[])?,
        pricing: Pricing::default(),
    };
    let proxy = replay_proxy(&store, &writer, &recorded, options, "bench".to_owned())?;
    let load = loading.elapsed();
    let (replayed, replay) = serve_pass(&runtime, proxy, local, &args)?;
    drop(runtime);
    drop(writer);

    let mut differ = 0;
    for (a, b) in live.bodies.iter().zip(&replay.bodies) {
        differ += a.iter().zip(b).filter(|(a, b)| a != b).count();
    }
    anyhow::ensure!(
        differ == 0,
        "{differ} replayed answers differ from the recorded ones"
    );
    anyhow::ensure!(
        replayed.totals.steps == recorded.totals.steps,
        "the replay served {} model calls, the recording holds {}",
        replayed.totals.steps,
        recorded.totals.steps
    );

    let (live_rate, replay_rate) = (live.rate(args.requests), replay.rate(args.requests));
    let [l1, l2] = live.half_rates(args.requests);
    let [r1, r2] = replay.half_rates(args.requests);
    anstream::println!(
        "  live (recording)   {:>8.0} requests/s   (first half {l1:.0}, second half {l2:.0})",
        live_rate
    );
    anstream::println!(
        "  replay             {:>8.0} requests/s   (first half {r1:.0}, second half {r2:.0}); reading the recording {:.0} ms",
        replay_rate,
        load.as_secs_f64() * 1000.0
    );
    anstream::println!(
        "  replay / live {:.2}   (goal ≥ {GOAL:.2}); every replayed answer is the recorded one",
        replay_rate / live_rate
    );
    Ok(Exit::Ok)
}

/// Serves `proxy`, sends every request through it from `args.clients` connections, stops it and
/// ends its run; returns the run and the pass.
fn serve_pass(
    runtime: &tokio::runtime::Runtime,
    proxy: Arc<Proxy>,
    addr: SocketAddr,
    args: &Args,
) -> anyhow::Result<(Run, Pass)> {
    let running = runtime.block_on(http::start(proxy, addr))?;
    let mut conns = connect(running.addr, args.clients)?;
    let mut bodies = vec![Vec::new(); args.clients];
    let first = args.requests / 2;
    let mut halves = [Duration::ZERO; 2];
    for (half, range) in [(0, 0..first), (1, first..args.requests)] {
        let start = Instant::now();
        send(&mut conns, range, &mut bodies)?;
        halves[half] = start.elapsed();
    }
    drop(conns);
    let proxy = runtime.block_on(running.stop());
    let run = proxy.finish(Some(0))?;
    Ok((run, Pass { halves, bodies }))
}

/// Sends requests `range` (numbered over all clients: request `n` goes from client
/// `n % clients`), each client on its own thread; appends each answer's body to its client's.
fn send(
    conns: &mut [Conn],
    range: std::ops::Range<usize>,
    bodies: &mut [Vec<Vec<u8>>],
) -> anyhow::Result<()> {
    let clients = conns.len();
    std::thread::scope(|s| {
        let handles: Vec<_> = conns
            .iter_mut()
            .zip(bodies.iter_mut())
            .enumerate()
            .map(|(c, (conn, bodies))| {
                let range = range.clone();
                s.spawn(move || -> anyhow::Result<()> {
                    for n in range.filter(|n| n % clients == c) {
                        let body = chat_body(&n.to_string(), n % 4 == 3);
                        let reply = conn.post("/v1/chat/completions", body.as_bytes())?;
                        anyhow::ensure!(
                            reply.status == 200,
                            "request {n}: HTTP {}: {}",
                            reply.status,
                            String::from_utf8_lossy(&reply.body)
                        );
                        bodies.push(reply.body);
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
        }
        Ok(())
    })
}
