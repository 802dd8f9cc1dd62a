// A tiny agent on the OpenAI chat completions API (fetch, as an SDK does): one tool through the
// `tapedeck` client library. Its base URL is read when the module loads, as an SDK client made
// at import time reads it: the test file starts the proxy first.

import { tool } from "tapedeck";

const BASE = process.env.OPENAI_BASE_URL ?? "https://api.openai.com/v1";
const TOOLS = [
  {
    type: "function",
    function: {
      name: "get_weather",
      parameters: { type: "object", properties: { city: { type: "string" } } },
    },
  },
];

export const calls = [];

export const getWeather = tool(
  async ({ city }) => {
    calls.push(city);
    return { city, sky: "sunny" };
  },
  { name: "get_weather" },
);

export async function ask(question) {
  const messages = [{ role: "user", content: question }];
  for (let step = 0; step < 4; step += 1) {
    const response = await fetch(`${BASE}/chat/completions`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${process.env.OPENAI_API_KEY}`,
      },
      body: JSON.stringify({ model: "gpt-test", messages, tools: TOOLS }),
    });
    if (!response.ok) throw new Error(`the model answered ${response.status}: ${await response.text()}`);
    const reply = (await response.json()).choices[0].message;
    if (!reply.tool_calls) return reply.content;
    messages.push(reply);
    for (const call of reply.tool_calls) {
      const result = await getWeather(JSON.parse(call.function.arguments));
      messages.push({ role: "tool", tool_call_id: call.id, content: JSON.stringify(result) });
    }
  }
  throw new Error("no answer after 4 steps");
}
