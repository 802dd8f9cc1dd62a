//! `StopReason` and `RunStatus`: every documented string form round-trips through
//! Display/FromStr and serde, and anything else is rejected.

use tapedeck_trace::{RunStatus, StopReason, TraceError};

/// Every documented form (DESIGN.md, "Stop reasons"), with the value it parses to.
fn documented() -> Vec<(&'static str, StopReason)> {
    vec![
        ("ok", StopReason::Ok),
        ("max_steps", StopReason::MaxSteps),
        ("max_seconds", StopReason::MaxSeconds),
        ("max_tool_calls", StopReason::MaxToolCalls),
        ("max_usd", StopReason::MaxUsd),
        ("max_tokens", StopReason::MaxTokens),
        ("model_length", StopReason::ModelLength),
        (
            "tool_denied:http.get",
            StopReason::ToolDenied("http.get".into()),
        ),
        ("approval_denied:X", StopReason::ApprovalDenied("X".into())),
        (
            "invalid_tool_output:X",
            StopReason::InvalidToolOutput("X".into()),
        ),
        ("tool_error:X", StopReason::ToolError("X".into())),
        ("kill_switch", StopReason::KillSwitch),
        (
            "replay_miss:browser.open",
            StopReason::ReplayMissTool("browser.open".into()),
        ),
        ("replay_miss:llm", StopReason::ReplayMissLlm),
        ("model_error", StopReason::ModelError),
        ("cancelled", StopReason::Cancelled),
    ]
}

#[test]
fn every_documented_stop_reason_round_trips() {
    for (text, reason) in documented() {
        let parsed: StopReason = text.parse().unwrap();
        assert_eq!(parsed, reason, "{text}");
        assert_eq!(parsed.to_string(), text);
        let json = serde_json::to_string(&reason).unwrap();
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<StopReason>(&json).unwrap(), reason);
        assert_eq!(reason.is_ok(), text == "ok");
    }
}

#[test]
fn stop_reason_names_its_tool() {
    let tools: Vec<(String, Option<String>)> = documented()
        .into_iter()
        .map(|(text, r)| (text.to_owned(), r.tool().map(str::to_owned)))
        .collect();
    for (text, tool) in tools {
        let expected = match text.split_once(':') {
            Some((_, "llm")) | None => None,
            Some((_, t)) => Some(t.to_owned()),
        };
        assert_eq!(tool, expected, "{text}");
    }
    // A tool name may itself contain a colon (MCP servers namespace tools that way).
    let r: StopReason = "tool_denied:github:create_issue".parse().unwrap();
    assert_eq!(r, StopReason::ToolDenied("github:create_issue".into()));
    assert_eq!(r.to_string(), "tool_denied:github:create_issue");
}

#[test]
fn invalid_stop_reasons_are_rejected() {
    for bad in [
        "tool_denied:",
        "nope",
        "max_steps:x",
        "",
        "OK",
        "Ok",
        " ok",
        "ok ",
        "tool_denied",
        "replay_miss",
        "replay_miss:",
        ":http.get",
        "kill_switch:now",
        "unknown:tool",
    ] {
        match bad.parse::<StopReason>() {
            Err(TraceError::StopReason(s)) => assert_eq!(s, bad),
            other => panic!("{bad:?} parsed as {other:?}"),
        }
        let json = serde_json::to_string(bad).unwrap();
        let err = serde_json::from_str::<StopReason>(&json).unwrap_err();
        assert!(err.to_string().contains("unknown stop reason"), "{err}");
    }
    let message = "nope".parse::<StopReason>().unwrap_err().to_string();
    assert!(
        message.contains("`nope`") && message.contains("max_tool_calls"),
        "{message}"
    );
}

#[test]
fn run_status_round_trips_and_follows_the_stop_reason() {
    for (text, status) in [
        ("running", RunStatus::Running),
        ("ok", RunStatus::Ok),
        ("stopped", RunStatus::Stopped),
        ("error", RunStatus::Error),
        ("incomplete", RunStatus::Incomplete),
    ] {
        assert_eq!(text.parse::<RunStatus>().unwrap(), status);
        assert_eq!(status.to_string(), text);
        assert_eq!(status.as_str(), text);
        assert_eq!(
            serde_json::to_string(&status).unwrap(),
            format!("\"{text}\"")
        );
        assert_eq!(
            serde_json::from_str::<RunStatus>(&format!("\"{text}\"")).unwrap(),
            status
        );
    }
    assert!(matches!("done".parse::<RunStatus>(), Err(TraceError::RunStatus(s)) if s == "done"));

    let status = |s: &str| RunStatus::for_stop_reason(&s.parse().unwrap());
    assert_eq!(status("ok"), RunStatus::Ok);
    assert_eq!(status("model_error"), RunStatus::Error);
    assert_eq!(status("tool_error:kb.read"), RunStatus::Error);
    for stopped in [
        "max_steps",
        "max_seconds",
        "max_tool_calls",
        "max_usd",
        "max_tokens",
        "model_length",
        "tool_denied:http.get",
        "approval_denied:X",
        "kill_switch",
        "replay_miss:llm",
        "replay_miss:browser.open",
        "cancelled",
    ] {
        assert_eq!(status(stopped), RunStatus::Stopped, "{stopped}");
    }
}

#[test]
fn budget_names_are_their_serialized_form_and_their_stop_reason() {
    use tapedeck_trace::BudgetKind;
    for budget in [
        BudgetKind::MaxSteps,
        BudgetKind::MaxSeconds,
        BudgetKind::MaxToolCalls,
        BudgetKind::MaxUsd,
        BudgetKind::MaxTokens,
    ] {
        assert_eq!(
            serde_json::to_value(budget).expect("serializes"),
            budget.as_str()
        );
        assert_eq!(budget.stop_reason().to_string(), budget.as_str());
    }
}
