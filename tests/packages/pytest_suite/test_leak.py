"""A test whose agent puts a token of the environment into its prompt: the key the SDK sends is
redacted from the tape, this one the proxy never saw as a key, so the plugin fails the test."""

import os

import pytest

import agent


@pytest.mark.tapedeck
def test_token_in_prompt():
    agent.ask(f"Remember the token {os.environ['SAMPLE_SERVICE_TOKEN']}")
