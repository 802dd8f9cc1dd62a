//! A client's command line as a person reads it: [`quote`] writes its words back as one line
//! that a POSIX shell splits into the same words (a run's default input), [`split`] reads such a
//! line into its words (`golden check --command "…"`), [`agent_name`] names the agent a
//! command runs (a run's default agent name), and [`check_program`] refuses a command that
//! cannot start before anything is recorded.

use std::borrow::Cow;
use std::path::Path;

/// Why a client or server command cannot start.
#[derive(Debug, thiserror::Error)]
pub enum CommandLineError {
    /// There is no command at all.
    #[error("no command to run: pass it after `--`")]
    Empty,
    /// The program is neither an executable file nor a command on `PATH`.
    #[error("cannot {start} `{program}`: {}", if program.contains('/') { "no such executable file" } else { "no such command on PATH" })]
    NotFound {
        /// What starting it was for: "run", "start the MCP server".
        start: String,
        /// The program as given.
        program: String,
    },
}

/// Checks that the program of a client or server command can be run — a path to an executable
/// file, or a name found on `PATH` — so a typo is an input error rather than a recorded run that
/// failed.
///
/// `start` says what failing to start it is: "run" (`cannot run `X``), "start the MCP server".
pub fn check_program(command: &[String], start: &str) -> Result<(), CommandLineError> {
    let Some(program) = command.first() else {
        return Err(CommandLineError::Empty);
    };
    let found = if program.contains('/') {
        is_executable(Path::new(program))
    } else {
        std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|dir| is_executable(&dir.join(program)))
        })
    };
    if found {
        Ok(())
    } else {
        Err(CommandLineError::NotFound {
            start: start.to_owned(),
            program: program.clone(),
        })
    }
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

/// The words of a command as one line a POSIX shell reads back as the same words: a word of
/// only safe characters (letters, digits and `@%+=:,./-_`, as Python's `shlex.quote`) as it is,
/// any other in single quotes, a single quote in it written `'\''`.
pub fn quote(words: &[String]) -> String {
    words
        .iter()
        .map(|w| quote_word(w))
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote_word(word: &str) -> Cow<'_, str> {
    let safe = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        Cow::Borrowed(word)
    } else {
        Cow::Owned(format!("'{}'", word.replace('\'', r"'\''")))
    }
}

/// The name of the agent a command runs when `--name` is not given: the name `tapedeck mcp`
/// gives a server ([`crate::mcp::default_server_name`]: `agent` for `python agent.py`,
/// `node agent.mjs` or `uv run agent.py`, the module of `python -m MODULE`, else the program's
/// file name); `agent` for no command at all.
pub fn agent_name(command: &[String]) -> String {
    crate::mcp::default_server_name(command).unwrap_or_else(|| "agent".to_owned())
}

/// The words of a command line as a POSIX shell splits it, for the quoting a person types:
/// blanks separate words, `'…'` keeps everything, `"…"` keeps everything but `\"`, `\\`, `\$`
/// and `` \` ``, a backslash outside quotes keeps the next character. No expansion of any kind.
pub fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err(format!("`{line}`: a single quote is not closed")),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err(format!("`{line}`: a double quote is not closed")),
                        },
                        Some(c) => w.push(c),
                        None => return Err(format!("`{line}`: a double quote is not closed")),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err(format!("`{line}`: it ends with a lone backslash")),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(ws: &[&str]) -> Vec<String> {
        ws.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn safe_words_stay_bare_and_others_are_single_quoted() {
        assert_eq!(
            quote(&words(&[
                "python3",
                "agent.py",
                "--city=Paris",
                "a,b:c@d%e+f"
            ])),
            "python3 agent.py --city=Paris a,b:c@d%e+f"
        );
        assert_eq!(
            quote(&words(&[
                "echo", "", "a b", "$HOME", "*.py", "~/x", "naïve"
            ])),
            "echo '' 'a b' '$HOME' '*.py' '~/x' 'naïve'"
        );
        assert_eq!(
            quote(&words(&["python3", "-c", "print('hi')"])),
            r"python3 -c 'print('\''hi'\'')'"
        );
        assert_eq!(quote(&words(&["a\nb"])), "'a\nb'");
    }

    /// What a shell makes of the quoted line is the words it was made of.
    #[cfg(unix)]
    #[test]
    fn a_shell_splits_the_line_into_the_same_words() {
        let cases = [
            words(&["python3", "-c", "print('it''s \"quoted\"')", "x y"]),
            words(&[
                "",
                "'",
                "''",
                "\\",
                "$(rm -rf /)",
                "`id`",
                "a\nb\tc",
                "!",
                "#c",
            ]),
        ];
        for argv in cases {
            let line = format!("printf '%s\\0' {}", quote(&argv));
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&line)
                .output()
                .expect("sh runs");
            let text = String::from_utf8(out.stdout).expect("UTF-8");
            let back: Vec<&str> = text.split_terminator('\0').collect();
            assert_eq!(back, argv, "{line}");
        }
    }

    #[test]
    fn the_agent_is_named_as_an_mcp_server_is() {
        let name = |ws: &[&str]| agent_name(&words(ws));
        assert_eq!(name(&["python3", "agent.py"]), "agent");
        assert_eq!(name(&["node", "agent.mjs"]), "agent");
        assert_eq!(name(&["uv", "run", "agent.py"]), "agent");
        assert_eq!(name(&["python3", "-m", "support.bot"]), "support.bot");
        assert_eq!(name(&["/usr/local/bin/my-agent", "run"]), "my-agent");
        assert_eq!(name(&[]), "agent");
    }

    #[test]
    fn split_reads_what_quote_writes() {
        for ws in [
            &[
                "python",
                "agent.py",
                "--question",
                "What's the weather in Paris?",
            ][..],
            &["node", "a b.mjs", "", "x\"y", "back\\slash", "$HOME"],
        ] {
            let ws = words(ws);
            assert_eq!(split(&quote(&ws)).as_deref(), Ok(&ws[..]));
        }
        assert_eq!(
            split(r#"python agent.py --model "gpt 5" it\'s"#),
            Ok(words(&["python", "agent.py", "--model", "gpt 5", "it's"]))
        );
        assert!(split("python 'open").is_err());
        assert!(split("python \"open").is_err());
    }
}
