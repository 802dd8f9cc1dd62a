//! From a `postgres://` URL to a connection, reading what libpq would read.
//!
//! The driver (`postgres`, over `tokio-postgres`) is pure Rust: it takes a URL but reads
//! nothing from the environment. A team store's users expect libpq's behaviour, so
//! [`PgTarget::resolve`] fills in what the URL leaves out as libpq does:
//!
//! | setting | from, in order |
//! |---|---|
//! | host | the URL, `PGHOST`, the Unix socket folder `/var/run/postgresql` |
//! | port | the URL, `PGPORT`, 5432 |
//! | user | the URL, `PGUSER`, the login name (`USER`, `LOGNAME`) |
//! | database | the URL, `PGDATABASE`, the user |
//! | password | `PGPASSWORD`, then the first matching line of `PGPASSFILE` or `~/.pgpass` |
//! | sslmode | the URL, `PGSSLMODE`, `prefer` |
//! | application_name | the URL, `PGAPPNAME`, `tapedeck` |
//!
//! A password in the URL is refused: `--store` is a flag, seen by `ps` and kept in shell
//! history. A password file readable by group or others is ignored, as libpq ignores it.
//!
//! TLS is rustls (the workspace's, with ring), with libpq's meaning of each `sslmode`:
//! `disable` and `allow` connect in plain text; `prefer` uses TLS when the server offers it and
//! `require` insists on it, neither checking the certificate unless a root certificate is
//! there (`sslrootcert`, `PGSSLROOTCERT` or `~/.postgresql/root.crt`), in which case they check
//! it as `verify-ca` does; `verify-ca` checks the chain against that root, `verify-full` the
//! host name as well. `sslrootcert=system` trusts the system's root certificates and, as in
//! libpq, means `verify-full` (a weaker `sslmode` with it is refused). A client certificate
//! (`sslcert` and `sslkey`, `PGSSLCERT` and `PGSSLKEY`, or `~/.postgresql/postgresql.crt` and
//! `.key`) is sent when the server asks for one; its key must be readable by its owner only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use postgres::config::{Host, SslMode};
use postgres::{Client, Config};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::StoreError;

/// How long a connection attempt may take when the URL does not say.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// libpq's `sslmode`, all six values: the driver itself knows only three.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PgSslMode {
    /// No TLS.
    Disable,
    /// TLS only if the server insists (connects in plain text here).
    Allow,
    /// TLS when the server offers it (the default).
    Prefer,
    /// TLS, certificate not checked.
    Require,
    /// TLS, certificate checked against the root certificates.
    VerifyCa,
    /// TLS, certificate and host name checked.
    VerifyFull,
}

impl PgSslMode {
    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    /// libpq's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// Where a store on PostgreSQL lives and how to log in, resolved from its URL and the
/// environment. Its `Display` is the URL as given, which never holds a password.
#[derive(Clone)]
pub struct PgTarget {
    url: String,
    config: Config,
    ssl_mode: PgSslMode,
    /// The root certificates to check the server's against, when there are any.
    root_cert: Option<RootCerts>,
    /// The client certificate and its key, when there is one.
    client_cert: Option<(PathBuf, PathBuf)>,
    /// Where the password came from, for error messages (`PGPASSWORD`, the file's path).
    password_from: Option<String>,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("url", &self.url)
            .field("ssl_mode", &self.ssl_mode)
            .field("password_from", &self.password_from)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Display for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

/// Whether `store` names a PostgreSQL store (`postgres://` or `postgresql://`) rather than a
/// SQLite file.
pub fn is_postgres_url(store: &str) -> bool {
    store.starts_with("postgres://") || store.starts_with("postgresql://")
}

impl PgTarget {
    /// Resolves `url` with this process's environment.
    pub fn from_env(url: &str) -> Result<Self, StoreError> {
        Self::resolve(url, &|name| {
            std::env::var(name).ok().filter(|value| !value.is_empty())
        })
    }

    /// Resolves `url`, reading variables (`PGPASSWORD`, `HOME`, …) through `env`, so that a
    /// test can give its own without touching the process's.
    pub fn resolve(url: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, StoreError> {
        let bad = |detail: String| StoreError::PgUrl {
            url: redact_url(url),
            detail,
        };
        if !is_postgres_url(url) {
            return Err(bad("expected postgres://USER@HOST:PORT/DATABASE".into()));
        }
        // The driver knows three sslmodes and rejects the others: take it out of the URL and
        // read it here.
        let (rest, ssl_mode) = take_query_param(url, "sslmode");
        let (rest, root_cert) = take_query_param(&rest, "sslrootcert");
        let (rest, cert) = take_query_param(&rest, "sslcert");
        let (rest, key) = take_query_param(&rest, "sslkey");
        let in_home = |name: &str| {
            env("HOME")
                .map(|home| Path::new(&home).join(".postgresql").join(name))
                .filter(|path| path.is_file())
        };
        let root_cert = match root_cert.or_else(|| env("PGSSLROOTCERT")) {
            Some(given) if given == "system" => Some(RootCerts::System),
            Some(given) => Some(RootCerts::File(PathBuf::from(given))),
            None => in_home("root.crt").map(RootCerts::File),
        };
        let ssl_mode = match ssl_mode.or_else(|| env("PGSSLMODE")) {
            // libpq: the system's roots vouch for the host name, so they check it.
            None if root_cert == Some(RootCerts::System) => PgSslMode::VerifyFull,
            None => PgSslMode::Prefer,
            Some(mode) => PgSslMode::parse(&mode).ok_or_else(|| {
                bad(format!(
                    "unknown sslmode `{mode}` (disable, allow, prefer, require, verify-ca, \
                     verify-full)"
                ))
            })?,
        };
        if root_cert == Some(RootCerts::System) && ssl_mode != PgSslMode::VerifyFull {
            return Err(bad(format!(
                "sslrootcert=system needs sslmode=verify-full, not {}: any certificate a \
                 public authority signed would pass without the host name check",
                ssl_mode.as_str()
            )));
        }
        let client_cert = client_cert(
            cert.or_else(|| env("PGSSLCERT")),
            key.or_else(|| env("PGSSLKEY")),
            &in_home,
        )
        .map_err(bad)?;
        // The driver gives a host without a port 5432: `PGPORT` applies only when the URL
        // names no port, so it goes into the URL before the driver reads it.
        let pgport = match env("PGPORT") {
            Some(port) if !url_has_port(&rest) => Some(
                port.parse::<u16>()
                    .map_err(|_| bad(format!("PGPORT `{port}` is not a port number")))?,
            ),
            _ => None,
        };
        let rest = match pgport {
            Some(port) => with_port(&rest, port),
            None => rest,
        };
        let mut config: Config = rest.parse().map_err(|e| bad(format!("{e}")))?;
        if config.get_password().is_some() {
            return Err(bad(
                "the URL holds a password: give it in PGPASSWORD or ~/.pgpass instead, never on \
                 the command line"
                    .into(),
            ));
        }
        if config.get_hosts().is_empty() {
            match env("PGHOST") {
                Some(host) if host.starts_with('/') => config.host_path(host),
                Some(host) => config.host(&host),
                None => config.host_path("/var/run/postgresql"),
            };
        }
        if config.get_ports().is_empty() {
            config.port(pgport.unwrap_or(5432));
        }
        if config.get_user().is_none() {
            let user = env("PGUSER")
                .or_else(|| env("USER"))
                .or_else(|| env("LOGNAME"))
                .ok_or_else(|| bad("no user: put one in the URL (USER@HOST) or PGUSER".into()))?;
            config.user(&user);
        }
        if config.get_dbname().is_none() {
            let dbname = env("PGDATABASE").unwrap_or_else(|| {
                config
                    .get_user()
                    .map(str::to_owned)
                    .expect("the user is set above")
            });
            config.dbname(&dbname);
        }
        if config.get_application_name().is_none() {
            config.application_name(&env("PGAPPNAME").unwrap_or_else(|| "tapedeck".to_owned()));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.ssl_mode(match ssl_mode {
            PgSslMode::Disable | PgSslMode::Allow => SslMode::Disable,
            PgSslMode::Prefer => SslMode::Prefer,
            PgSslMode::Require | PgSslMode::VerifyCa | PgSslMode::VerifyFull => SslMode::Require,
        });
        let mut password_from = None;
        if let Some(password) = env("PGPASSWORD") {
            config.password(password);
            password_from = Some("PGPASSWORD".to_owned());
        } else if let Some(file) = passfile(env) {
            let (host, port) = first_host_port(&config);
            let user = config.get_user().unwrap_or_default().to_owned();
            let dbname = config.get_dbname().unwrap_or_default().to_owned();
            if let Some(password) = lookup_passfile(&file, &host, port, &dbname, &user) {
                config.password(password);
                password_from = Some(file.display().to_string());
            }
        }
        if matches!(ssl_mode, PgSslMode::VerifyCa | PgSslMode::VerifyFull) && root_cert.is_none() {
            return Err(bad(format!(
                "sslmode={} needs a root certificate to check the server's against: give \
                 sslrootcert=FILE in the URL, PGSSLROOTCERT, or ~/.postgresql/root.crt",
                ssl_mode.as_str()
            )));
        }
        Ok(Self {
            url: url.to_owned(),
            config,
            ssl_mode,
            root_cert,
            client_cert,
            password_from,
        })
    }

    /// The URL as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The resolved `sslmode`.
    pub fn ssl_mode(&self) -> PgSslMode {
        self.ssl_mode
    }

    /// The resolved user.
    pub fn user(&self) -> &str {
        self.config.get_user().unwrap_or_default()
    }

    /// The resolved database.
    pub fn dbname(&self) -> &str {
        self.config.get_dbname().unwrap_or_default()
    }

    /// Where the password came from (`PGPASSWORD`, or the password file's path); `None` when
    /// there is none.
    pub fn password_source(&self) -> Option<&str> {
        self.password_from.as_deref()
    }

    /// Opens a connection.
    pub fn connect(&self) -> Result<Client, StoreError> {
        let tls = MakeRustlsConnect::new(self.tls_config()?);
        self.config.connect(tls).map_err(|source| {
            let no_password = describe(&source).contains("password missing");
            let hint = match (&self.password_from, source.as_db_error()) {
                (None, None) if no_password => {
                    " (the server asks for a password and none was given: set PGPASSWORD or add \
                     a line to ~/.pgpass)"
                        .to_owned()
                }
                (Some(from), Some(db)) if db.code().code() == "28P01" => {
                    format!(" (the password came from {from})")
                }
                _ => String::new(),
            };
            StoreError::Postgres {
                url: self.url.clone(),
                detail: format!("{}{hint}", describe(&source)),
            }
        })
    }

    /// The TLS settings of this `sslmode` (used only when the driver negotiates TLS: never for
    /// `disable` and `allow`).
    fn tls_config(&self) -> Result<rustls::ClientConfig, StoreError> {
        let bad = |detail: String| StoreError::PgUrl {
            url: self.url.clone(),
            detail,
        };
        let read_certificates = |path: &Path, what: &str| {
            CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| bad(format!("cannot read the {what} {}: {e}", path.display())))
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = match &self.root_cert {
            None => None,
            Some(RootCerts::File(path)) => {
                let mut roots = RootCertStore::empty();
                roots.add_parsable_certificates(read_certificates(path, "root certificate")?);
                Some(Arc::new(roots))
            }
            Some(RootCerts::System) => {
                let mut roots = RootCertStore::empty();
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(bad(format!(
                        "sslrootcert=system: no root certificate found on this system{}",
                        found
                            .errors
                            .first()
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default()
                    )));
                }
                Some(Arc::new(roots))
            }
        };
        let verifier: Arc<dyn ServerCertVerifier> = match (self.ssl_mode, roots) {
            (PgSslMode::VerifyFull, Some(roots)) => {
                WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
                    .build()
                    .map_err(|e| bad(format!("the root certificate: {e}")))?
            }
            (PgSslMode::VerifyCa | PgSslMode::VerifyFull, None) => {
                return Err(bad(
                    "no root certificate to verify the server with".to_owned()
                ));
            }
            // As in libpq, a root certificate makes `prefer` and `require` check the chain.
            (_, roots) => Arc::new(ChainVerifier {
                roots,
                algorithms: provider.signature_verification_algorithms,
            }),
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(format!("TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let Some((cert, key)) = &self.client_cert else {
            return Ok(config.with_no_client_auth());
        };
        let chain = read_certificates(cert, "client certificate")?;
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| bad(format!("cannot read the client key {}: {e}", key.display())))?;
        config
            .with_client_auth_cert(chain, key)
            .map_err(|e| bad(format!("the client certificate {}: {e}", cert.display())))
    }
}

/// Where the root certificates that vouch for the server come from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum RootCerts {
    /// A PEM file (`sslrootcert=FILE`, `PGSSLROOTCERT`, `~/.postgresql/root.crt`).
    File(PathBuf),
    /// The system's trust store (`sslrootcert=system`).
    System,
}

/// The client certificate and key to send, from the URL or `PGSSLCERT` / `PGSSLKEY`, else
/// `~/.postgresql/postgresql.crt` and `.key` when the certificate is there. A file named but
/// missing, or a key others can read (as libpq refuses it), is an error.
fn client_cert(
    cert: Option<String>,
    key: Option<String>,
    in_home: &dyn Fn(&str) -> Option<PathBuf>,
) -> Result<Option<(PathBuf, PathBuf)>, String> {
    let cert = match cert {
        Some(cert) => PathBuf::from(cert),
        None => match in_home("postgresql.crt") {
            Some(cert) => cert,
            None if key.is_some() => return Err("sslkey is given without sslcert".to_owned()),
            None => return Ok(None),
        },
    };
    let key = match key {
        Some(key) => PathBuf::from(key),
        None => cert.with_extension("key"),
    };
    for (file, what) in [(&cert, "client certificate"), (&key, "client key")] {
        if !file.is_file() {
            return Err(format!("the {what} {} does not exist", file.display()));
        }
    }
    let mode = std::fs::metadata(&key)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()))
        .map_err(|e| format!("cannot read the client key {}: {e}", key.display()))?;
    if mode & 0o077 != 0 {
        return Err(format!(
            "the client key {} can be read by others (mode {:o}): `chmod 600` it",
            key.display(),
            mode & 0o777
        ));
    }
    Ok(Some((cert, key)))
}

/// The server's certificate short of `verify-full`: with `roots` (`verify-ca`, or `prefer` and
/// `require` given a root certificate) its chain is checked against them, its host name not;
/// without (`prefer` and `require`, as libpq) it is not checked at all. Either way the
/// handshake's signatures are.
#[derive(Debug)]
struct ChainVerifier {
    roots: Option<Arc<RootCertStore>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ChainVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(roots) = &self.roots else {
            return Ok(ServerCertVerified::assertion());
        };
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            roots,
            intermediates,
            now,
            self.algorithms.all,
        )
        .map_err(|e| match e {
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
                rustls::Error::General(
                    "the server's certificate is not signed by the root certificate".to_owned(),
                )
            }
            other => other,
        })?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The driver's error with its server-side detail: `Error`'s `Display` alone says only "db
/// error".
pub(crate) fn describe(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(inner) = source {
                text = format!("{text}: {inner}");
                source = inner.source();
            }
            text
        }
    }
}

/// Whether the URL's authority names a port (`host:5433`, `[::1]:5433`).
fn url_has_port(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let hosts = authority
        .rsplit_once('@')
        .map_or(authority, |(_, hosts)| hosts);
    hosts.split(',').any(|host| {
        let after_bracket = host.rsplit_once(']').map_or(host, |(_, tail)| tail);
        after_bracket.contains(':')
    })
}

/// `url` with `:port` after each of its hosts (it has none).
fn with_port(url: &str, port: u16) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (format!("{userinfo}@"), hosts),
        None => (String::new(), authority),
    };
    if hosts.is_empty() {
        return url.to_owned();
    }
    let hosts: Vec<String> = hosts.split(',').map(|h| format!("{h}:{port}")).collect();
    format!("{scheme}://{userinfo}{}{tail}", hosts.join(","))
}

/// `url` without the `name=value` query parameter, and its value.
fn take_query_param(url: &str, name: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut value = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.split_once('=') {
            Some((key, v)) if key == name => {
                value = Some(v.to_owned());
                false
            }
            _ => true,
        })
        .collect();
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, value)
}

/// The URL with any password replaced by `***`, for an error about that URL.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        _ => url.to_owned(),
    }
}

/// The password file libpq would read: `PGPASSFILE`, else `~/.pgpass`.
fn passfile(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    env("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|home| Path::new(&home).join(".pgpass")))
}

fn first_host_port(config: &Config) -> (String, u16) {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        // libpq matches a Unix socket against `localhost` in the password file.
        Some(Host::Unix(_)) | None => "localhost".to_owned(),
    };
    (host, config.get_ports().first().copied().unwrap_or(5432))
}

/// The password of the first line of the password file at `path` that matches, as libpq reads
/// it: `host:port:database:user:password`, `*` matching anything in the first four fields,
/// `\` escaping `:` and `\`, `#` starting a comment line. A file that is not a regular file, or
/// that group or others may read, is ignored.
pub(crate) fn lookup_passfile(
    path: &Path,
    host: &str,
    port: u16,
    dbname: &str,
    user: &str,
) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if meta.permissions().mode() & 0o077 != 0 {
            return None;
        }
    }
    let text = std::fs::read_to_string(path).ok()?;
    let port = port.to_string();
    let wanted = [host, port.as_str(), dbname, user];
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(split_passfile_line)
        .find(|fields| {
            fields[..4]
                .iter()
                .zip(wanted)
                .all(|(field, want)| field == "*" || field == want)
        })
        .map(|mut fields| fields.swap_remove(4))
}

/// The five fields of a password file line, unescaped; `None` for a line with fewer.
fn split_passfile_line(line: &str) -> Option<Vec<String>> {
    let mut fields = vec![String::new()];
    let mut chars = line.trim_end_matches('\r').chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut()?.push(chars.next().unwrap_or('\\')),
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut()?.push(c),
        }
    }
    (fields.len() == 5).then_some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passfile_lines_unescape_and_keep_colons_in_the_password() {
        assert_eq!(
            split_passfile_line(r"db\:host:5432:*:alice:pa:ss\\word"),
            Some(vec![
                "db:host".into(),
                "5432".into(),
                "*".into(),
                "alice".into(),
                r"pa:ss\word".into()
            ])
        );
        assert_eq!(split_passfile_line("host:5432:db:user"), None);
    }

    #[test]
    fn the_sslmode_is_taken_out_of_the_url() {
        let (url, mode) = take_query_param(
            "postgres://a@h/db?application_name=x&sslmode=verify-full",
            "sslmode",
        );
        assert_eq!(url, "postgres://a@h/db?application_name=x");
        assert_eq!(mode.as_deref(), Some("verify-full"));
        let (url, mode) = take_query_param("postgres://a@h/db?sslmode=disable", "sslmode");
        assert_eq!(
            (url.as_str(), mode.as_deref()),
            ("postgres://a@h/db", Some("disable"))
        );
    }

    #[test]
    fn a_password_in_the_url_is_refused_and_never_echoed() {
        let error = PgTarget::resolve("postgres://alice:hunter2@127.0.0.1:5432/team", &|_| None)
            .expect_err("refused");
        let text = error.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains("postgres://alice:***@127.0.0.1:5432/team"),
            "{text}"
        );
        assert!(text.contains("PGPASSWORD or ~/.pgpass"), "{text}");
    }

    #[test]
    fn defaults_come_from_the_environment_as_in_libpq() {
        let env = |name: &str| {
            match name {
                "PGUSER" => Some("ci"),
                "PGDATABASE" => Some("team"),
                "PGSSLMODE" => Some("disable"),
                "PGPORT" => Some("6543"),
                _ => None,
            }
            .map(str::to_owned)
        };
        let target = PgTarget::resolve("postgres://db.internal", &env).expect("resolves");
        assert_eq!(target.user(), "ci");
        assert_eq!(target.dbname(), "team");
        assert_eq!(target.ssl_mode(), PgSslMode::Disable);
        assert_eq!(target.config.get_ports(), &[6543]);
        assert_eq!(target.config.get_application_name(), Some("tapedeck"));
        let target = PgTarget::resolve("postgres://u@h/d?sslmode=require", &env).expect("resolves");
        assert_eq!(target.ssl_mode(), PgSslMode::Require, "the URL wins");
        assert!(PgTarget::resolve("postgres://u@h/d?sslmode=sometimes", &env).is_err());
    }
}
