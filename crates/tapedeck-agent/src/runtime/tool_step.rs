//! A tool call of [`Agent::run`]: budgets, the gateway's ruling, the tool's backend (or the
//! replay's interceptor) within the run's deadline, output validation, and the recorded
//! call, decision and result.

use super::*;

impl Agent {
    /// One tool call, through budgets and the gateway.
    pub(super) fn call_tool(
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
pub(super) enum ToolStep {
    /// The observation to give the model.
    Observed(Message),
    /// The run ends.
    Stop(RunOutcome),
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
