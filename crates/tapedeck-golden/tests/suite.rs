//! The golden runner as a library: a shipped suite checked against its own agent version and a
//! drifting one, and recorded afresh into files a later check reads.

use std::path::Path;

use tapedeck_diff::golden::{Suite, TaskVerdict};
use tapedeck_golden::{Candidate, Check, GoldenError, Observer, Recorder, SuiteJudgement};
use tapedeck_replay::Options;
use tapedeck_store::Store;

/// Counts what the runner reports.
#[derive(Default)]
struct Counted {
    planned: std::sync::atomic::AtomicUsize,
    done: std::sync::atomic::AtomicUsize,
}

impl Observer for Counted {
    fn runs_planned(&self, runs: usize) {
        self.planned
            .store(runs, std::sync::atomic::Ordering::SeqCst);
    }
    fn run_done(&self) {
        self.done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A copy of `golden/support` and a store in a temporary folder.
fn support_suite() -> (tempfile::TempDir, Suite, Store) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    tapedeck_testkit::copy_dir(
        &tapedeck_testkit::workspace_root().join("golden/support"),
        &dir.path().join("support"),
    );
    let suite = Suite::load(&dir.path().join("support")).expect("the suite loads");
    let store = Store::open(dir.path().join("t.db")).expect("the store opens");
    (dir, suite, store)
}

/// The agent version at `path`, replayed tools-only.
fn agent_candidate(path: &Path) -> Candidate {
    let config = tapedeck_agent::LoadedConfig::load(path).expect("the agent version loads");
    Candidate::Agent(Box::new(Options::tools_only(config)))
}

fn check(suite: &Suite, store: &Store, candidate: Candidate) -> (SuiteJudgement, Counted) {
    let observer = Counted::default();
    let check = Check::prepare(
        suite,
        suite.tasks.iter().collect(),
        1,
        candidate,
        false,
        &observer,
    )
    .expect("the suite's input is valid");
    let judgement = check.run(store, 2, &observer).expect("the check runs");
    (judgement, observer)
}

fn verdicts(judgement: &SuiteJudgement) -> Vec<(String, TaskVerdict)> {
    judgement
        .results()
        .into_iter()
        .map(|r| (r.task, r.verdict))
        .collect()
}

#[test]
fn the_suites_own_agent_passes_and_a_drifting_one_drifts_where_it_changed() {
    let (_dir, suite, store) = support_suite();
    let own = suite.agent_path().expect("the suite names its agent");
    let (judgement, observer) = check(&suite, &store, agent_candidate(&own));
    assert!(
        verdicts(&judgement)
            .iter()
            .all(|(_, v)| *v == TaskVerdict::Pass),
        "{:?}",
        verdicts(&judgement)
    );
    let tasks = suite.tasks.len();
    assert_eq!(observer.planned.into_inner(), tasks);
    assert_eq!(observer.done.into_inner(), tasks);

    let drift = tapedeck_testkit::fixtures_dir().join("agents/support-bot-drift.yaml");
    let (judgement, _) = check(&suite, &store, agent_candidate(&drift));
    let drifted: Vec<String> = verdicts(&judgement)
        .into_iter()
        .filter(|(_, v)| *v == TaskVerdict::Drift)
        .map(|(task, _)| task)
        .collect();
    assert_eq!(
        drifted,
        [
            "password-reset",
            "password-forgot",
            "password-link-expired",
            "shipping-times"
        ]
    );
}

#[test]
fn a_recorded_suite_is_what_the_next_check_reads() {
    let (dir, suite, store) = support_suite();
    std::fs::remove_dir_all(suite.dir.join("tapes")).expect("drop the shipped tapes");
    let missing = Check::prepare(
        &suite,
        suite.tasks.iter().collect(),
        1,
        agent_candidate(&suite.agent_path().expect("an agent")),
        false,
        &Counted::default(),
    );
    assert!(
        matches!(missing, Err(GoldenError::NoBaseline { .. })),
        "a suite without tapes is refused before anything runs"
    );

    let config = tapedeck_agent::LoadedConfig::load(&suite.agent_path().expect("an agent"))
        .expect("the agent version loads");
    let recorder = Recorder::Agent {
        config: Box::new(config),
        ask: tapedeck_agent::approvals::nobody,
    };
    recorder.check().expect("the agent version can run");
    let writer = store.writer().expect("a writer");
    let tasks: Vec<_> = suite.tasks.iter().take(2).collect();
    let recorded =
        tapedeck_golden::record(&store, &writer, &suite, &tasks, &recorder, 2).expect("records");
    drop(writer);
    for recording in &recorded {
        assert!(recording.error.is_none(), "{:?}", recording.error);
        assert_eq!(recording.runs.len(), 2);
        for n in 1..=2 {
            assert!(suite.repeat_tape_path(&recording.task.id, n).is_file());
        }
        assert!(suite.snapshot_path(&recording.task.id).is_file());
    }

    let observer = Counted::default();
    let again = Check::prepare(
        &suite,
        tasks.clone(),
        2,
        agent_candidate(&suite.agent_path().expect("an agent")),
        false,
        &observer,
    );
    // Two runs a side can never reach the suite's significance: the check says how many can.
    match again {
        Err(GoldenError::TooFewRuns { needed, .. }) => assert!(needed > 2),
        Err(e) => panic!("unexpected refusal: {e}"),
        Ok(_) => panic!("two runs a side cannot be significant"),
    }
    let check = Check::prepare(
        &suite,
        tasks,
        1,
        agent_candidate(&suite.agent_path().expect("an agent")),
        false,
        &observer,
    )
    .expect("the first runs are baselines");
    let judgement = check.run(&store, 1, &observer).expect("the check runs");
    assert_eq!(
        verdicts(&judgement),
        [
            (suite.tasks[0].id.clone(), TaskVerdict::Pass),
            (suite.tasks[1].id.clone(), TaskVerdict::Pass)
        ]
    );
    drop(dir);
}
