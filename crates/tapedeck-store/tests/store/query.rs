//! `Store::runs` with every filter field, and `Store::monitor` figures.

use tapedeck_store::{RunFilter, Store};
use tapedeck_testkit::on_both_stores;
use tapedeck_trace::{Run, RunId, RunStatus, Source, StopReason};

use crate::support::*;

struct Fixture {
    _tmp: TempStore,
    store: Store,
    r1: RunId,
    r2: RunId,
    r3: RunId,
    r4: RunId,
}

fn finish(store: &Store, run: Run, reason: StopReason) -> RunId {
    let writer = store.writer().unwrap();
    let rec = writer.start_run(run).unwrap();
    rec.finish(reason, None).unwrap().id
}

/// Four runs an hour apart, from r1 (oldest) to r4.
fn fixture(backend: Backend) -> Fixture {
    let tmp = TempStore::on(backend);
    let store = tmp.open();
    let mut run = run_with(&fixed_id(1), 0);
    run.suite = Some("s1".into());
    run.task = Some("t1".into());
    run.agent = agent("support-bot", "abc123def");
    run.labels.insert("model".into(), "gpt-4.1".into());
    let r1 = finish(&store, run, StopReason::Ok);
    let mut run = run_with(&fixed_id(2), 3600);
    run.suite = Some("s1".into());
    run.task = Some("t2".into());
    run.agent = agent("support-bot", "abc123def");
    run.labels.insert("model".into(), "claude".into());
    let r2 = finish(&store, run, StopReason::ToolDenied("http.get".into()));
    let mut run = run_with(&fixed_id(3), 7200);
    run.suite = Some("s2".into());
    run.task = Some("t1".into());
    run.agent = agent("research-bot", "ffee0011");
    run.labels.insert("model".into(), "gpt-4.1".into());
    let r3 = finish(&store, run, StopReason::ToolDenied("browser.open".into()));
    let mut run = run_with(&fixed_id(4), 10800);
    run.source = Source::Proxy;
    run.labels.insert("pr".into(), "123".into());
    let r4 = finish(&store, run, StopReason::MaxToolCalls);
    Fixture {
        _tmp: tmp,
        store,
        r1,
        r2,
        r3,
        r4,
    }
}

fn ids(store: &Store, filter: RunFilter) -> Vec<RunId> {
    store
        .runs(&filter)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

on_both_stores! {
    fn every_filter_field_selects_its_runs(backend) {
        let f = fixture(backend);
        let s = &f.store;
        let (r1, r2, r3, r4) = (f.r1, f.r2, f.r3, f.r4);
        let filter = RunFilter::default;
        assert_eq!(ids(s, filter()), vec![r4, r3, r2, r1], "newest first");
        assert_eq!(
            ids(
                s,
                RunFilter {
                    suite: Some("s1".into()),
                    ..filter()
                }
            ),
            vec![r2, r1]
        );
        assert_eq!(
            ids(
                s,
                RunFilter {
                    suite: Some("s3".into()),
                    ..filter()
                }
            ),
            vec![]
        );
        assert_eq!(
            ids(
                s,
                RunFilter {
                    task: Some("t1".into()),
                    ..filter()
                }
            ),
            vec![r3, r1]
        );
        // Agent: by name, or by a prefix of the fingerprint.
        assert_eq!(
            ids(
                s,
                RunFilter {
                    agent: Some("support-bot".into()),
                    ..filter()
                }
            ),
            vec![r2, r1]
        );
        assert_eq!(
            ids(
                s,
                RunFilter {
                    agent: Some("ffe".into()),
                    ..filter()
                }
            ),
            vec![r3]
        );
        assert_eq!(
            ids(
                s,
                RunFilter {
                    agent: Some("abc123def".into()),
                    ..filter()
                }
            ),
            vec![r2, r1]
        );
        assert_eq!(
            ids(
                s,
                RunFilter {
                    agent: Some("support".into()),
                    ..filter()
                }
            ),
            vec![]
        );
        // Stop reason: exact, or its kind.
        let reason = |r: &str| RunFilter {
            stop_reason: Some(r.into()),
            ..filter()
        };
        assert_eq!(ids(s, reason("tool_denied:http.get")), vec![r2]);
        assert_eq!(ids(s, reason("tool_denied")), vec![r3, r2]);
        assert_eq!(ids(s, reason("max_tool_calls")), vec![r4]);
        assert_eq!(ids(s, reason("ok")), vec![r1]);
        assert_eq!(ids(s, reason("max")), vec![]);
        assert_eq!(ids(s, reason("tool_denied:http")), vec![]);
        // Status and source.
        assert_eq!(
            ids(
                s,
                RunFilter {
                    status: Some(RunStatus::Stopped),
                    ..filter()
                }
            ),
            vec![r4, r3, r2]
        );
        assert_eq!(
            ids(
                s,
                RunFilter {
                    status: Some(RunStatus::Ok),
                    ..filter()
                }
            ),
            vec![r1]
        );
        assert_eq!(
            ids(
                s,
                RunFilter {
                    source: Some("proxy".into()),
                    ..filter()
                }
            ),
            vec![r4]
        );
        // Labels: each must match.
        let label = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            ids(
                s,
                RunFilter {
                    labels: vec![label("model", "gpt-4.1")],
                    ..filter()
                }
            ),
            vec![r3, r1]
        );
        assert_eq!(
            ids(
                s,
                RunFilter {
                    labels: vec![label("pr", "123")],
                    ..filter()
                }
            ),
            vec![r4]
        );
        assert_eq!(
            ids(
                s,
                RunFilter {
                    labels: vec![label("model", "gpt-4.1"), label("pr", "123")],
                    ..filter()
                }
            ),
            vec![]
        );
        // Time: since is inclusive, before exclusive.
        assert_eq!(
            ids(
                s,
                RunFilter {
                    since: Some(at(3600)),
                    ..filter()
                }
            ),
            vec![r4, r3, r2]
        );
        assert_eq!(
            ids(
                s,
                RunFilter {
                    before: Some(at(3600)),
                    ..filter()
                }
            ),
            vec![r1]
        );
        assert_eq!(
            ids(
                s,
                RunFilter {
                    since: Some(at(3600)),
                    before: Some(at(10800)),
                    ..filter()
                }
            ),
            vec![r3, r2]
        );
        // Limit keeps the newest.
        assert_eq!(
            ids(
                s,
                RunFilter {
                    limit: Some(2),
                    ..filter()
                }
            ),
            vec![r4, r3]
        );
        assert_eq!(
            ids(
                s,
                RunFilter {
                    limit: Some(0),
                    ..filter()
                }
            ),
            vec![]
        );
        // Fields combine.
        assert_eq!(
            ids(
                s,
                RunFilter {
                    task: Some("t1".into()),
                    agent: Some("support-bot".into()),
                    ..filter()
                }
            ),
            vec![r1]
        );
    }
}

on_both_stores! {
    fn filter_values_are_data_not_sql(backend) {
        let f = fixture(backend);
        for text in ["' OR 1=1 --", "%", "_", "tool%"] {
            let by_suite = RunFilter {
                suite: Some(text.into()),
                ..RunFilter::default()
            };
            assert!(f.store.runs(&by_suite).unwrap().is_empty(), "{text}");
            let by_reason = RunFilter {
                stop_reason: Some(text.into()),
                ..RunFilter::default()
            };
            assert!(f.store.runs(&by_reason).unwrap().is_empty(), "{text}");
            let by_agent = RunFilter {
                agent: Some(text.into()),
                ..RunFilter::default()
            };
            assert!(f.store.runs(&by_agent).unwrap().is_empty(), "{text}");
        }
    }
}

/// Records a run of `agent` with `calls` browser.open calls; `cost` is the model cost
/// (None: unknown), `reason` None leaves it running.
fn monitored(
    store: &Store,
    n: u32,
    agent_name: Option<&str>,
    calls: usize,
    cost: Option<f64>,
    reason: Option<StopReason>,
) -> RunId {
    let writer = store.writer().unwrap();
    let mut run = run_with(&fixed_id(100 + n), i64::from(n));
    run.agent = agent_name.and_then(|a| agent(a, "fp1"));
    if agent_name.is_none() {
        run.source = Source::Proxy;
    }
    let mut rec = writer.start_run(run).unwrap();
    let msg = rec.blob(&serde_json::json!({"n": n})).unwrap();
    rec.append(request(1, vec![msg], None)).unwrap();
    rec.append(response(1, msg, &[], Some((100 * u64::from(n), 10)), cost))
        .unwrap();
    for i in 0..calls {
        rec.append(tool_call(1, &format!("c{i}"), "browser.open", msg))
            .unwrap();
        rec.append(tool_result(
            &format!("c{i}"),
            "browser.open",
            None,
            Some(0.72),
        ))
        .unwrap();
    }
    if n.is_multiple_of(2) {
        rec.append(tool_call(1, "k", "kb.read", msg)).unwrap();
    }
    let id = rec.id();
    match reason {
        Some(r) => {
            rec.finish_at(r, None, at(i64::from(n) + 10)).unwrap();
        }
        None => rec.flush().map(|_| ()).unwrap(),
    }
    id
}

on_both_stores! {
    fn monitor_summarizes_each_agent_version(backend) {
        let tmp = TempStore::on(backend);
        let store = tmp.open();
        monitored(
            &store,
            1,
            Some("research-bot"),
            15,
            Some(0.01),
            Some(StopReason::MaxToolCalls),
        );
        monitored(
            &store,
            2,
            Some("research-bot"),
            2,
            Some(0.01),
            Some(StopReason::Ok),
        );
        monitored(
            &store,
            3,
            Some("research-bot"),
            0,
            None,
            Some(StopReason::Ok),
        );
        monitored(&store, 4, None, 1, Some(0.5), None);

        let report = store.monitor(&RunFilter::default()).unwrap();
        assert_eq!(report.agents.len(), 2);
        let bot = &report.agents[0];
        assert_eq!(
            (bot.agent.as_str(), bot.fingerprint.as_deref(), bot.runs),
            ("research-bot", Some("fp1"), 3)
        );
        // Tool calls per run: 15, 3 (2 browser.open + kb.read), 0.
        let calls = bot.tool_calls_per_run.as_ref().unwrap();
        assert_eq!((calls.count, calls.p50, calls.max), (3, 3.0, 15.0));
        assert!((calls.mean - 6.0).abs() < 1e-9);
        assert_eq!(calls.p95, 15.0);
        let tokens = bot.tokens_per_request.as_ref().unwrap();
        assert_eq!((tokens.count, tokens.p50, tokens.max), (3, 210.0, 310.0));
        let mix: Vec<(&str, usize)> = bot
            .stop_reasons
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(mix, vec![("max_tool_calls", 1), ("ok", 2)]);
        assert_eq!(bot.runs_cost_unknown, 1);
        // Known costs only: run 1 is 0.01 + 15 × 0.72, run 2 is 0.01 + 2 × 0.72.
        let cost = bot.cost_usd.expect("two runs of known cost");
        assert!((cost - (0.02 + 17.0 * 0.72)).abs() < 1e-9, "{cost}");
        let top = bot.top_tool.clone().unwrap();
        assert_eq!(top.tool, "browser.open");
        assert!((top.share - 17.0 / 18.0).abs() < 1e-9);
        let latency = bot.latency_ms.as_ref().unwrap();
        assert_eq!((latency.count, latency.max), (3, 10_000.0));

        let proxy = &report.agents[1];
        assert_eq!(
            (
                proxy.agent.as_str(),
                proxy.fingerprint.as_deref(),
                proxy.runs
            ),
            ("(proxy)", None, 1)
        );
        assert_eq!(proxy.stop_reasons.get("running"), Some(&1));
        assert_eq!(proxy.runs_cost_unknown, 0);
        assert!(proxy.latency_ms.is_none());

        // The filter applies.
        let only_ok = store
            .monitor(&RunFilter {
                stop_reason: Some("ok".into()),
                ..RunFilter::default()
            })
            .unwrap();
        assert_eq!(only_ok.agents.len(), 1);
        assert_eq!(only_ok.agents[0].runs, 2);
        assert_eq!(
            only_ok.agents[0].tool_calls_per_run.as_ref().unwrap().p50,
            0.0
        );
    }
}
