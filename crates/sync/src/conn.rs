//! Connecting to the central Postgres: URL and `sslmode`, password file, rustls TLS.
//!
//! TLS uses rustls with the aws-lc-rs provider (the binary's only crypto provider) and always
//! verifies the server certificate and host name, against `central.ca_file` or the system
//! roots. `sslmode` in `central.url`:
//! * `disable`: plain TCP (a local socket or a trusted link only);
//! * `prefer`: TLS when the server offers it (verified), plain otherwise;
//! * `require`, `verify-ca`, `verify-full` (and the default when absent): TLS is mandatory and
//!   verified. This is stricter than libpq's `require`, which accepts any certificate: a kiosk
//!   never sends its password to a server it has not authenticated.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres::Client;
use tokio_postgres::config::SslMode as PgSslMode;

use jarvis_config::CentralConfig;
use jarvis_config::secrets::{SecretError, SecretPath};

/// How the connection is protected (from `sslmode` in `central.url`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    /// TLS with a verified certificate and host name (`require`, `verify-ca`, `verify-full`).
    VerifyFull,
}

/// Why the kiosk cannot even try to connect: each names the config key to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConnectSetupError {
    #[error("central.url: {0}")]
    BadUrl(String),
    #[error("central.ca_file: cannot read CA certificates from {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error(
        "central.ca_file: no trusted root certificate found on this system; set central.ca_file to the PEM of the CA that signed the server certificate"
    )]
    NoRoots,
    #[error("TLS set-up failed: {0}")]
    Tls(String),
    #[error(transparent)]
    Password(#[from] SecretError),
}

/// Everything needed to open a connection, prepared once from the configuration.
#[derive(Clone)]
pub struct CentralTarget {
    config: tokio_postgres::Config,
    ssl: SslMode,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    /// `user@host:port/db` for messages (never the password).
    display: String,
}

impl std::fmt::Debug for CentralTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CentralTarget({}, {:?})", self.display, self.ssl)
    }
}

/// Splits `sslmode` out of a postgres URL (tokio-postgres knows no `verify-full`).
pub fn split_sslmode(url: &str) -> Result<(String, SslMode), ConnectSetupError> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut mode = SslMode::VerifyFull;
    let mut kept = Vec::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        match pair.split_once('=') {
            Some(("sslmode", v)) => {
                mode = match v {
                    "disable" => SslMode::Disable,
                    "prefer" | "allow" => SslMode::Prefer,
                    "require" | "verify-ca" | "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(ConnectSetupError::BadUrl(format!(
                            "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
                        )));
                    }
                }
            }
            _ if pair.is_empty() => {}
            _ => kept.push(pair),
        }
    }
    let rebuilt = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rebuilt, mode))
}

impl CentralTarget {
    /// Prepares the connection from `central.*` (reads the password file and the CA file).
    /// `None` when `central.url` is not set (buffer locally only).
    pub fn from_config(
        cfg: &CentralConfig,
        kiosk_id: &str,
    ) -> Result<Option<CentralTarget>, ConnectSetupError> {
        let Some(url) = &cfg.url else {
            return Ok(None);
        };
        CentralTarget::with_password_file(
            url,
            cfg.password_file.as_ref(),
            cfg.ca_file.as_deref(),
            kiosk_id,
        )
        .map(Some)
    }

    /// As [`CentralTarget::new`], reading the password from `central.password_file` (bare
    /// names resolve in `$CREDENTIALS_DIRECTORY`).
    pub fn with_password_file(
        url: &str,
        password_file: Option<&SecretPath>,
        ca_file: Option<&Path>,
        application: &str,
    ) -> Result<CentralTarget, ConnectSetupError> {
        let password = match password_file {
            Some(p) => Some(p.read("central.password_file")?),
            None => None,
        };
        CentralTarget::new(
            url,
            password.as_ref().map(|s| s.expose()),
            ca_file,
            application,
        )
    }

    /// Prepares a connection to `url` (no password inside) with an optional password and CA.
    pub fn new(
        url: &str,
        password: Option<&str>,
        ca_file: Option<&Path>,
        kiosk_id: &str,
    ) -> Result<CentralTarget, ConnectSetupError> {
        let (url, ssl) = split_sslmode(url)?;
        let mut config = tokio_postgres::Config::from_str(&url).map_err(|e| {
            ConnectSetupError::BadUrl(format!(
                "{e} (expected postgres://ROLE@HOST:PORT/DB?sslmode=verify-full)"
            ))
        })?;
        if let Some(pw) = password {
            config.password(pw);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        config.application_name(format!("jarvis-kiosk/{kiosk_id}"));
        config.ssl_mode(match ssl {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::VerifyFull => PgSslMode::Require,
        });
        let tls = match ssl {
            SslMode::Disable => None,
            SslMode::Prefer | SslMode::VerifyFull => Some(make_tls(ca_file)?),
        };
        let display = describe(&config);
        Ok(CentralTarget {
            config,
            ssl,
            tls,
            display,
        })
    }

    /// `user@host:port/db`, for log lines and health messages.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The TLS mode in force.
    pub fn ssl_mode(&self) -> SslMode {
        self.ssl
    }

    /// Opens a connection; its I/O task runs on the runtime until the client is dropped.
    pub async fn connect(&self) -> Result<Client, tokio_postgres::Error> {
        match &self.tls {
            None => {
                let (client, conn) = self.config.connect(tokio_postgres::NoTls).await?;
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "central connection closed");
                    }
                });
                Ok(client)
            }
            Some(tls) => {
                let (client, conn) = self.config.connect(tls.clone()).await?;
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "central connection closed");
                    }
                });
                Ok(client)
            }
        }
    }
}

fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{}:{}/{}",
        config.get_user().unwrap_or("?"),
        host,
        port,
        config.get_dbname().unwrap_or("?")
    )
}

fn make_tls(
    ca_file: Option<&Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, ConnectSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<_, _>>())
                .map_err(|e| ConnectSetupError::CaFile {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(ConnectSetupError::CaFile {
                    path: path.to_owned(),
                    reason: "no usable certificate in the file (expected PEM)".into(),
                });
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(ConnectSetupError::NoRoots);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectSetupError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_split_out_and_defaults_to_verified() {
        let (u, m) = split_sslmode("postgres://k@h:5432/db").unwrap();
        assert_eq!(
            (u.as_str(), m),
            ("postgres://k@h:5432/db", SslMode::VerifyFull)
        );
        let (u, m) = split_sslmode("postgres://k@h/db?sslmode=disable").unwrap();
        assert_eq!((u.as_str(), m), ("postgres://k@h/db", SslMode::Disable));
        let (u, m) =
            split_sslmode("postgres://k@h/db?connect_timeout=5&sslmode=verify-full&x=1").unwrap();
        assert_eq!(
            (u.as_str(), m),
            (
                "postgres://k@h/db?connect_timeout=5&x=1",
                SslMode::VerifyFull
            )
        );
        assert_eq!(
            split_sslmode("postgres://h/db?sslmode=require").unwrap().1,
            SslMode::VerifyFull
        );
        assert_eq!(
            split_sslmode("postgres://h/db?sslmode=prefer").unwrap().1,
            SslMode::Prefer
        );
    }

    #[test]
    fn bad_sslmode_and_url_name_the_key() {
        let e = split_sslmode("postgres://h/db?sslmode=maybe").unwrap_err();
        assert!(
            e.to_string().starts_with("central.url: sslmode=maybe"),
            "{e}"
        );
        let e = CentralTarget::new("postgres://h/db?bogus_param=1", None, None, "k").unwrap_err();
        assert!(e.to_string().starts_with("central.url:"), "{e}");
    }

    #[test]
    fn unreadable_or_empty_ca_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = CentralTarget::new("postgres://h/db", None, Some(&missing), "k").unwrap_err();
        assert!(e.to_string().contains("central.ca_file"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = CentralTarget::new("postgres://h/db", None, Some(&empty), "k").unwrap_err();
        assert!(e.to_string().contains("no usable certificate"), "{e}");
    }

    #[test]
    fn describes_without_password() {
        let t = CentralTarget::new(
            "postgres://kiosk_a@127.0.0.1:6543/central?sslmode=disable",
            Some("s3cret"),
            None,
            "a",
        )
        .unwrap();
        assert_eq!(t.display(), "kiosk_a@127.0.0.1:6543/central");
        assert!(!format!("{t:?}").contains("s3cret"));
    }
}
