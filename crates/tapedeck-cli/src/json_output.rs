//! Every JSON document tapedeck writes for scripts (`--json`, `diff --format json`, `golden
//! check --json FILE`) is one object that says what it is: `{"format": "tapedeck-<what>",
//! "version": N, …}`, its content's fields beside the two, a list under a named key.
//!
//! Scripts read these documents long after they were written, so each format's fields are a
//! contract like the tape's: any field added, removed, renamed or retyped bumps that format's
//! `version` here. `tests/cli/json.rs` pins every shape with a snapshot, so a change that
//! forgets the bump fails there.

use serde::Serialize;

/// A kind of JSON document: its name and the version of its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    /// `tapedeck-<what>`.
    pub name: &'static str,
    /// Bumped on any change to the document's fields.
    pub version: u32,
}

/// `ls --json`: `runs`, each a stored run with its `short_id`.
pub const RUNS: Format = Format {
    name: "tapedeck-runs",
    version: 1,
};

/// `show RUN --json`: `short_id`, `summary`, `run`, `tool_spend`, `events`, `blobs`.
pub const RUN: Format = Format {
    name: "tapedeck-run",
    version: 1,
};

/// `stats --json`: `agents`, the monitoring figures of each agent version.
pub const STATS: Format = Format {
    name: "tapedeck-stats",
    version: 1,
};

/// `config check FILE --json`: `fingerprint`, `warnings`, `config`.
pub const CONFIG: Format = Format {
    name: "tapedeck-config",
    version: 1,
};

/// `diff A B --format json`: the run diff.
pub const DIFF: Format = Format {
    name: "tapedeck-diff",
    version: 1,
};

/// `compare --json`: the two groups' tests.
pub const COMPARE: Format = Format {
    name: "tapedeck-compare",
    version: 1,
};

/// `replay RUN --json`: one replay report.
pub const REPLAY: Format = Format {
    name: "tapedeck-replay",
    version: 1,
};

/// `replay --tapes DIR --json`: `replays`, the report of each tape that replayed, in the tapes'
/// order.
pub const REPLAYS: Format = Format {
    name: "tapedeck-replays",
    version: 1,
};

/// `golden check SUITE --json FILE`: `suite` and `tasks`, each task's result.
pub const GOLDEN_CHECK: Format = Format {
    name: "tapedeck-golden-check",
    version: 1,
};

/// A document: the format's name and version, then the content's own fields.
///
/// The content must serialize as an object (a struct or a map): its fields are flattened beside
/// `format` and `version`, which is why a list is always wrapped in a struct that names it.
#[derive(Serialize)]
struct Document<'a, T> {
    format: &'static str,
    version: u32,
    #[serde(flatten)]
    content: &'a T,
}

impl Format {
    /// `content` as this format's document, pretty, ending with a newline.
    pub fn to_text<T: Serialize>(self, content: &T) -> anyhow::Result<String> {
        let document = Document {
            format: self.name,
            version: self.version,
            content,
        };
        Ok(serde_json::to_string_pretty(&document)? + "\n")
    }

    /// Prints `content` as this format's document on stdout.
    pub fn print<T: Serialize>(self, content: &T) -> anyhow::Result<()> {
        anstream::print!("{}", self.to_text(content)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Format; 9] = [
        RUNS,
        RUN,
        STATS,
        CONFIG,
        DIFF,
        COMPARE,
        REPLAY,
        REPLAYS,
        GOLDEN_CHECK,
    ];

    #[test]
    fn names_are_distinct_and_say_tapedeck() {
        let mut names: Vec<&str> = ALL.iter().map(|f| f.name).collect();
        assert!(names.iter().all(|n| n.starts_with("tapedeck-")));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        // The tape's name is taken: a document must never pass for a tape.
        assert!(!names.contains(&"tapedeck-tape"));
    }

    #[test]
    fn format_and_version_come_first() -> anyhow::Result<()> {
        #[derive(Serialize)]
        struct Content {
            items: Vec<u32>,
        }
        let text = RUNS.to_text(&Content { items: vec![1] })?;
        assert!(text.starts_with("{\n  \"format\": \"tapedeck-runs\",\n  \"version\": 1,\n"));
        assert!(text.ends_with("}\n"));
        Ok(())
    }

    #[test]
    fn a_list_without_a_name_is_refused() {
        // A bare list cannot be flattened beside `format` and `version`: it must be named.
        assert!(RUNS.to_text(&vec![1, 2]).is_err());
    }
}
