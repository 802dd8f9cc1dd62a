//! SIGINT and SIGTERM as a request to stop, the one place tapedeck listens for them
//! ([`Signals`]). For a runtime run ([`Interrupts`]) the first cancels the run under way, which
//! ends `cancelled` with its events flushed, and the command exits 130 / 143; a second exits at
//! once (the run then shows `incomplete`). A client run behind the proxy gets them as a stream
//! ([`forward`]).

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use tapedeck_agent::CancelToken;
use tapedeck_proxy::http::Interrupt;

/// How the process ends at once on a second signal: given by the binary
/// ([`on_second_signal`]), which alone decides how the process exits.
static EXIT_NOW: OnceLock<fn(i32) -> !> = OnceLock::new();

/// Sets how a second SIGINT / SIGTERM ends the process (with 128 + its number).
pub fn on_second_signal(exit_now: fn(i32) -> !) {
    let _ = EXIT_NOW.set(exit_now);
}

/// Listens for SIGINT and SIGTERM on a thread of its own, from [`Interrupts::listen`] on.
pub struct Interrupts {
    received: Arc<AtomicI32>,
    token: CancelToken,
}

impl Interrupts {
    /// Starts listening; the signals no longer end the process at once.
    pub fn listen() -> anyhow::Result<Self> {
        let received = Arc::new(AtomicI32::new(0));
        let token = CancelToken::new();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the signal listener")?;
        // Registered here, before `listen` returns, so no signal falls between the two.
        let mut signals = runtime
            .block_on(async { Signals::register() })
            .context("cannot listen for SIGINT and SIGTERM")?;
        let (seen, cancel) = (Arc::clone(&received), token.clone());
        std::thread::Builder::new()
            .name("tapedeck-signals".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    loop {
                        let signal = signals.next().await.number();
                        if seen.swap(signal, Ordering::SeqCst) != 0
                            && let Some(exit_now) = EXIT_NOW.get()
                        {
                            exit_now(128 + signal);
                        }
                        cancel.cancel();
                        eprintln!(
                            "tapedeck: stopping after the current call (again to stop at once)"
                        );
                    }
                });
            })
            .context("cannot start the signal listener")?;
        Ok(Self { received, token })
    }

    /// The token a run stops on.
    pub fn token(&self) -> CancelToken {
        self.token.clone()
    }

    /// The signal received, if any.
    pub fn received(&self) -> Option<i32> {
        Some(self.received.load(Ordering::SeqCst)).filter(|s| *s != 0)
    }
}

/// Sends every SIGINT / SIGTERM this process receives, as its number, to the receiver it
/// returns; to be called inside the async runtime that will deliver them.
pub fn forward() -> std::io::Result<tokio::sync::mpsc::UnboundedReceiver<Interrupt>> {
    let mut signals = Signals::register().map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen for SIGINT and SIGTERM: {e}"),
        )
    })?;
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            if sender.send(signals.next().await).is_err() {
                break;
            }
        }
    });
    Ok(receiver)
}

/// SIGINT and SIGTERM as they arrive (Ctrl-C only, off Unix).
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// The next signal.
    async fn next(&mut self) -> Interrupt {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => Interrupt::Int,
                _ = self.terminate.recv() => Interrupt::Term,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Interrupt::Int
        }
    }
}
