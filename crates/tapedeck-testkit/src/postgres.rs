//! A throwaway PostgreSQL server for tests: [`database`] gives a test a database of its own
//! ([`TestDb`]) on a server that [`PgServer`] started in a temporary folder.
//!
//! The server is Debian's `postgresql` package (its binaries live in
//! `/usr/lib/postgresql/<version>/bin`, off `PATH`): `initdb` into a temporary folder, then
//! `pg_ctl start` listening on a free port of 127.0.0.1 only (no Unix socket). PostgreSQL
//! refuses to run as root, so when the test runs as root the folder is given to the `postgres`
//! user and the server runs as that user (`runuser -u postgres --`).
//!
//! Under nextest, one server serves the whole test run: the setup script
//! `tapedeck-test-postgres` (`.config/nextest.toml`) starts it before the tests and names its
//! folder in [`SHARED_SERVER`]; a watchdog stops it when nextest exits. Without that variable
//! (`cargo test`, or a test that wants a server of its own), one server per test process is
//! shared by its tests, stopped when the last [`TestDb`] using it drops, and by a watchdog if the
//! test process is killed first. Each test's database is created from the template
//! [`TEMPLATE`], so it is empty and isolated from the others.
//!
//! TLS is on, with a certificate for `127.0.0.1` signed by a test CA ([`TestDb::root_cert`]),
//! so clients' `sslmode` handling can be checked.
//!
//! Authentication: the superuser `postgres` connects from 127.0.0.1 without a password (what
//! [`TestDb::url`] uses); every other role must give its password (`scram-sha-256`), so a test
//! can check that a client sends the one from `PGPASSWORD` or `~/.pgpass`
//! ([`TestDb::create_role`]).
//!
//! A machine without PostgreSQL fails the test with the command that installs it, unless
//! `TAPEDECK_SKIP_REAL_CLIENTS=1` (see [`crate::clients::require`]).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// The command that installs the server (`.ci/test` runs it when `initdb` is missing).
pub const INSTALL: &str = "apt-get install -y postgresql";

/// The database every test database is copied from: empty, UTF-8, C collation.
pub const TEMPLATE: &str = "tapedeck_template";

/// The superuser the tests connect as.
pub const SUPERUSER: &str = "postgres";

/// The role that logs in with a client certificate instead of a password (`cert` in
/// `pg_hba.conf`, over TLS only): [`TestDb::client_certificate`] makes one for it.
pub const CERT_USER: &str = "tlsclient";

/// The environment variable naming the folder of a server started for a whole test run
/// ([`PgServer::start_for_run`]), which test processes then share.
pub const SHARED_SERVER: &str = "TAPEDECK_TEST_POSTGRES";

/// A database of its own for one test, on the process's shared server. Dropping it drops the
/// database (and stops the server when no other test uses it).
pub struct TestDb {
    server: Arc<PgServer>,
    name: String,
}

impl TestDb {
    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/NAME`: the superuser, who needs no password.
    pub fn url(&self) -> String {
        self.url_as(SUPERUSER)
    }

    /// The same database as `user`, with no password in the URL.
    pub fn url_as(&self, user: &str) -> String {
        format!(
            "postgres://{user}@127.0.0.1:{}/{}",
            self.server.port, self.name
        )
    }

    /// Creates a login role that must authenticate with `password` and owns this database.
    ///
    /// Roles belong to the server, not to a database, and a test run's server is shared: a role
    /// another test created already is kept as it is, password included, so tests that share a
    /// role name give it the same password.
    pub fn create_role(&self, user: &str, password: &str) {
        let quoted = password.replace('\'', "''");
        self.server.psql(
            "postgres",
            &format!(
                "DO $role$ BEGIN
                     CREATE ROLE \"{user}\" LOGIN PASSWORD '{quoted}';
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
                 END $role$;
                 ALTER DATABASE \"{name}\" OWNER TO \"{user}\";
                 GRANT ALL ON SCHEMA public TO \"{user}\";",
                name = self.name
            ),
        );
        // `public` belongs to the database (a copy of the template): hand it over too.
        self.server.psql(
            &self.name,
            &format!("ALTER SCHEMA public OWNER TO \"{user}\";"),
        );
    }

    /// Runs SQL through `psql` as the superuser in this database; returns what it printed
    /// (unaligned, tuples only), for checks the API under test does not expose.
    pub fn psql(&self, sql: &str) -> String {
        self.server.psql(&self.name, sql)
    }

    /// The root certificate the server's TLS certificate is signed by (it names `127.0.0.1`
    /// only, so `localhost` passes `sslmode=verify-ca` but not `verify-full`).
    pub fn root_cert(&self) -> PathBuf {
        self.server.root_cert()
    }

    /// A root certificate that did not sign the server's.
    pub fn other_root_cert(&self) -> PathBuf {
        self.server.other_root_cert()
    }

    /// A client certificate for `user` signed by the server's CA (which the server trusts for
    /// [`CERT_USER`]'s `cert` logins), and its key (mode 0600), written into `dir`: returns
    /// their paths.
    pub fn client_certificate(&self, user: &str, dir: &Path) -> (PathBuf, PathBuf) {
        self.server.client_certificate(user, dir)
    }

    /// The server's folder (its data directory and log), for a test that wants to read the log.
    pub fn server_dir(&self) -> &Path {
        &self.server.dir
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // WITH (FORCE): a connection the test leaked must not keep the database alive.
        let _ = self.server.try_psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        );
    }
}

/// Whether PostgreSQL is installed; when it is not, the test fails naming [`INSTALL`] unless
/// `TAPEDECK_SKIP_REAL_CLIENTS=1` (then `false`: the test returns at once).
pub fn available() -> bool {
    crate::clients::require(
        "PostgreSQL (initdb, pg_ctl)",
        find_bindir().is_some(),
        INSTALL,
    )
}

/// A database of its own on this process's server, starting the server if none runs; `None`
/// when PostgreSQL is missing and `TAPEDECK_SKIP_REAL_CLIENTS=1` (the test returns at once).
///
/// # Panics
///
/// When PostgreSQL is missing (naming [`INSTALL`]) or the server cannot start (with its log).
pub fn database() -> Option<TestDb> {
    let bindir = find_bindir();
    if !crate::clients::require("PostgreSQL (initdb, pg_ctl)", bindir.is_some(), INSTALL) {
        return None;
    }
    let server = shared_server(bindir.expect("checked above"));
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    server.psql(
        "postgres",
        &format!("CREATE DATABASE \"{name}\" TEMPLATE {TEMPLATE}"),
    );
    Some(TestDb { server, name })
}

fn shared_server(bindir: PathBuf) -> Arc<PgServer> {
    static SHARED: Mutex<Weak<PgServer>> = Mutex::new(Weak::new());
    let mut shared = SHARED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(server) = shared.upgrade() {
        return server;
    }
    let server = Arc::new(match std::env::var_os(SHARED_SERVER) {
        Some(dir) => PgServer::attach(bindir, PathBuf::from(dir)),
        None => PgServer::start(bindir),
    });
    *shared = Arc::downgrade(&server);
    server
}

/// The folder of `initdb`, `pg_ctl` and `psql`: Debian's `/usr/lib/postgresql/<version>/bin`,
/// newest version first, else the folder `initdb` on `PATH` links to.
pub fn find_bindir() -> Option<PathBuf> {
    let has_tools = |dir: &Path| {
        ["initdb", "pg_ctl", "psql"]
            .iter()
            .all(|tool| dir.join(tool).is_file())
    };
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| has_tools(bin))
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .filter_map(|dir| std::fs::canonicalize(dir.join("initdb")).ok())
        .filter_map(|initdb| initdb.parent().map(Path::to_path_buf))
        .find(|dir| has_tools(dir))
}

/// A PostgreSQL server in a temporary folder, on 127.0.0.1; stopped and removed on drop, unless
/// it is a test run's ([`PgServer::attach`]).
pub struct PgServer {
    dir: PathBuf,
    /// The folder, removed on drop, when this process started the server.
    owned: Option<tempfile::TempDir>,
    bindir: PathBuf,
    port: u16,
    /// `Some("postgres")` when this process is root: the server's commands run as that user.
    run_as: Option<String>,
}

impl PgServer {
    /// `initdb` into a new temporary folder and start the server on a free port; the template
    /// database [`TEMPLATE`] is created.
    ///
    /// # Panics
    ///
    /// When a step fails: the message holds the command's output or the server's log.
    pub fn start(bindir: PathBuf) -> Self {
        let server = Self::launch(bindir);
        server.watch(std::process::id());
        server
    }

    /// [`PgServer::start`] without a watchdog.
    fn launch(bindir: PathBuf) -> Self {
        let run_as = rustix::process::geteuid()
            .is_root()
            .then(|| SUPERUSER.to_owned());
        let dir = tempfile::Builder::new()
            .prefix("tapedeck-pg-")
            .tempdir()
            .expect("create the server's folder");
        if run_as.is_some() {
            // The server's user must own its folder; the temporary folder is root's, 0700.
            let (uid, gid) = postgres_ids();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("give the server's folder to the postgres user");
        }
        let mut server = Self {
            dir: dir.path().to_path_buf(),
            owned: Some(dir),
            bindir,
            port: 0,
            run_as,
        };
        let data = server.data_dir();
        server.run_tool(
            "initdb",
            &[
                "--pgdata",
                path_str(&data),
                "--username",
                SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
            ],
        );
        server.make_certificates();
        // The superuser without a password, everyone else with one; TCP on 127.0.0.1 only.
        server.write_as_owner(
            &data.join("pg_hba.conf"),
            &format!(
                "host all postgres 127.0.0.1/32 trust\n\
                 hostssl all {CERT_USER} 127.0.0.1/32 cert\n\
                 host all all 127.0.0.1/32 scram-sha-256\n"
            ),
        );
        // A port can be taken between finding it free and the server binding it (another
        // test process starting its own server): try a few.
        let mut last_log = String::new();
        for _ in 0..5 {
            server.port = free_port();
            server.write_as_owner(
                &data.join("postgresql.auto.conf"),
                &format!(
                    "listen_addresses = '127.0.0.1'\n\
                     port = {}\n\
                     unix_socket_directories = ''\n\
                     password_encryption = 'scram-sha-256'\n\
                     ssl = on\n\
                     ssl_cert_file = 'server.crt'\n\
                     ssl_key_file = 'server.key'\n\
                     ssl_ca_file = 'ca.crt'\n\
                     max_connections = 200\n\
                     fsync = off\n\
                     synchronous_commit = off\n\
                     full_page_writes = off\n",
                    server.port
                ),
            );
            let log = server.dir.join("server.log");
            let started = server
                .tool_command("pg_ctl")
                .args(["--pgdata", path_str(&data), "--log", path_str(&log)])
                .args(["--wait", "--timeout", "60", "start"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if started {
                server.psql(
                    "postgres",
                    &format!("CREATE DATABASE {TEMPLATE} TEMPLATE template0 ENCODING 'UTF8'"),
                );
                return server;
            }
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
        }
        panic!(
            "PostgreSQL did not start in {}:\n{last_log}",
            data.display()
        );
    }

    /// Starts a server for a whole test run, which outlives this process: a watchdog stops it
    /// and removes its folder once `run` (the test runner's pid) is gone. Returns the folder,
    /// which [`PgServer::attach`] takes.
    pub fn start_for_run(bindir: PathBuf, run: u32) -> PathBuf {
        let mut server = Self::launch(bindir);
        server.watch(run);
        std::fs::write(server.dir.join("port"), server.port.to_string())
            .expect("write the server's port");
        // The runner's watchdog stops the server and removes the folder, not this process.
        let dir = server.owned.take().expect("a server just started").keep();
        std::mem::forget(server);
        dir
    }

    /// The server of a test run, started by [`PgServer::start_for_run`] in `dir`; dropping it
    /// leaves the server running.
    ///
    /// # Panics
    ///
    /// When `dir` holds no server's port.
    pub fn attach(bindir: PathBuf, dir: PathBuf) -> Self {
        let port = std::fs::read_to_string(dir.join("port"))
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or_else(|| panic!("{SHARED_SERVER}: no server in {}", dir.display()));
        let run_as = rustix::process::geteuid()
            .is_root()
            .then(|| SUPERUSER.to_owned());
        Self {
            dir,
            owned: None,
            bindir,
            port,
            run_as,
        }
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates the database `name` from [`TEMPLATE`] and returns its URL as the superuser.
    ///
    /// The server runs with `synchronous_commit = off` for speed, which
    /// [`stop_immediately`](Self::stop_immediately) turns into lost commits: this database
    /// commits synchronously, so it keeps what it acknowledged, as a real store does.
    pub fn create_database(&self, name: &str) -> String {
        // Two statements, two calls: CREATE DATABASE cannot share a transaction.
        self.psql(
            "postgres",
            &format!("CREATE DATABASE \"{name}\" TEMPLATE {TEMPLATE}"),
        );
        self.psql(
            "postgres",
            &format!("ALTER DATABASE \"{name}\" SET synchronous_commit = on"),
        );
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{name}", self.port)
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop --mode immediate`): every
    /// connection drops, and new ones are refused until [`start_again`](Self::start_again).
    ///
    /// # Panics
    ///
    /// On a test run's server ([`PgServer::attach`]): other tests use it. A test that stops its
    /// server starts one of its own ([`PgServer::start`]).
    pub fn stop_immediately(&self) {
        assert!(
            self.owned.is_some(),
            "stop a server of the test's own (PgServer::start), not the test run's"
        );
        self.run_tool(
            "pg_ctl",
            &[
                "--pgdata",
                path_str(&self.data_dir()),
                "--mode",
                "immediate",
                "--wait",
                "stop",
            ],
        );
    }

    /// Starts a server stopped by [`stop_immediately`](Self::stop_immediately) again, on the
    /// same port with the same data (recovered from its write-ahead log).
    ///
    /// # Panics
    ///
    /// When it does not start, with its log.
    pub fn start_again(&self) {
        let log = self.dir.join("server.log");
        let started = self
            .tool_command("pg_ctl")
            .args([
                "--pgdata",
                path_str(&self.data_dir()),
                "--log",
                path_str(&log),
            ])
            .args(["--wait", "--timeout", "60", "start"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            started,
            "PostgreSQL did not start again in {}:\n{}",
            self.dir.display(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// The root certificate the server's TLS certificate (for `127.0.0.1` only) is signed by.
    pub fn root_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// A root certificate that did not sign the server's.
    pub fn other_root_cert(&self) -> PathBuf {
        self.dir.join("other-ca.crt")
    }

    /// A test CA, and the server's certificate (subject alternative name `IP:127.0.0.1`)
    /// signed by it, in its data directory; another CA that signed nothing.
    fn make_certificates(&self) {
        let dir = self.dir.as_path();
        let openssl = |args: &[&str]| openssl(args, dir);
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for name in ["ca", "other-ca"] {
            let (key, crt, subject) = (
                format!("{name}.key"),
                format!("{name}.crt"),
                format!("/CN=tapedeck test {name}"),
            );
            let mut args = vec!["req", "-x509"];
            args.extend(ec);
            args.extend([
                "-keyout", &key, "-out", &crt, "-days", "3", "-subj", &subject,
            ]);
            args.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
            args.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
            openssl(&args);
        }
        let mut args = vec!["req"];
        args.extend(ec);
        args.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        openssl(&args);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName = IP:127.0.0.1\n\
             basicConstraints = CA:FALSE\n\
             keyUsage = critical, digitalSignature\n\
             extendedKeyUsage = serverAuth\n",
        )
        .expect("write the certificate's extensions");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "3",
            "-extfile",
            "server.ext",
        ]);
        let data = self.data_dir();
        for file in ["server.crt", "server.key", "ca.crt"] {
            let text = std::fs::read_to_string(dir.join(file)).expect("read a certificate file");
            self.write_as_owner(&data.join(file), &text);
        }
        std::fs::set_permissions(
            data.join("server.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("make the server's key private");
    }

    /// A client certificate for `user` signed by the test CA, and its key, written into `dir`.
    fn client_certificate(&self, user: &str, dir: &Path) -> (PathBuf, PathBuf) {
        let (crt, key, csr) = (
            dir.join(format!("{user}.crt")),
            dir.join(format!("{user}.key")),
            dir.join(format!("{user}.csr")),
        );
        let ca = self.dir.join("ca.crt");
        let ca_key = self.dir.join("ca.key");
        let serial = dir.join(format!("{user}.srl"));
        // Extensions make it an X.509 v3 certificate, the only version rustls takes.
        let extensions = dir.join(format!("{user}.ext"));
        std::fs::write(
            &extensions,
            "basicConstraints = CA:FALSE\n\
             keyUsage = critical, digitalSignature\n\
             extendedKeyUsage = clientAuth\n",
        )
        .expect("write the certificate's extensions");
        for args in [
            vec![
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                path_str(&key),
                "-out",
                path_str(&csr),
                "-subj",
                &format!("/CN={user}"),
            ],
            vec![
                "x509",
                "-req",
                "-in",
                path_str(&csr),
                "-CA",
                path_str(&ca),
                "-CAkey",
                path_str(&ca_key),
                "-CAserial",
                path_str(&serial),
                "-CAcreateserial",
                "-out",
                path_str(&crt),
                "-days",
                "3",
                "-extfile",
                path_str(&extensions),
            ],
        ] {
            openssl(&args, dir);
        }
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("make the client key private");
        (crt, key)
    }

    /// The server's folder: `data/` (the cluster) and `server.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A command running `tool` of the server's binaries, as the server's user.
    fn tool_command(&self, tool: &str) -> Command {
        let program = self.bindir.join(tool);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        // The server's own settings, not the caller's libpq environment.
        for var in [
            "PGDATA",
            "PGPORT",
            "PGHOST",
            "PGUSER",
            "PGDATABASE",
            "PGOPTIONS",
        ] {
            command.env_remove(var);
        }
        command.current_dir(&self.dir);
        command
    }

    fn run_tool(&self, tool: &str, args: &[&str]) -> String {
        let output = self
            .tool_command(tool)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {tool} from {}: {e}", self.bindir.display()));
        assert!(
            output.status.success(),
            "{tool} {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Writes a file of the data directory, owned by the server's user.
    fn write_as_owner(&self, path: &Path, text: &str) {
        std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        if self.run_as.is_some() {
            let (uid, gid) = postgres_ids();
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
        }
    }

    fn psql_command(&self, database: &str, sql: &str) -> Command {
        let mut command = self.tool_command("psql");
        command
            .args(["--no-psqlrc", "--quiet", "--tuples-only", "--no-align"])
            .args(["--set", "ON_ERROR_STOP=1", "--host", "127.0.0.1"])
            .args(["--port", &self.port.to_string(), "--username", SUPERUSER])
            .args(["--dbname", database, "--command", sql])
            .env_remove("PGPASSWORD")
            .env_remove("PGPASSFILE")
            .stdin(Stdio::null());
        command
    }

    fn try_psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let output = self
            .psql_command(database, sql)
            .output()
            .map_err(|e| format!("cannot run psql: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// Runs SQL as the superuser; panics with psql's message when it fails.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        self.try_psql(database, sql)
            .unwrap_or_else(|e| panic!("psql in `{database}` failed on `{sql}`:\n{e}"))
    }

    /// Starts a watchdog that stops the server once the process `pid` is gone: this test
    /// process, killed before it could drop the server (a timeout, a SIGKILL), or a test run.
    fn watch(&self, pid: u32) {
        let stop = self.stop_command_line();
        let script = format!(
            "while [ -d /proc/{pid} ]; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
            dir = shell_quote(path_str(&self.dir)),
        );
        // Detached: it outlives this process by design, and nobody waits for it.
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    fn stop_command_line(&self) -> String {
        let pg_ctl = shell_quote(path_str(&self.bindir.join("pg_ctl")));
        let data = shell_quote(path_str(&self.data_dir()));
        let line = format!("{pg_ctl} --pgdata {data} --mode immediate stop");
        match &self.run_as {
            Some(user) => format!("runuser -u {user} -- {line}"),
            None => line,
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.owned.is_none() {
            return;
        }
        let _ = self
            .tool_command("pg_ctl")
            .args(["--pgdata", path_str(&self.data_dir())])
            .args(["--mode", "fast", "--wait", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs `openssl ARGS` in `dir`; panics with its error output when it fails.
fn openssl(args: &[&str], dir: &Path) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl ({INSTALL} brings it): {e}"));
    assert!(
        output.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The uid and gid of the `postgres` user.
fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let output = Command::new("id")
            .args([flag, SUPERUSER])
            .output()
            .expect("run id");
        assert!(
            output.status.success(),
            "there is no `postgres` user to run the server as (`{INSTALL}` creates it)"
        );
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("id prints a number")
    };
    (id("-u"), id("-g"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port on 127.0.0.1")
        .port()
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
