"""The test `--tapedeck-check` runs against its tape (tests/packages): the model live, the tool
from the tape."""

import pytest

import agent


@pytest.mark.tapedeck
def test_forecast():
    assert "sunny" in agent.ask("Weather in Paris?")
