//! Logging in as libpq would: the password from `PGPASSWORD` or the password file, `sslmode`,
//! `application_name`.

use std::os::unix::fs::PermissionsExt as _;

use tapedeck_store::StoreError;
use tapedeck_testkit::postgres;

use crate::support::target_with;

const PASSWORD: &str = "s3cret:with\\odd'chars";

/// A password file in a temporary home folder with `lines`, mode `mode`.
fn home_with_pgpass(lines: &str, mode: u32) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join(".pgpass");
    std::fs::write(&file, lines).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    home
}

/// `PASSWORD` as a password file field: `:` and `\` escaped.
fn escaped() -> String {
    PASSWORD.replace('\\', "\\\\").replace(':', "\\:")
}

fn current_user(target: &tapedeck_store::pg::PgTarget) -> String {
    let mut client = target.connect().unwrap();
    client
        .query_one("SELECT current_user::text", &[])
        .unwrap()
        .get(0)
}

fn assert_login_refused(result: Result<::postgres::Client, StoreError>, hint: &str) {
    let Err(error) = result else {
        panic!("logged in without the right password");
    };
    let text = error.to_string();
    assert!(text.contains(hint), "{text}");
}

#[test]
fn pgpassword_logs_in() {
    let Some(db) = postgres::database() else {
        return;
    };
    db.create_role("alice", PASSWORD);
    let target = target_with(&db.url_as("alice"), &[("PGPASSWORD", PASSWORD)]).unwrap();
    assert_eq!(target.password_source(), Some("PGPASSWORD"));
    assert_eq!(current_user(&target), "alice");

    let wrong = target_with(&db.url_as("alice"), &[("PGPASSWORD", "nope")]).unwrap();
    assert_login_refused(
        wrong.connect(),
        "password authentication failed for user \"alice\" (the password came from PGPASSWORD)",
    );
    let none = target_with(&db.url_as("alice"), &[]).unwrap();
    assert_login_refused(
        none.connect(),
        "the server asks for a password and none was given: set PGPASSWORD or add a line to ~/.pgpass",
    );
}

#[test]
fn the_password_file_logs_in_with_the_first_matching_line() {
    let Some(db) = postgres::database() else {
        return;
    };
    db.create_role("alice", PASSWORD);
    let port = db.port();
    let lines = format!(
        "# host:port:database:user:password\n\
         127.0.0.1:{other}:*:alice:wrong-port\n\
         127.0.0.1:{port}:other_db:alice:wrong-db\n\
         *:{port}:*:bob:wrong-user\n\
         127.0.0.1:{port}:*:alice:{pw}\n\
         *:*:*:*:too-late\n",
        other = port.wrapping_add(1),
        pw = escaped()
    );
    let home = home_with_pgpass(&lines, 0o600);
    let home_str = home.path().to_str().unwrap();
    let target = target_with(&db.url_as("alice"), &[("HOME", home_str)]).unwrap();
    assert_eq!(
        target.password_source(),
        Some(home.path().join(".pgpass").to_str().unwrap())
    );
    assert_eq!(current_user(&target), "alice");

    // PGPASSFILE names another file, as in libpq.
    let elsewhere = home_with_pgpass(&format!("*:*:*:alice:{}\n", escaped()), 0o600);
    let file = elsewhere.path().join(".pgpass");
    let target = target_with(
        &db.url_as("alice"),
        &[
            ("HOME", "/nonexistent"),
            ("PGPASSFILE", file.to_str().unwrap()),
        ],
    )
    .unwrap();
    assert_eq!(current_user(&target), "alice");

    // PGPASSWORD comes first, as in libpq: a wrong one is not rescued by the file.
    let target = target_with(
        &db.url_as("alice"),
        &[("HOME", home_str), ("PGPASSWORD", "nope")],
    )
    .unwrap();
    assert_login_refused(
        target.connect(),
        "password authentication failed for user \"alice\" (the password came from PGPASSWORD)",
    );
}

#[test]
fn a_password_file_others_can_read_is_ignored() {
    let Some(db) = postgres::database() else {
        return;
    };
    db.create_role("alice", PASSWORD);
    let home = home_with_pgpass(&format!("*:*:*:alice:{}\n", escaped()), 0o644);
    let target = target_with(
        &db.url_as("alice"),
        &[("HOME", home.path().to_str().unwrap())],
    )
    .unwrap();
    assert_eq!(target.password_source(), None);
    assert_login_refused(
        target.connect(),
        "the server asks for a password and none was given: set PGPASSWORD or add a line to ~/.pgpass",
    );
}

/// Whether the connection to `url` (resolved with `vars`) is encrypted; `Err` with the error
/// when it cannot connect.
fn ssl_in_use(url: &str, vars: &[(&str, &str)]) -> Result<bool, String> {
    let target = target_with(url, vars).map_err(|e| e.to_string())?;
    let mut client = target.connect().map_err(|e| e.to_string())?;
    Ok(client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0))
}

#[test]
fn sslmode_is_honoured_as_libpq_does() {
    let Some(db) = postgres::database() else {
        return;
    };
    let url = db.url();
    let with = |params: &str| format!("{url}?{params}");
    let root = db.root_cert();
    let root = root.to_str().unwrap();
    let other = db.other_root_cert();
    let other = other.to_str().unwrap();
    // The test server offers TLS with a certificate for 127.0.0.1 signed by its test CA.
    assert_eq!(ssl_in_use(&with("sslmode=disable"), &[]), Ok(false));
    assert_eq!(ssl_in_use(&with("sslmode=allow"), &[]), Ok(false));
    assert_eq!(ssl_in_use(&url, &[]), Ok(true), "prefer is the default");
    assert_eq!(ssl_in_use(&with("sslmode=require"), &[]), Ok(true));
    assert_eq!(ssl_in_use(&url, &[("PGSSLMODE", "disable")]), Ok(false));
    assert_eq!(ssl_in_use(&url, &[("PGSSLMODE", "require")]), Ok(true));
    // A root certificate named but unreadable is an error, as in libpq.
    let error = ssl_in_use(
        &with("sslmode=require"),
        &[("PGSSLROOTCERT", "/nonexistent")],
    )
    .expect_err("an unreadable root certificate");
    assert!(
        error.contains("cannot read the root certificate"),
        "{error}"
    );
    assert_eq!(
        ssl_in_use(
            &with(&format!("sslmode=verify-full&sslrootcert={root}")),
            &[]
        ),
        Ok(true)
    );
    assert_eq!(
        ssl_in_use(&with("sslmode=verify-full"), &[("PGSSLROOTCERT", root)]),
        Ok(true)
    );
    // A root that did not sign the server's certificate.
    for mode in ["verify-ca", "verify-full", "require"] {
        let error = ssl_in_use(&with(&format!("sslmode={mode}&sslrootcert={other}")), &[])
            .expect_err("an unknown issuer is refused");
        assert!(
            error.contains("not signed by the root certificate") || error.contains("UnknownIssuer"),
            "{mode}: {error}"
        );
    }
    // The certificate names 127.0.0.1, not localhost: verify-ca passes, verify-full does not.
    let localhost = url.replace("127.0.0.1", "localhost");
    let local = |params: &str| format!("{localhost}?{params}");
    assert_eq!(
        ssl_in_use(
            &local(&format!("sslmode=verify-ca&sslrootcert={root}")),
            &[]
        ),
        Ok(true)
    );
    let error = ssl_in_use(
        &local(&format!("sslmode=verify-full&sslrootcert={root}")),
        &[],
    )
    .expect_err("the host name is checked");
    assert!(
        error.contains("not valid for name") || error.contains("NotValidForName"),
        "{error}"
    );
    // The verifying modes need a root certificate.
    let error = ssl_in_use(&with("sslmode=verify-full"), &[("HOME", "/nonexistent")])
        .expect_err("no root certificate");
    assert!(error.contains("needs a root certificate"), "{error}");
    // A root certificate in ~/.postgresql/root.crt is found, as in libpq.
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".postgresql")).unwrap();
    std::fs::copy(db.root_cert(), home.path().join(".postgresql/root.crt")).unwrap();
    assert_eq!(
        ssl_in_use(
            &with("sslmode=verify-full"),
            &[("HOME", home.path().to_str().unwrap())]
        ),
        Ok(true)
    );
}

#[test]
fn the_application_name_is_tapedeck_unless_given() {
    let Some(db) = postgres::database() else {
        return;
    };
    let name = |url: &str, vars: &[(&str, &str)]| -> String {
        let mut client = target_with(url, vars).unwrap().connect().unwrap();
        client
            .query_one("SELECT current_setting('application_name')", &[])
            .unwrap()
            .get(0)
    };
    assert_eq!(name(&db.url(), &[]), "tapedeck");
    assert_eq!(
        name(&db.url(), &[("PGAPPNAME", "proxy-eu-1")]),
        "proxy-eu-1"
    );
    assert_eq!(
        name(&format!("{}?application_name=ci-runner-3", db.url()), &[]),
        "ci-runner-3"
    );
}

#[test]
fn a_client_certificate_logs_in_where_the_server_asks_for_one() {
    let Some(db) = postgres::database() else {
        return;
    };
    let user = postgres::CERT_USER;
    db.create_role(user, "not-this-way");
    let dir = tempfile::tempdir().unwrap();
    let (crt, key) = db.client_certificate(user, dir.path());
    let (crt, key) = (crt.to_str().unwrap(), key.to_str().unwrap());
    let root = db.root_cert();
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        db.url_as(user),
        root.display()
    );

    // From the URL, and from PGSSLCERT / PGSSLKEY.
    let target = target_with(&format!("{url}&sslcert={crt}&sslkey={key}"), &[]).unwrap();
    assert_eq!(current_user(&target), user);
    let target = target_with(&url, &[("PGSSLCERT", crt), ("PGSSLKEY", key)]).unwrap();
    assert_eq!(current_user(&target), user);
    // From ~/.postgresql/postgresql.crt and .key, as libpq looks for them.
    let home = tempfile::tempdir().unwrap();
    let dot = home.path().join(".postgresql");
    std::fs::create_dir(&dot).unwrap();
    std::fs::copy(crt, dot.join("postgresql.crt")).unwrap();
    std::fs::copy(key, dot.join("postgresql.key")).unwrap();
    let home_str = home.path().to_str().unwrap();
    let target = target_with(&url, &[("HOME", home_str)]).unwrap();
    assert_eq!(current_user(&target), user);

    // Without one, the server refuses the login.
    let target = target_with(&url, &[]).unwrap();
    assert_login_refused(target.connect(), "certificate");
    // A key others can read is refused before connecting, as libpq refuses it.
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let error = target_with(&url, &[("PGSSLCERT", crt), ("PGSSLKEY", key)]).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("can be read by others (mode 644): `chmod 600` it"),
        "{error}"
    );
    let error = target_with(&format!("{url}&sslcert={crt}.missing"), &[]).unwrap_err();
    assert!(
        error.to_string().contains(".crt.missing does not exist"),
        "{error}"
    );
}

#[test]
fn sslrootcert_system_trusts_the_system_roots_and_checks_the_host_name() {
    let Some(db) = postgres::database() else {
        return;
    };
    // The test server's certificate is signed by a test CA no system trusts.
    let url = format!("{}?sslrootcert=system", db.url());
    let target = target_with(&url, &[]).unwrap();
    assert_eq!(target.ssl_mode(), tapedeck_store::pg::PgSslMode::VerifyFull);
    assert_login_refused(target.connect(), "UnknownIssuer");
    // Weaker modes would accept any certificate a public authority signed, for any name.
    let error = target_with(&format!("{url}&sslmode=require"), &[]).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("sslrootcert=system needs sslmode=verify-full, not require"),
        "{error}"
    );
}
