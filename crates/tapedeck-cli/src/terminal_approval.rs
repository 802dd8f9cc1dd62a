//! The approval prompt on the terminal: a write tool's request on stderr, the answer (y/N) from
//! stdin, recorded as given by `$USER`. The agent library takes any approver; this is the one
//! a person at a terminal gets.

use std::io::IsTerminal;

use serde_json::Value;
use tapedeck_agent::approvals::{ApprovalAnswer, Approver, Prompt, nobody};

/// Who answers writes that no approvals file covers: the person at the terminal when both stdin
/// and stderr are one, else nobody (every such write rejected).
pub fn ask() -> Box<dyn Approver> {
    if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        Box::new(Terminal)
    } else {
        nobody()
    }
}

struct Terminal;

impl Approver for Terminal {
    fn ask(&mut self, tool: &str, args: &Value, key: Option<&str>) -> ApprovalAnswer {
        let by = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .filter(|user| !user.is_empty());
        let stdin = std::io::stdin();
        Prompt::new(stdin.lock(), std::io::stderr())
            .by(by)
            .prompt(tool, args, key)
    }
}
