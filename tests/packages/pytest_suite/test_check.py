"""The test `--tapedeck-check` runs against its tape (tests/packages): the model live, the tool
from the tape."""

import pytest

import agent


@pytest.mark.tapedeck
def test_forecast():
    assert "sunny" in agent.ask("Weather in Paris?")


@pytest.mark.tapedeck(
    tolerances={"tool_calls": "+100%", "steps": "+50%", "tokens": "+50%"},
)
def test_forecast_within_tolerances():
    assert "sunny" in agent.ask("Weather in Paris today?")
