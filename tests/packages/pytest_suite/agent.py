"""A tiny agent on the official `openai` SDK: one tool through the tapedeck client library, the
client made at import time (the pytest plugin must have set OPENAI_BASE_URL by then)."""

import json

import openai
import tapedeck

client = openai.OpenAI()
CALLS = []

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@tapedeck.tool
def get_weather(city: str) -> dict:
    CALLS.append(city)
    return {"city": city, "sky": "sunny"}


def ask(question: str) -> str:
    messages = [{"role": "user", "content": question}]
    for _ in range(4):
        reply = client.chat.completions.create(
            model="gpt-test", messages=messages, tools=TOOLS
        ).choices[0].message
        if not reply.tool_calls:
            return reply.content
        messages.append(reply.model_dump(exclude_none=True))
        for call in reply.tool_calls:
            result = get_weather(**json.loads(call.function.arguments))
            messages.append(
                {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)}
            )
    raise RuntimeError("no answer after 4 steps")
