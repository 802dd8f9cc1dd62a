//! `tapedeck store`: `migrate` creating and upgrading a PostgreSQL store against a real server
//! (tapedeck-testkit's `postgres`), its password from the process's own `PGPASSWORD` or
//! `~/.pgpass`; `spools` listing what writers spooled while their store was down.

use std::os::unix::fs::PermissionsExt as _;

use assert_cmd::Command;
use tapedeck_testkit::{on_both_stores, postgres};

use crate::{Env, fixture, input_error, stdout, tapedeck_in};

/// `tapedeck --store URL store migrate` in `dir`, with none of libpq's variables but `HOME`
/// set to `dir` (so no real `~/.pgpass` is read).
fn migrate(dir: &std::path::Path, url: &str) -> Command {
    let mut cmd = tapedeck_in(dir);
    for var in [
        "PGPASSWORD",
        "PGPASSFILE",
        "PGSSLMODE",
        "PGUSER",
        "PGHOST",
        "PGPORT",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HOME", dir)
        .args(["--store", url, "store", "migrate"]);
    cmd
}

#[test]
fn store_migrate_creates_a_postgres_store_then_finds_it_current() {
    let Some(db) = postgres::database() else {
        return;
    };
    let dir = tempfile::tempdir().expect("a folder");
    let url = db.url();
    assert_eq!(
        stdout(&mut migrate(dir.path(), &url)),
        format!("created the store `{url}` (schema version 3)\n")
    );
    assert_eq!(
        stdout(&mut migrate(dir.path(), &url)),
        format!("the store `{url}` is at schema version 3 already\n")
    );
    assert_eq!(db.psql("SELECT version FROM tapedeck_schema"), "3");
    // Back to schema 2: without schema 3's columns.
    db.psql(
        "ALTER TABLE runs DROP COLUMN lease_until, DROP COLUMN tail;
         ALTER TABLE blobs DROP COLUMN created_at;
         UPDATE tapedeck_schema SET version = 2;",
    );
    assert_eq!(
        stdout(&mut migrate(dir.path(), &url)),
        format!("upgraded the store `{url}` from schema version 2 to 3\n")
    );
    // Every other command reads it, once migrated.
    assert_eq!(
        stdout(tapedeck_in(dir.path()).args(["--store", &url, "ls"])),
        format!("no runs in {url} (record some with `tapedeck demo`)\n")
    );
}

#[test]
fn store_migrate_logs_in_with_pgpassword_or_the_password_file() {
    let Some(db) = postgres::database() else {
        return;
    };
    db.create_role("ci", "hunter2:x");
    let dir = tempfile::tempdir().expect("a folder");
    let url = db.url_as("ci");

    let line = input_error(&mut migrate(dir.path(), &url));
    assert!(
        line.contains("none was given: set PGPASSWORD or add a line to ~/.pgpass"),
        "{line}"
    );
    let line = input_error(migrate(dir.path(), &url).env("PGPASSWORD", "wrong"));
    assert!(
        line.contains("password authentication failed for user \"ci\""),
        "{line}"
    );
    assert!(
        stdout(migrate(dir.path(), &url).env("PGPASSWORD", "hunter2:x"))
            .starts_with("created the store"),
    );

    let pgpass = dir.path().join(".pgpass");
    std::fs::write(
        &pgpass,
        format!("127.0.0.1:{}:*:ci:hunter2\\:x\n", db.port()),
    )
    .expect("write the password file");
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600))
        .expect("make the password file private");
    assert!(stdout(&mut migrate(dir.path(), &url)).contains("at schema version 3 already"));
}

#[test]
fn store_migrate_refuses_a_password_in_the_url_without_repeating_it() {
    let dir = tempfile::tempdir().expect("a folder");
    let line = input_error(&mut migrate(
        dir.path(),
        "postgres://ci:hunter2@127.0.0.1:1/tapedeck",
    ));
    assert!(!line.contains("hunter2"), "{line}");
    assert!(
        line.contains("give it in PGPASSWORD or ~/.pgpass"),
        "{line}"
    );
}

#[test]
fn store_migrate_on_a_file_creates_it() {
    let dir = tempfile::tempdir().expect("a folder");
    let out = stdout(tapedeck_in(dir.path()).args(["--store", "t.db", "store", "migrate"]));
    assert_eq!(out, "created the store `t.db` (schema version 3)\n");
    let out = stdout(tapedeck_in(dir.path()).args(["--store", "t.db", "store", "migrate"]));
    assert_eq!(out, "the store `t.db` is at schema version 3 already\n");
}

on_both_stores! {
    /// A spool (a SQLite file a writer records into while its PostgreSQL store is down) is
    /// listed with what the store still lacks of it, then as merged.
    fn store_spools_lists_what_is_left_to_merge(backend) {
        let env = Env::on(backend);
        stdout(env.tapedeck().arg("import").arg(fixture("tool-denied.jsonl")));
        assert_eq!(
            stdout(env.tapedeck().args(["store", "spools"])),
            "no spools in .tapedeck/spool\n"
        );
        let spool = ".tapedeck/spool/ci-7-1765000000.db";
        stdout(
            tapedeck_in(env.dir.path())
                .args(["--store", spool, "import"])
                .arg(fixture("clean.jsonl"))
                .arg(fixture("tool-denied.jsonl")),
        );
        let out = stdout(env.tapedeck().args(["store", "spools"]));
        assert_eq!(
            out,
            format!(
                "{spool}  2 runs, 1 to merge: tapedeck --store {} merge {spool}\n",
                env.store_arg()
            )
        );
        stdout(env.tapedeck().args(["merge", spool]));
        assert_eq!(
            stdout(env.tapedeck().args(["store", "spools"])),
            format!("{spool}  2 runs, all merged: it can be deleted\n")
        );
    }
}
