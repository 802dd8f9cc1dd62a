//! The agent loop, [`Agent::run`]: ask the model, pass each tool call through the
//! [`Gateway`], feed the observation back, until a final answer or a stop reason — with every
//! budget checked before every step and tool call, and every event recorded.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tapedeck_store::{Ending, Writer};
use tapedeck_trace::{
    AgentInfo, BudgetExceeded, BudgetKind, ContentHash, EventData, LlmRequest, LlmResponse,
    LlmRetry, Origin, PolicyDecision, Run, RunStarted, Source, StopReason, ToolCall,
    ToolCallSummary, ToolResult, Usage, Validation,
};

use crate::AgentError;
use crate::approvals::{ApprovalSource, Approver};
use crate::config::{LoadedConfig, OnInvalidOutput, OnToolError};
use crate::gateway::{Gateway, Ruling, SchemaOf, Verdict};
use crate::message::{
    FinishReason, MatchingForm, Message, ModelRequest, ToolCallRequest, ToolSpec,
};
use crate::model::{ModelBackend, ModelError};
use crate::sink::EventSink;
use crate::tool::{Intercepted, ToolFailure, ToolInterceptor, ToolSet};

/// How often a failed model call is retried (429, 5xx, connection errors).
const MAX_RETRIES: u32 = 3;
/// The first retry's wait; each further retry waits twice as long, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

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
    /// its `writes` section names.
    pub fn from_config(config: LoadedConfig) -> Result<Self, AgentError> {
        let model = crate::model::from_config(&config)?;
        let tools = ToolSet::from_config(&config)?;
        let approver = crate::approvals_for(&config)?;
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

    /// Runs the agent on `input`, recording into a new run of `writer`: starts the run,
    /// runs it, and finishes it with its stop reason. `run` carries the task, suite and labels
    /// (start from [`Agent::new_run`]).
    pub fn run_recorded(
        &mut self,
        writer: &Writer,
        run: Run,
    ) -> Result<(Run, RunOutcome), AgentError> {
        let input = run.input.clone().unwrap_or_default();
        let mut recorder = writer.start_run(run)?;
        let outcome = self.run(&input, &mut recorder)?;
        let run = recorder.end(Ending {
            stop_reason: outcome.stop_reason.clone(),
            answer: outcome.answer.clone(),
            error: outcome.error.clone(),
        })?;
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

    fn record_request(
        &self,
        request: &ModelRequest,
        form: &mut MatchingForm,
        sink: &mut dyn EventSink,
    ) -> Result<(), AgentError> {
        // Only the messages new since the last request are serialized, hashed and stored.
        let request_hash = form.update(request);
        let refs = form.message_blobs(|m| sink.blob(m))?;
        let tools_ref = if request.tools.is_empty() {
            None
        } else {
            Some(sink.blob(&serde_json::to_value(&request.tools).unwrap_or(Value::Null))?)
        };
        let mut params = serde_json::Map::new();
        if let Some(t) = request.temperature {
            params.insert("temperature".into(), json!(t));
        }
        params.insert("max_output_tokens".into(), json!(request.max_output_tokens));
        sink.append(EventData::LlmRequest(LlmRequest {
            step: request.step,
            provider: Some(self.model.provider().to_owned()),
            model: request.model.clone(),
            params: Value::Object(params),
            extends: None,
            messages: refs,
            tools: tools_ref,
            request_hash,
        }))?;
        Ok(())
    }

    /// Asks the model, retrying what may pass; records retries and the response. The inner
    /// `Err` is the run's end (model error, or the time budget running out while waiting).
    fn call_model(
        &mut self,
        request: &ModelRequest,
        state: &mut RunState,
        sink: &mut dyn EventSink,
    ) -> Result<Result<crate::ModelResponse, RunOutcome>, AgentError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let deadline = state
                .deadline
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let began = Instant::now();
            let result = self.model.complete(request, deadline);
            let latency_ms = began.elapsed().as_millis() as u64;
            let error = match result {
                Ok(response) => {
                    self.record_response(request.step, &response, latency_ms, state, sink)?;
                    return Ok(Ok(response));
                }
                Err(e) => e,
            };
            if over_seconds(state).is_some() {
                return Ok(Err(self.out_of_seconds(sink, state, None)?));
            }
            if let ModelError::Unrecorded(detail) = &error {
                return Ok(Err(RunOutcome {
                    error: Some(detail.clone()),
                    ..RunOutcome::stop(StopReason::ReplayMissLlm)
                }));
            }
            if !error.is_retryable() || attempt > MAX_RETRIES {
                return Ok(Err(RunOutcome {
                    error: Some(error.to_string()),
                    ..RunOutcome::stop(StopReason::ModelError)
                }));
            }
            let backoff = FIRST_BACKOFF
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(MAX_BACKOFF);
            let wait = error.retry_after().unwrap_or(backoff).min(MAX_BACKOFF);
            sink.append(EventData::LlmRetry(LlmRetry {
                step: request.step,
                attempt,
                status: error.status(),
                error: Some(error.to_string()),
                wait_ms: wait.as_millis() as u64,
            }))?;
            if state.deadline.is_some_and(|d| Instant::now() + wait >= d) {
                return Ok(Err(self.out_of_seconds(sink, state, None)?));
            }
            if let Some(stop) = self.cancelled() {
                return Ok(Err(stop));
            }
            std::thread::sleep(wait);
            if let Some(stop) = self.cancelled() {
                return Ok(Err(stop));
            }
        }
    }

    fn record_response(
        &self,
        step: u64,
        response: &crate::ModelResponse,
        latency_ms: u64,
        state: &mut RunState,
        sink: &mut dyn EventSink,
    ) -> Result<(), AgentError> {
        let message = sink.blob(&serde_json::to_value(&response.message).unwrap_or(Value::Null))?;
        let model = self.config.model()?;
        let cost_usd = match (response.usage, self.config.config.pricing.get(&model.name)) {
            (
                Some(Usage {
                    input_tokens,
                    output_tokens,
                }),
                Some(price),
            ) => Some(price.cost(input_tokens, output_tokens)),
            _ => None,
        };
        if let Some(u) = response.usage {
            state.tokens = state
                .tokens
                .saturating_add(u.input_tokens)
                .saturating_add(u.output_tokens);
        }
        state.usd += cost_usd.unwrap_or(0.0);
        sink.append(EventData::LlmResponse(LlmResponse {
            step,
            message,
            tool_calls: response
                .tool_calls()
                .iter()
                .map(|c| ToolCallSummary {
                    id: c.id.clone(),
                    name: c.name.clone(),
                })
                .collect(),
            finish_reason: response.raw_finish_reason.clone(),
            usage: response.usage,
            cost_usd,
            latency_ms,
            streamed: response.streamed,
            truncated: response.truncated,
        }))?;
        Ok(())
    }

    /// One tool call, through budgets and the gateway.
    fn call_tool(
        &mut self,
        call: &ToolCallRequest,
        state: &mut RunState,
        gateway: &mut Gateway,
        sink: &mut dyn EventSink,
    ) -> Result<ToolStep, AgentError> {
        let b = &self.config.config.budgets;
        let tool = call.name.as_str();
        let over = if let Some(limit) = over_seconds(state) {
            Some((
                BudgetKind::MaxSeconds,
                limit,
                state.started.elapsed().as_secs_f64(),
            ))
        } else if let Some(limit) = b.max_tool_calls.filter(|l| state.tool_calls >= *l) {
            Some((
                BudgetKind::MaxToolCalls,
                limit as f64,
                state.tool_calls as f64,
            ))
        } else {
            b.max_usd
                .filter(|l| state.usd >= *l)
                .map(|limit| (BudgetKind::MaxUsd, limit, state.usd))
        };
        if let Some((budget, limit, used)) = over {
            return Ok(ToolStep::Stop(self.exceeded(
                sink,
                budget,
                limit,
                used,
                Some(tool),
            )?));
        }
        state.tool_calls += 1;
        let def = self.config.tool(tool).cloned();
        let args_ref = sink.blob(&call.arguments)?;
        let verdict = gateway.check(
            tool,
            def.as_ref(),
            self.tools.get(tool).is_some() || self.interceptor.is_some(),
            &call.arguments,
            args_ref,
        );
        let key = match &verdict {
            Verdict::Run { key, .. } | Verdict::Reuse { key, .. } => key.clone(),
            _ => None,
        };
        sink.append(EventData::ToolCall(ToolCall {
            step: state.steps,
            call_id: call.id.clone(),
            tool: tool.to_owned(),
            args: args_ref,
            args_hash: args_ref,
            idempotency_key: key.clone(),
        }))?;
        let record = |sink: &mut dyn EventSink, ruling: &Ruling| {
            sink.append(EventData::PolicyDecision(PolicyDecision {
                call_id: Some(call.id.clone()),
                tool: Some(tool.to_owned()),
                decision: ruling.decision,
                rule: ruling.rule.clone(),
                detail: ruling.detail.clone(),
            }))
        };
        match verdict {
            Verdict::Stop { rulings, reason } => {
                for ruling in &rulings {
                    record(sink, ruling)?;
                }
                let detail = rulings.last().and_then(|r| r.detail.clone());
                Ok(ToolStep::Stop(RunOutcome {
                    error: detail,
                    ..RunOutcome::stop(reason)
                }))
            }
            Verdict::Refuse { ruling, message } => {
                record(sink, &ruling)?;
                self.record_result(
                    sink,
                    call,
                    None,
                    Some(message.clone()),
                    0,
                    Validation::NotChecked,
                    Origin::Live,
                    None,
                )?;
                Ok(ToolStep::Observed(observation(call, &Err(message))))
            }
            Verdict::Reuse {
                ruling,
                result,
                output,
                ..
            } => {
                record(sink, &ruling)?;
                self.record_result(
                    sink,
                    call,
                    output,
                    result.as_ref().err().cloned(),
                    0,
                    Validation::NotChecked,
                    Origin::Dedupe,
                    None,
                )?;
                Ok(ToolStep::Observed(observation(call, &result)))
            }
            Verdict::Run { rulings, key } => {
                for ruling in &rulings {
                    record(sink, ruling)?;
                }
                let def = def.ok_or_else(|| AgentError::Tool {
                    tool: tool.to_owned(),
                    message: "allowed without a definition".to_owned(),
                })?;
                if let Some(limit) = b.max_usd.filter(|l| state.usd + def.cost_usd > *l) {
                    let used = state.usd;
                    return Ok(ToolStep::Stop(self.exceeded(
                        sink,
                        BudgetKind::MaxUsd,
                        limit,
                        used,
                        Some(tool),
                    )?));
                }
                let seen_as = SeenAs {
                    args_hash: args_ref,
                    key: key.as_deref(),
                };
                self.run_tool(call, &def, seen_as, state, gateway, sink)
            }
        }
    }

    /// Runs an allowed tool call and records its result.
    fn run_tool(
        &mut self,
        call: &ToolCallRequest,
        def: &crate::config::ToolDef,
        seen_as: SeenAs<'_>,
        state: &mut RunState,
        gateway: &mut Gateway,
        sink: &mut dyn EventSink,
    ) -> Result<ToolStep, AgentError> {
        let tool = call.name.as_str();
        let intercepted = match &mut self.interceptor {
            Some(interceptor) => interceptor.intercept(state.steps, call, def.kind),
            None => None,
        };
        let (result, origin, latency_ms, limited_by_run) = match intercepted {
            Some(Intercepted::Miss(detail)) => {
                self.record_result(
                    sink,
                    call,
                    None,
                    Some(format!("replay miss: {detail}")),
                    0,
                    Validation::NotChecked,
                    Origin::Recorded,
                    None,
                )?;
                return Ok(ToolStep::Stop(RunOutcome {
                    error: Some(detail),
                    ..RunOutcome::stop(StopReason::ReplayMissTool(tool.to_owned()))
                }));
            }
            Some(Intercepted::Answer { result, origin }) => (result, origin, 0, false),
            None => {
                let (result, latency_ms, limited) = self.call_backend(call, def, state)?;
                (result, Origin::Live, latency_ms, limited)
            }
        };
        self.finish_tool(
            call,
            def,
            seen_as,
            state,
            gateway,
            sink,
            result,
            origin,
            latency_ms,
            limited_by_run,
        )
    }

    /// Calls a tool's own backend within the run's deadline; says whether the deadline (not
    /// the tool's `timeout_s`) limited the call.
    fn call_backend(
        &self,
        call: &ToolCallRequest,
        def: &crate::config::ToolDef,
        state: &RunState,
    ) -> Result<(Result<Value, ToolFailure>, u64, bool), AgentError> {
        let tool = call.name.as_str();
        let Some(backend) = self.tools.get(tool).cloned() else {
            return Err(AgentError::Tool {
                tool: tool.to_owned(),
                message: "no backend".to_owned(),
            });
        };
        let mut timeout = def.timeout();
        let mut limited_by_run = false;
        if let Some(deadline) = state.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left < timeout {
                timeout = left;
                limited_by_run = true;
            }
        }
        let began = Instant::now();
        let result = backend.call(&call.arguments, timeout);
        Ok((result, began.elapsed().as_millis() as u64, limited_by_run))
    }

    /// Records a tool call's result and turns it into an observation or a stop.
    #[expect(
        clippy::too_many_arguments,
        reason = "the call, its context and its result"
    )]
    fn finish_tool(
        &mut self,
        call: &ToolCallRequest,
        def: &crate::config::ToolDef,
        seen_as: SeenAs<'_>,
        state: &mut RunState,
        gateway: &mut Gateway,
        sink: &mut dyn EventSink,
        result: Result<Value, ToolFailure>,
        origin: Origin,
        latency_ms: u64,
        limited_by_run: bool,
    ) -> Result<ToolStep, AgentError> {
        let tool = call.name.as_str();
        state.usd += def.cost_usd;
        let cost = (def.cost_usd > 0.0).then_some(def.cost_usd);
        match result {
            Ok(output) => {
                let output_ref = sink.blob(&output)?;
                let validation = match &def.output_schema {
                    None => Validation::NotChecked,
                    Some(schema) => match gateway.validate(tool, SchemaOf::Output, schema, &output)
                    {
                        Ok(()) => Validation::Valid,
                        Err(problems) => Validation::Invalid(problems),
                    },
                };
                self.record_result(
                    sink,
                    call,
                    Some(output_ref),
                    None,
                    latency_ms,
                    validation.clone(),
                    origin,
                    cost,
                )?;
                if let Validation::Invalid(problems) = validation {
                    let message = format!(
                        "the output of `{tool}` does not match its output_schema: {problems}"
                    );
                    gateway.observe(
                        tool,
                        def.kind,
                        seen_as.args_hash,
                        seen_as.key,
                        &Err(message.clone()),
                        None,
                    );
                    return Ok(match self.config.config.on_invalid_output {
                        OnInvalidOutput::Stop => ToolStep::Stop(RunOutcome {
                            error: Some(message),
                            ..RunOutcome::stop(StopReason::InvalidToolOutput(tool.to_owned()))
                        }),
                        OnInvalidOutput::FeedBack => {
                            ToolStep::Observed(observation(call, &Err(message)))
                        }
                    });
                }
                let result = Ok(output);
                gateway.observe(
                    tool,
                    def.kind,
                    seen_as.args_hash,
                    seen_as.key,
                    &result,
                    Some(output_ref),
                );
                Ok(ToolStep::Observed(observation(call, &result)))
            }
            Err(failure) => {
                let message = failure.to_string();
                self.record_result(
                    sink,
                    call,
                    None,
                    Some(message.clone()),
                    latency_ms,
                    Validation::NotChecked,
                    origin,
                    cost,
                )?;
                if matches!(failure, ToolFailure::Timeout(_)) && limited_by_run {
                    return Ok(ToolStep::Stop(self.out_of_seconds(
                        sink,
                        state,
                        Some(tool),
                    )?));
                }
                let disabled = gateway.observe(
                    tool,
                    def.kind,
                    seen_as.args_hash,
                    seen_as.key,
                    &Err(message.clone()),
                    None,
                );
                if self.config.config.on_tool_error == OnToolError::Stop {
                    return Ok(ToolStep::Stop(RunOutcome {
                        error: Some(format!("{tool}: {message}")),
                        ..RunOutcome::stop(StopReason::ToolError(tool.to_owned()))
                    }));
                }
                let told = if disabled {
                    let after = self.config.config.degrade.after_errors;
                    sink.append(EventData::PolicyDecision(PolicyDecision {
                        call_id: Some(call.id.clone()),
                        tool: Some(tool.to_owned()),
                        decision: tapedeck_trace::Decision::Degraded,
                        rule: "degrade.after_errors".to_owned(),
                        detail: Some(format!(
                            "`{tool}` failed {after} times: disabled for the rest of this run"
                        )),
                    }))?;
                    format!(
                        "{message} (`{tool}` failed {after} times and is now disabled for the rest of this run)"
                    )
                } else {
                    message
                };
                Ok(ToolStep::Observed(observation(call, &Err(told))))
            }
        }
    }

    #[expect(clippy::too_many_arguments, reason = "one field per event field")]
    fn record_result(
        &self,
        sink: &mut dyn EventSink,
        call: &ToolCallRequest,
        output: Option<ContentHash>,
        error: Option<String>,
        latency_ms: u64,
        validation: Validation,
        origin: Origin,
        cost_usd: Option<f64>,
    ) -> Result<(), AgentError> {
        sink.append(EventData::ToolResult(ToolResult {
            call_id: call.id.clone(),
            tool: call.name.clone(),
            output,
            error,
            latency_ms,
            validation,
            origin,
            cost_usd,
        }))?;
        Ok(())
    }
}

/// What a tool call led to.
enum ToolStep {
    /// The observation to give the model.
    Observed(Message),
    /// The run ends.
    Stop(RunOutcome),
}

/// The `max_seconds` limit when it has run out.
fn over_seconds(state: &RunState) -> Option<f64> {
    let deadline = state.deadline?;
    (Instant::now() >= deadline).then(|| (deadline - state.started).as_secs_f64())
}

/// How the gateway recognises a repeat of a tool call it ran.
#[derive(Clone, Copy)]
struct SeenAs<'a> {
    /// The hash of its arguments (their blob's).
    args_hash: ContentHash,
    /// A write's idempotency key.
    key: Option<&'a str>,
}

/// The message that tells the model what a tool call gave.
fn observation(call: &ToolCallRequest, result: &Result<Value, String>) -> Message {
    match result {
        Ok(value) => Message::Tool {
            tool_call_id: call.id.clone(),
            name: call.name.clone(),
            content: serde_json::to_string(value).unwrap_or_default(),
            is_error: false,
        },
        Err(message) => Message::Tool {
            tool_call_id: call.id.clone(),
            name: call.name.clone(),
            content: format!("error: {message}"),
            is_error: true,
        },
    }
}
