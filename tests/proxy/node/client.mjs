// The client of tests/proxy/node.rs, on the official `openai` npm package: asks about the
// weather, runs the `get_weather` tool the model asks for, sends the result back, and prints
// every assistant turn as a JSON line. argv[2] is `stream` or `plain`.
import OpenAI from "openai";

const stream = process.argv[2] === "stream";
const client = new OpenAI({ maxRetries: 0 });
const messages = [{ role: "user", content: "Weather in Paris?" }];
const tools = [
  {
    type: "function",
    function: {
      name: "get_weather",
      parameters: { type: "object", properties: { city: { type: "string" } } },
    },
  },
];

async function call() {
  if (stream) {
    const s = await client.chat.completions.create({
      model: "gpt-test",
      messages,
      tools,
      stream: true,
      stream_options: { include_usage: true },
    });
    let content = "";
    let finish = null;
    const calls = new Map();
    for await (const chunk of s) {
      if (!chunk.choices.length) continue;
      const d = chunk.choices[0].delta;
      content += d.content ?? "";
      for (const tc of d.tool_calls ?? []) {
        const c = calls.get(tc.index) ?? { id: null, name: "", arguments: "" };
        c.id = tc.id ?? c.id;
        c.name += tc.function?.name ?? "";
        c.arguments += tc.function?.arguments ?? "";
        calls.set(tc.index, c);
      }
      finish = chunk.choices[0].finish_reason ?? finish;
    }
    const ordered = [...calls.keys()].sort((a, b) => a - b).map((k) => calls.get(k));
    return { content, calls: ordered, finish };
  }
  const r = await client.chat.completions.create({ model: "gpt-test", messages, tools });
  const m = r.choices[0].message;
  const calls = (m.tool_calls ?? []).map((c) => ({
    id: c.id,
    name: c.function.name,
    arguments: c.function.arguments,
  }));
  return { content: m.content ?? "", calls, finish: r.choices[0].finish_reason };
}

for (let i = 0; i < 4; i++) {
  const { content, calls, finish } = await call();
  console.log(JSON.stringify({ content, calls, finish }));
  if (!calls.length) break;
  messages.push({
    role: "assistant",
    content: content || null,
    tool_calls: calls.map((c) => ({
      id: c.id,
      type: "function",
      function: { name: c.name, arguments: c.arguments },
    })),
  });
  for (const c of calls) {
    messages.push({ role: "tool", tool_call_id: c.id, content: JSON.stringify({ temp_c: 21 }) });
  }
}
