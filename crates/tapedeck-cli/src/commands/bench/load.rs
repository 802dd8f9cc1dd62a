//! The load generator of the crash and concurrency tests: records events into the store and
//! prints `committed RUN SEQ` lines as the writer commits, so a test that kills this process
//! knows which events must have survived.

use std::io::Write as _;

use tapedeck_trace::{EventData, LlmRetry, Run, Source, StopReason};

use crate::Exit;
use crate::settings::Settings;

/// Options of `bench record-load`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Events per run
    #[arg(long, default_value_t = 5_000)]
    events: u64,
    /// Threads, each recording its own run
    #[arg(long, default_value_t = 1)]
    threads: u32,
    /// Label every run with `load=<this>`
    #[arg(long, default_value = "1")]
    tag: String,
}

pub fn run(settings: &Settings, args: Args) -> anyhow::Result<Exit> {
    let store = settings.open_store()?;
    let writer = store.writer()?;
    let stdout = std::sync::Mutex::new(std::io::stdout());
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let mut handles = Vec::new();
        for thread in 0..args.threads {
            let writer = writer.clone();
            let stdout = &stdout;
            let args = &args;
            handles.push(scope.spawn(move || -> anyhow::Result<()> {
                let mut run = Run::new(Source::Runtime);
                run.labels.insert("load".to_owned(), args.tag.clone());
                run.labels.insert("thread".to_owned(), thread.to_string());
                let mut recorder = writer.start_run(run)?;
                let id = recorder.id();
                let report = |seq: u64| {
                    let mut out = stdout
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let _ = writeln!(out, "committed {id} {seq}");
                    let _ = out.flush();
                };
                let mut last_reported = 0;
                for i in 0..args.events {
                    recorder.append(EventData::LlmRetry(LlmRetry {
                        step: i / 10 + 1,
                        attempt: (i % 10) as u32 + 1,
                        status: Some(503),
                        error: Some(format!("upstream unavailable ({i})")),
                        wait_ms: 10,
                    }))?;
                    let committed = recorder.committed_seq();
                    if committed > last_reported {
                        report(committed);
                        last_reported = committed;
                    }
                }
                let run = recorder.finish(StopReason::Ok, None)?;
                let mut out = stdout
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let _ = writeln!(out, "finished {} {}", run.id, args.events + 1);
                Ok(())
            }));
        }
        for handle in handles {
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
        }
        Ok(())
    })?;
    Ok(Exit::Ok)
}
