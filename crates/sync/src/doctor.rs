//! The `doctor` line for central: can this kiosk reach central, log in, and find what it needs?

use std::time::Duration;

use super::conn::CentralTarget;
use super::schema;
use super::writer::Writer;
use jarvis_config::Config;
use jarvis_core::health::Check;

const NAME: &str = "central";

/// Connects once (bounded by `timeout`) and checks the schema and this kiosk's registration.
pub async fn check(cfg: &Config, timeout: Duration) -> Check {
    let target = match CentralTarget::from_config(&cfg.central, &cfg.kiosk.id) {
        Ok(Some(t)) => t,
        Ok(None) => {
            return Check::warn(
                NAME,
                "central.url is not set: events are kept locally only",
                "set central.url and central.password_file (scripts/central-add-kiosk.sh prints both)",
            );
        }
        Err(e) => {
            return Check::fail(NAME, e.to_string(), "fix the key named above in the config");
        }
    };
    let writer = match tokio::time::timeout(timeout, Writer::connect(&target)).await {
        Ok(Ok(w)) => w,
        Ok(Err(e)) => {
            return Check::fail(
                NAME,
                format!("cannot connect to {}: {}", target.display(), error_text(&e)),
                "check the network, central.url (host, port, sslmode), central.password_file and central.ca_file",
            );
        }
        Err(_) => {
            return Check::fail(
                NAME,
                format!("no answer from {} within {timeout:?}", target.display()),
                "check the network and the host and port in central.url",
            );
        }
    };
    let found = match writer.probe_schema().await {
        Ok(f) => f,
        Err(e) => return Check::fail(NAME, error_text(&e), "run scripts/central-migrate.sh"),
    };
    if let Some(msg) = schema::explain(&schema::missing(&found)) {
        return Check::fail(NAME, msg, "run scripts/central-migrate.sh DATABASE_URL");
    }
    match writer.identity().await {
        Ok((kiosk, can_insert)) => {
            match schema::explain_identity(&cfg.kiosk.id, kiosk.as_deref(), can_insert) {
                Some(msg) => Check::fail(
                    NAME,
                    msg,
                    "register the kiosk with scripts/central-add-kiosk.sh",
                ),
                None => Check::ok(
                    NAME,
                    format!(
                        "{} reachable ({:?}), schema complete, kiosk `{}` registered",
                        target.display(),
                        target.ssl_mode(),
                        cfg.kiosk.id
                    ),
                ),
            }
        }
        Err(e) => Check::fail(NAME, error_text(&e), "run scripts/central-migrate.sh"),
    }
}

fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => {
            let mut text = e.to_string();
            if let Some(s) = std::error::Error::source(e) {
                text.push_str(&format!(": {s}"));
            }
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jarvis_core::health::Level;

    #[tokio::test]
    async fn unset_url_is_a_warning_with_the_fix() {
        let c = check(&Config::default(), Duration::from_secs(1)).await;
        assert_eq!(c.level, Level::Warn);
        assert!(c.fix.unwrap().contains("central-add-kiosk.sh"));
    }

    #[tokio::test]
    async fn unreadable_password_file_names_the_key() {
        let mut cfg = Config::default();
        cfg.central.url = Some("postgres://k@127.0.0.1:1/db?sslmode=disable".into());
        cfg.central.password_file =
            Some(jarvis_config::secrets::SecretPath("/no/such/file".into()));
        let c = check(&cfg, Duration::from_secs(1)).await;
        assert_eq!(c.level, Level::Fail);
        assert!(c.detail.contains("central.password_file"), "{}", c.detail);
    }

    #[tokio::test]
    async fn closed_port_is_a_connection_failure() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cfg = Config::default();
        cfg.central.url = Some(format!("postgres://k@127.0.0.1:{port}/db?sslmode=disable"));
        let c = check(&cfg, Duration::from_secs(2)).await;
        assert_eq!(c.level, Level::Fail);
        assert!(
            c.detail.starts_with("cannot connect to k@127.0.0.1"),
            "{}",
            c.detail
        );
    }
}
