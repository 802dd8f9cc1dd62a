"""The sample suite the packaging tests run (tests/packages): one tape per test under
tapes/test_agent/."""

import os

import pytest

import agent


@pytest.mark.tapedeck
def test_weather(tapedeck):
    assert "sunny" in agent.ask("Weather in Paris?")
    # The tool ran in the recording; in a replay its answer came from the tape.
    assert agent.CALLS == (["Paris"] if tapedeck.mode == "record" else [])
    run = tapedeck.recorded_run()
    assert run.summary["stop_reason"] == "ok"
    assert run.summary["tool_calls"] == 1
    assert run.summary["tokens_in"] == 30
    assert run.summary["answer"] == "It is sunny in Paris."


@pytest.mark.tapedeck
def test_capital():
    # SAMPLE_COUNTRY changes the question: a replay of the tape then misses, and new episodes
    # ask the model.
    country = os.environ.get("SAMPLE_COUNTRY", "France")
    capital = {"France": "Paris.", "Spain": "Madrid."}[country]
    assert agent.ask(f"Capital of {country}?") == capital
