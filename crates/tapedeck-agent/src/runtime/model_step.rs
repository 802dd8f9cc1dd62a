//! A model step of [`Agent::run`]: the request recorded (with the history it extends), the
//! model asked with retries and backoff, the response recorded with its usage and cost.

use super::*;

/// How often a failed model call is retried (429, 5xx, connection errors).
const MAX_RETRIES: u32 = 3;
/// The first retry's wait; each further retry waits twice as long, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

impl Agent {
    pub(super) fn record_request(
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
    pub(super) fn call_model(
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
            (Some(usage), Some(price)) => Some(price.cost(usage)),
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
}
