//! The agent loop, [`Agent::run`]: ask the model, pass each tool call through the
//! [`Gateway`], feed the observation back, until a final answer or a stop reason — with every
//! budget checked before every step and tool call, and every event recorded.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tapedeck_trace::{
    AgentInfo, BudgetExceeded, BudgetKind, ContentHash, EventData, LlmRequest, LlmResponse,
    LlmRetry, Origin, PolicyDecision, Run, RunStarted, Source, StopReason, ToolCall,
    ToolCallSummary, ToolResult, Validation,
};

use crate::AgentError;
use crate::approvals::{ApprovalSource, Approver, Ask};
use crate::config::{LoadedConfig, OnInvalidOutput, OnToolError};
use crate::gateway::{Gateway, Ruling, SchemaOf, Verdict};
use crate::message::{
    FinishReason, MatchingForm, Message, ModelRequest, ToolCallRequest, ToolSpec,
};
use crate::model::{ModelBackend, ModelError};
use crate::tool::{Intercepted, ToolFailure, ToolInterceptor, ToolSet};
use tapedeck_trace::{Ending, EventSink, RunRecorder, RunWriter};

mod model_step;
mod tool_step;

use tool_step::ToolStep;

/// A request to stop a run, shared with whoever receives it (the CLI's SIGINT / SIGTERM
/// handler): the runtime checks it before every step, tool call and retry, and ends the run
/// `cancelled`. A model or tool call already under way finishes first (within its timeout).
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token nobody has cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every run holding this token to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOutcome {
    /// Why it ended.
    pub stop_reason: StopReason,
    /// The final answer, or the last text the model produced.
    pub answer: Option<String>,
    /// What went wrong, for `model_error` and `tool_error` endings.
    pub error: Option<String>,
}

impl From<RunOutcome> for Ending {
    fn from(outcome: RunOutcome) -> Self {
        Self {
            stop_reason: outcome.stop_reason,
            answer: outcome.answer,
            error: outcome.error,
        }
    }
}

impl RunOutcome {
    fn stop(stop_reason: StopReason) -> Self {
        Self {
            stop_reason,
            answer: None,
            error: None,
        }
    }
}

/// Where a run is: the conversation and the budgets used so far.
struct RunState {
    started: Instant,
    deadline: Option<Instant>,
    steps: u64,
    tool_calls: u64,
    tokens: u64,
    usd: f64,
    messages: Vec<Message>,
    last_text: Option<String>,
    /// The requests' matching form, kept up to date from step to step.
    form: MatchingForm,
}

/// An agent version ready to run: its config, model, tools and approver.
pub struct Agent {
    config: LoadedConfig,
    model: Box<dyn ModelBackend>,
    tools: ToolSet,
    approver: Option<Box<dyn Approver>>,
    interceptor: Option<Box<dyn ToolInterceptor>>,
    tool_specs: Vec<ToolSpec>,
    cancel: CancelToken,
}

impl Agent {
    /// An agent from its parts (tests, replay, in-process tools).
    pub fn new(
        config: LoadedConfig,
        model: Box<dyn ModelBackend>,
        tools: ToolSet,
        approver: Box<dyn Approver>,
    ) -> Self {
        let tool_specs = config
            .config
            .tools
            .defs
            .iter()
            .map(|d| ToolSpec {
                name: d.name.clone(),
                description: d.description.clone(),
                input_schema: d.input_schema.clone(),
            })
            .collect();
        Self {
            config,
            model,
            tools,
            approver: Some(approver),
            interceptor: None,
            tool_specs,
            cancel: CancelToken::new(),
        }
    }

    /// The agent a config describes: its model backend, its tool backends, and the approver
    /// its `writes` section names (else whoever `ask` gives).
    pub fn from_config(config: LoadedConfig, ask: Ask) -> Result<Self, AgentError> {
        let model = crate::model::from_config(&config)?;
        let tools = ToolSet::from_config(&config)?;
        let approver = crate::approvals_for(&config, ask)?;
        Ok(Self::new(config, model, tools, approver))
    }

    /// The config it runs.
    pub fn config(&self) -> &LoadedConfig {
        &self.config
    }

    /// The tool backends, to add in-process tools.
    pub fn tools_mut(&mut self) -> &mut ToolSet {
        &mut self.tools
    }

    /// Answers tool calls from `interceptor` (a replay) instead of their backends.
    pub fn set_interceptor(&mut self, interceptor: Box<dyn ToolInterceptor>) {
        self.interceptor = Some(interceptor);
    }

    /// Stops its runs `cancelled` once `token` is cancelled.
    pub fn set_cancel_token(&mut self, token: CancelToken) {
        self.cancel = token;
    }

    /// The run's end when it was cancelled.
    fn cancelled(&self) -> Option<RunOutcome> {
        self.cancel.is_cancelled().then(|| RunOutcome {
            error: Some("the run was interrupted".to_owned()),
            ..RunOutcome::stop(StopReason::Cancelled)
        })
    }

    /// Replaces the approver.
    pub fn set_approver(&mut self, approver: Box<dyn Approver>) {
        self.approver = Some(approver);
    }

    /// The run record a run of this agent starts with.
    pub fn new_run(&self, input: &str) -> Run {
        let mut run = Run::new(Source::Runtime);
        run.input = Some(input.to_owned());
        run.agent = Some(AgentInfo {
            name: self.config.config.name.clone(),
            fingerprint: self.config.fingerprint(),
        });
        run
    }

    /// Runs the agent on `input`, recording into a new run of `writer` (a store's writer):
    /// starts the run, runs it, and finishes it with its stop reason. `run` carries the task,
    /// suite and labels (start from [`Agent::new_run`]).
    pub fn run_recorded(
        &mut self,
        writer: &impl RunWriter,
        run: Run,
    ) -> Result<(Run, RunOutcome), AgentError> {
        let input = run.input.clone().unwrap_or_default();
        let mut recorder = writer.start_run(run)?;
        let outcome = self.run(&input, &mut recorder)?;
        let run = recorder.end(outcome.clone().into())?;
        Ok((run, outcome))
    }

    /// Runs the agent on `input`, sending every event to `sink` (all but `run_finished`, which
    /// whoever owns the sink writes from the outcome). A run can only fail to *record*; every
    /// other failure ends it with a stop reason.
    pub fn run(&mut self, input: &str, sink: &mut dyn EventSink) -> Result<RunOutcome, AgentError> {
        let budgets = self.config.config.budgets.clone();
        let started = Instant::now();
        let mut state = RunState {
            started,
            deadline: budgets
                .max_duration()
                .and_then(|limit| started.checked_add(limit)),
            steps: 0,
            tool_calls: 0,
            tokens: 0,
            usd: 0.0,
            messages: Vec::new(),
            last_text: None,
            form: MatchingForm::default(),
        };
        self.record_start(input, sink)?;
        if let Some(prompt) = &self.config.system_prompt {
            state.messages.push(Message::System {
                content: prompt.clone(),
            });
        }
        state.messages.push(Message::User {
            content: input.to_owned(),
        });
        let approver = self
            .approver
            .take()
            .unwrap_or_else(|| Box::new(ApprovalSource::Nobody));
        let mut gateway = Gateway::new(&self.config, approver);
        let outcome = self.run_loop(&mut state, &mut gateway, sink);
        self.approver = Some(gateway.into_approver());
        let mut outcome = outcome?;
        if outcome.answer.is_none() {
            outcome.answer = state.last_text.clone();
        }
        Ok(outcome)
    }

    fn run_loop(
        &mut self,
        state: &mut RunState,
        gateway: &mut Gateway,
        sink: &mut dyn EventSink,
    ) -> Result<RunOutcome, AgentError> {
        loop {
            if let Some(stop) = self.cancelled() {
                return Ok(stop);
            }
            if let Some(stop) = self.check_step_budgets(state, sink)? {
                return Ok(stop);
            }
            state.steps += 1;
            let request = ModelRequest {
                model: self.config.model()?.name.clone(),
                messages: state.messages.clone(),
                tools: self.tool_specs.clone(),
                temperature: self.config.model()?.temperature,
                max_output_tokens: self.config.model()?.max_output_tokens,
                step: state.steps,
            };
            self.record_request(&request, &mut state.form, sink)?;
            let response = match self.call_model(&request, state, sink)? {
                Ok(response) => response,
                Err(outcome) => return Ok(outcome),
            };
            if let Some(text) = response.text().filter(|t| !t.is_empty()) {
                state.last_text = Some(text.to_owned());
            }
            if response.truncated {
                return Ok(RunOutcome {
                    error: Some("the model's stream ended before its response was complete".into()),
                    ..RunOutcome::stop(StopReason::ModelError)
                });
            }
            if response.finish == FinishReason::Length {
                return Ok(RunOutcome::stop(StopReason::ModelLength));
            }
            let calls = response.tool_calls().to_vec();
            state.messages.push(response.message.clone());
            if calls.is_empty() {
                return Ok(RunOutcome {
                    answer: Some(response.text().unwrap_or_default().to_owned()),
                    ..RunOutcome::stop(StopReason::Ok)
                });
            }
            for call in calls {
                if let Some(stop) = self.cancelled() {
                    return Ok(stop);
                }
                match self.call_tool(&call, state, gateway, sink)? {
                    ToolStep::Observed(message) => state.messages.push(message),
                    ToolStep::Stop(outcome) => return Ok(outcome),
                }
            }
        }
    }

    /// Checks the budgets a new step needs; records `budget_exceeded` and returns the stop.
    fn check_step_budgets(
        &self,
        state: &RunState,
        sink: &mut dyn EventSink,
    ) -> Result<Option<RunOutcome>, AgentError> {
        let b = &self.config.config.budgets;
        let over = if let Some(limit) = over_seconds(state) {
            Some((
                BudgetKind::MaxSeconds,
                limit,
                state.started.elapsed().as_secs_f64(),
            ))
        } else if let Some(limit) = b.max_steps.filter(|l| state.steps >= *l) {
            Some((BudgetKind::MaxSteps, limit as f64, state.steps as f64))
        } else if let Some(limit) = b.max_tokens.filter(|l| state.tokens >= *l) {
            Some((BudgetKind::MaxTokens, limit as f64, state.tokens as f64))
        } else {
            b.max_usd
                .filter(|l| state.usd >= *l)
                .map(|limit| (BudgetKind::MaxUsd, limit, state.usd))
        };
        match over {
            Some((budget, limit, used)) => {
                Ok(Some(self.exceeded(sink, budget, limit, used, None)?))
            }
            None => Ok(None),
        }
    }

    fn exceeded(
        &self,
        sink: &mut dyn EventSink,
        budget: BudgetKind,
        limit: f64,
        used: f64,
        tool: Option<&str>,
    ) -> Result<RunOutcome, AgentError> {
        sink.append(EventData::BudgetExceeded(BudgetExceeded {
            budget,
            limit,
            used,
            tool: tool.map(str::to_owned),
        }))?;
        Ok(RunOutcome::stop(budget.stop_reason()))
    }

    /// Stops the run on `max_seconds` (during a call of `tool`), with the seconds used so far.
    fn out_of_seconds(
        &self,
        sink: &mut dyn EventSink,
        state: &RunState,
        tool: Option<&str>,
    ) -> Result<RunOutcome, AgentError> {
        let used = state.started.elapsed().as_secs_f64();
        let limit = self.config.config.budgets.max_seconds.unwrap_or(used);
        self.exceeded(sink, BudgetKind::MaxSeconds, limit, used, tool)
    }

    fn record_start(&self, input: &str, sink: &mut dyn EventSink) -> Result<(), AgentError> {
        let c = &self.config.config;
        let agent_config = sink.blob(&self.config.effective())?;
        sink.append(EventData::RunStarted(RunStarted {
            input: Some(input.to_owned()),
            agent_config: Some(agent_config),
            budgets: serde_json::to_value(&c.budgets).unwrap_or(Value::Null),
            policy: json!({
                "tools.allow": c.tools.allow,
                "writes.require_approval": c.writes.require_approval,
                "kill_switch": c.kill_switch,
                "degrade": c.degrade,
                "dedupe": c.dedupe,
                "on_tool_error": c.on_tool_error,
                "on_invalid_output": c.on_invalid_output,
            }),
        }))?;
        Ok(())
    }
}

/// The `max_seconds` limit when it has run out.
fn over_seconds(state: &RunState) -> Option<f64> {
    let deadline = state.deadline?;
    (Instant::now() >= deadline).then(|| (deadline - state.started).as_secs_f64())
}
