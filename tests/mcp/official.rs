//! The official `mcp` Python client against tapedeck: a registry server (`mcp-server-time`)
//! recorded and replayed, across protocol eras, and the fake server's own messages
//! (logging, roots, sampling) in a replay.

use serde_json::json;
use tapedeck_testkit::on_both_stores;

use super::*;

on_both_stores! {
    fn the_official_python_client_records_and_replays_mcp_server_time(backend) {
        if !require_mcp_server_time() {
            return;
        }
        let env = Env::new();
        std::fs::write(env.path("client.py"), TIME_CLIENT).expect("the client script");
        let (live, stderr) =
            env.python_client(&["mcp", "record", "--", "python3", "-m", "mcp_server_time"]);
        assert_eq!(live["tools"], json!(["convert_time", "get_current_time"]));
        let run = run_id_of(&stderr, "recorded MCP run ");
        let events = event_list(&env.show(&run));
        assert!(
            events
                .iter()
                .any(|(k, d)| k == "tool_call" && d["tool"] == json!("get_current_time")),
            "{events:?}"
        );
        assert!(events.iter().any(|(k, _)| k == "tool_result"));
        // The replay answers with the recorded time: the output is the same.
        let (replayed, _) = env.python_client(&["mcp", "replay", &run]);
        assert_eq!(replayed, live);
    }
}

/// The official client of either era: `MCP_ERA=discover` probes with `server/discover` (the
/// 2026-07-28 era), anything else starts with the `initialize` handshake.
const ERA_CLIENT: &str = r#"import asyncio, json, os, sys
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

async def main():
    params = StdioServerParameters(command=sys.argv[1], args=sys.argv[2:])
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            if os.environ.get("MCP_ERA") == "discover":
                await session.discover()
            else:
                await session.initialize()
            tools = await session.list_tools()
            result = await session.call_tool("get_current_time", {"timezone": "UTC"})
            print(json.dumps({
                "version": session.protocol_version,
                "server": session.server_info.name,
                "tools": sorted(t.name for t in tools.tools),
                "time": [c.text for c in result.content if c.type == "text"],
            }))

asyncio.run(main())
"#;

#[test]
fn the_official_handshake_client_replays_a_discovery_era_recording_of_mcp_server_time() {
    if !require_mcp_server_time() {
        return;
    }
    let env = Env::new();
    std::fs::write(env.path("client.py"), ERA_CLIENT).expect("the client script");
    let (live, stderr) = env.python_client_with(
        &["mcp", "record", "--", "python3", "-m", "mcp_server_time"],
        &[("MCP_ERA", "discover")],
    );
    assert_eq!(live["version"], json!("2026-07-28"));
    let run = run_id_of(&stderr, "recorded MCP run ");
    let methods: Vec<String> = event_list(&env.show(&run))
        .into_iter()
        .filter_map(|(_, d)| d["method"].as_str().map(str::to_owned))
        .collect();
    assert!(
        methods.iter().any(|m| m == "server/discover")
            && !methods.iter().any(|m| m == "initialize"),
        "{methods:?}"
    );
    let (replayed, stderr) =
        env.python_client_with(&["mcp", "replay", &run], &[("MCP_ERA", "initialize")]);
    assert!(
        stderr.contains(&format!("replayed MCP run {run}")),
        "{stderr}"
    );
    // The SDK's own handshake version, the server's name from the discovery, the same tools
    // and the recorded time.
    assert_eq!(replayed["version"], json!("2025-11-25"));
    assert_eq!(replayed["server"], live["server"]);
    assert_eq!(replayed["tools"], live["tools"]);
    assert_eq!(replayed["time"], live["time"]);
}

const CALLBACK_CLIENT: &str = r#"import asyncio, json, os, sys
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client

logs, asked = [], []

async def on_log(params):
    logs.append(params.data)

async def sample(context, params):
    asked.append("sampling")
    return types.CreateMessageResult(
        role="assistant", model="test-model", stopReason="endTurn",
        content=types.TextContent(type="text", text="it is short"))

async def roots(context):
    asked.append("roots")
    return types.ListRootsResult(roots=[types.Root(uri="file:///work", name="work")])

async def main():
    params = StdioServerParameters(command=sys.argv[1], args=sys.argv[2:], env=dict(os.environ))
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write, sampling_callback=sample,
                                 list_roots_callback=roots, logging_callback=on_log) as session:
            await session.initialize()
            result = await session.call_tool("summarize", {"text": "a long text"})
            print(json.dumps({"logs": logs, "asked": sorted(asked),
                              "result": [c.text for c in result.content if c.type == "text"]}))

asyncio.run(main())
"#;

#[test]
fn the_official_python_client_gets_the_servers_own_messages_in_replay() {
    if !tapedeck_testkit::clients::require(
        "the mcp Python client",
        tapedeck_testkit::clients::python_imports("mcp"),
        "python3 -m pip install mcp",
    ) {
        return;
    }
    let env = Env::new();
    std::fs::write(env.path("client.py"), CALLBACK_CLIENT).expect("the client script");
    let (live, stderr) = env.python_client(&["mcp", "record", "--", "python3", "server.py"]);
    assert_eq!(
        live,
        json!({
            "logs": ["starting", "roots: file:///work", "summarizing"],
            "asked": ["roots", "sampling"],
            "result": ["summary: it is short"],
        })
    );
    let run = run_id_of(&stderr, "recorded MCP run ");
    std::fs::remove_file(env.path("server.py")).expect("the server is removed");
    let (replayed, _) = env.python_client(&["mcp", "replay", &run]);
    assert_eq!(replayed, live);
}
