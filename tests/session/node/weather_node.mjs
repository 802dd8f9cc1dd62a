// The weather agent of golden/weather-py/agent.py in Node, on the official `openai`
// and `@modelcontextprotocol/sdk` packages (installed here: `npm ci` in this folder), with its
// function tools through clients/js/tapedeck.mjs and its MCP server through `tapedeck mcp`.
//
//     node weather_node.mjs [--prompt FILE] [--model MODEL] QUESTION...
//
// Tools: `get_weather({city})` (read) answers the text of the file named by WEATHER_DATA, or
// "sunny"; `create_ticket({title})` (write) appends the title to the file named by TICKETS_FILE
// and answers a ticket id numbered by the file's line count; and mcp-server-time, started as
// `$TAPEDECK_BIN mcp --name time -- python3 -m mcp_server_time` (TAPEDECK_BIN is `tapedeck` by
// default), whose `get_current_time` the model is given. The prompt defaults to
// tests/session/fixtures/prompt.txt.

import { appendFileSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import OpenAI from "openai";

import {
  RecordedToolError,
  ReplayMissError,
  SessionError,
  tool,
} from "../../../clients/js/tapedeck.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const MCP_TOOLS = ["get_current_time"];
const MAX_TURNS = 8;

const getWeather = tool(
  function get_weather({ city }) {
    const path = process.env.WEATHER_DATA;
    if (!path) return "sunny";
    return readFileSync(path, "utf8").trimEnd();
  },
);

const createTicket = tool(
  function create_ticket({ title }) {
    const path = process.env.TICKETS_FILE;
    let count = 1;
    if (path) {
      appendFileSync(path, `${title}\n`);
      count = readFileSync(path, "utf8").split("\n").filter((l) => l !== "").length;
    }
    return { ticket: `T-${count}` };
  },
  { kind: "write" },
);

const LOCAL = { get_weather: getWeather, create_ticket: createTicket };

const LOCAL_SCHEMAS = [
  {
    type: "function",
    function: {
      name: "get_weather",
      description: "The current weather in a city.",
      parameters: {
        type: "object",
        properties: { city: { type: "string" } },
        required: ["city"],
      },
    },
  },
  {
    type: "function",
    function: {
      name: "create_ticket",
      description: "Opens a support ticket and returns its id.",
      parameters: {
        type: "object",
        properties: { title: { type: "string" } },
        required: ["title"],
      },
    },
  },
];

const asText = (value) => (typeof value === "string" ? value : JSON.stringify(value));

// The model sees a failed tool as text; a replayed error reads as the recorded one did.
function failure(e) {
  if (e instanceof RecordedToolError) return `error: ${e.type}: ${e.recordedMessage}`;
  return `error: ${e?.constructor?.name ?? "Error"}: ${e?.message ?? String(e)}`;
}

async function runTool(mcp, name, argumentsText) {
  const args = JSON.parse(argumentsText || "{}");
  if (MCP_TOOLS.includes(name)) {
    const result = await mcp.callTool({ name, arguments: args });
    const text = result.content
      .filter((c) => c.type === "text")
      .map((c) => c.text)
      .join("\n");
    return result.isError ? `error: ${text}` : text;
  }
  const fn = LOCAL[name];
  if (!fn) return `error: no tool named ${name}`;
  try {
    return asText(await fn(args));
  } catch (e) {
    if (e instanceof ReplayMissError || e instanceof SessionError) throw e;
    return failure(e);
  }
}

async function agent(prompt, model, question) {
  const transport = new StdioClientTransport({
    command: process.env.TAPEDECK_BIN || "tapedeck",
    args: ["mcp", "--name", "time", "--", "python3", "-m", "mcp_server_time"],
    // The SDK passes the server a few safe variables only; `tapedeck mcp` needs
    // TAPEDECK_SESSION to join the run.
    env: { ...process.env },
    stderr: "inherit",
  });
  const mcp = new Client({ name: "weather-node", version: "0.1.0" });
  await mcp.connect(transport);
  try {
    const listed = await mcp.listTools();
    const tools = [...LOCAL_SCHEMAS];
    for (const t of listed.tools) {
      if (MCP_TOOLS.includes(t.name)) {
        tools.push({
          type: "function",
          function: { name: t.name, description: t.description ?? "", parameters: t.inputSchema },
        });
      }
    }
    const client = new OpenAI({ maxRetries: 0 });
    const messages = [
      { role: "system", content: prompt },
      { role: "user", content: question },
    ];
    for (let turn = 0; turn < MAX_TURNS; turn++) {
      const response = await client.chat.completions.create({ model, messages, tools });
      const message = response.choices[0].message;
      const calls = message.tool_calls ?? [];
      const said = { role: "assistant", content: message.content ?? null };
      if (calls.length) {
        said.tool_calls = calls.map((c) => ({
          id: c.id,
          type: "function",
          function: { name: c.function.name, arguments: c.function.arguments },
        }));
      }
      messages.push(said);
      if (!calls.length) return message.content ?? "";
      for (const c of calls) {
        const content = await runTool(mcp, c.function.name, c.function.arguments);
        messages.push({ role: "tool", tool_call_id: c.id, content });
      }
    }
    throw new Error(`no final answer after ${MAX_TURNS} model calls`);
  } finally {
    await mcp.close();
  }
}

const { values, positionals } = parseArgs({
  options: {
    prompt: { type: "string", default: join(HERE, "..", "fixtures", "prompt.txt") },
    model: { type: "string", default: "gpt-4o-mini" },
  },
  allowPositionals: true,
});
if (!positionals.length) {
  process.stderr.write("usage: weather_node.mjs [--prompt FILE] [--model MODEL] QUESTION...\n");
  process.exit(2);
}
const prompt = readFileSync(values.prompt, "utf8").trim();
console.log(await agent(prompt, values.model, positionals.join(" ")));
