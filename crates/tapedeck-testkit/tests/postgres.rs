//! The throwaway PostgreSQL server: it starts, listens on 127.0.0.1 only, gives each test a
//! database of its own, asks every role but the superuser for a password, and is gone once the
//! last database using it drops.

#![expect(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use tapedeck_testkit::postgres;

#[test]
fn each_test_database_is_its_own() {
    let Some(a) = postgres::database() else {
        return;
    };
    let Some(b) = postgres::database() else {
        return;
    };
    assert_ne!(a.name(), b.name());
    assert_eq!(a.port(), b.port(), "one server per process, shared");
    a.psql("CREATE TABLE only_in_a (x int); INSERT INTO only_in_a VALUES (7);");
    assert_eq!(a.psql("SELECT x FROM only_in_a"), "7");
    assert_eq!(
        b.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"),
        "0"
    );
    assert_eq!(a.psql("SHOW server_encoding"), "UTF8");
}

#[test]
fn the_server_listens_on_loopback_only_and_as_postgres() {
    let Some(db) = postgres::database() else {
        return;
    };
    assert_eq!(db.psql("SHOW listen_addresses"), "127.0.0.1");
    assert_eq!(db.psql("SHOW unix_socket_directories"), "");
    assert_eq!(db.psql("SHOW ssl"), "on");
    assert!(db.root_cert().is_file() && db.other_root_cert().is_file());
    assert!(
        db.url()
            .starts_with(&format!("postgres://postgres@127.0.0.1:{}/", db.port()))
    );
    // PostgreSQL refuses to run as root: as root, the tests run it as `postgres`.
    let server_pid = db.psql("SELECT pg_backend_pid()");
    let status = std::fs::read_to_string(format!("/proc/{server_pid}/status")).unwrap_or_default();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap_or("");
    assert!(
        !uid_line.split_whitespace().skip(1).any(|uid| uid == "0"),
        "the server runs as root: {uid_line}"
    );
}

#[test]
fn a_role_other_than_the_superuser_needs_its_password() {
    let Some(db) = postgres::database() else {
        return;
    };
    // Not `alice`: the store's tests log in as her with another password, and a test run's
    // server, roles included, is shared.
    db.create_role("carol", "s3cret'pw");
    let rules =
        db.psql("SELECT type, user_name, auth_method FROM pg_hba_file_rules ORDER BY line_number");
    assert_eq!(
        rules, "host|{postgres}|trust\nhostssl|{tlsclient}|cert\nhost|{all}|scram-sha-256",
        "pg_hba.conf"
    );
    assert_eq!(
        db.psql(&format!(
            "SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{}'",
            db.name()
        )),
        "carol"
    );
}

#[test]
fn the_server_stops_and_its_folder_goes_on_drop() {
    let bindir = postgres::find_bindir();
    if !tapedeck_testkit::clients::require("PostgreSQL", bindir.is_some(), postgres::INSTALL) {
        return;
    }
    let server = postgres::PgServer::start(bindir.unwrap());
    let (port, dir) = (server.port(), server.dir().to_path_buf());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    assert!(dir.join("data").join("PG_VERSION").is_file());
    drop(server);
    assert!(
        !dir.exists(),
        "the server's folder {} is left",
        dir.display()
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the server still listens on {port}"
    );
}

#[test]
fn a_server_of_its_own_stops_at_once_and_starts_again_with_its_data() {
    let bindir = postgres::find_bindir();
    if !tapedeck_testkit::clients::require("PostgreSQL", bindir.is_some(), postgres::INSTALL) {
        return;
    }
    let server = postgres::PgServer::start(bindir.unwrap());
    let url = server.create_database("kept");
    assert!(url.ends_with(&format!(":{}/kept", server.port())), "{url}");
    server.psql("kept", "CREATE TABLE t (x int); INSERT INTO t VALUES (7);");
    server.stop_immediately();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", server.port())).is_err(),
        "stopped"
    );
    server.start_again();
    assert_eq!(server.psql("kept", "SELECT x FROM t"), "7");
}

/// Set in the child process of the test below: start a server, say where it is, then wait to
/// be killed.
const CHILD: &str = "TAPEDECK_TEST_PG_KILLED_CHILD";

#[test]
fn a_killed_test_process_leaves_no_server_behind() {
    if std::env::var_os(CHILD).is_some() {
        let Some(db) = postgres::database() else {
            return;
        };
        println!("{} {}", db.port(), db.server_dir().display());
        std::thread::sleep(std::time::Duration::from_secs(60));
        return;
    }
    if !tapedeck_testkit::clients::require(
        "PostgreSQL",
        postgres::find_bindir().is_some(),
        postgres::INSTALL,
    ) {
        return;
    }
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_killed_test_process_leaves_no_server_behind",
            "--nocapture",
        ])
        .env(CHILD, "1")
        // A server of its own, not the test run's.
        .env_remove(postgres::SHARED_SERVER)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (port, dir) = loop {
        let line = lines
            .next()
            .expect("the child says where its server is")
            .unwrap();
        if let Some((port, dir)) = line.split_once(' ')
            && let Ok(port) = port.parse::<u16>()
        {
            break (port, std::path::PathBuf::from(dir));
        }
    };
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    child.kill().unwrap();
    child.wait().unwrap();
    // The watchdog looks once a second, then stops the server and removes its folder.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while (dir.exists() || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        !dir.exists(),
        "the server's folder {} is left",
        dir.display()
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "a server still listens on {port}"
    );
}
