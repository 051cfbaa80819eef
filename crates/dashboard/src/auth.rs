//! Operators and their logins. Passwords are argon2id PHC strings (`argon2` crate, default
//! parameters); a login cookie is 32 random bytes whose SHA-256 alone is stored, so a read of
//! `dashboard_sessions` gives nobody a session. Every login, failed login and logout is a row
//! in `dashboard_audit`.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};

use crate::db::{Central, DbError};

/// The cookie holding the login token.
pub const COOKIE: &str = "jarvis_dashboard";

/// Why an operator could not be added or a password hashed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("no randomness from the OS: {0}")]
    Random(String),
    #[error(
        "operator name {0:?}: expected 1 to 63 letters, digits, '_', '.', '@' or '-', starting with a letter or digit"
    )]
    BadName(String),
    #[error("the password is shorter than 12 characters: choose a longer one")]
    WeakPassword,
}

/// An argon2id hash of `password` with a fresh salt.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| AuthError::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Whether `password` matches the stored PHC string (a malformed string never matches).
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash computed once, verified against when the operator does not exist, so an unknown
/// name takes as long to refuse as a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password, never valid").unwrap_or_default())
}

/// Whether `name` is a valid operator name (as the table's CHECK says).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 63
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.@-".contains(c))
}

/// A new login token (hex of 32 random bytes).
pub fn new_token() -> Result<String, AuthError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// SHA-256 of a token, as stored.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|part| part.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The `Set-Cookie` value of a login: HttpOnly (no script reads it), SameSite=Strict (no other
/// site's form or fetch carries it: that is the CSRF defence of the POST routes), Secure
/// unless turned off for loopback development.
pub fn set_cookie(token: &str, max_age_s: u64, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; Path=/; Max-Age={max_age_s}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the login.
pub fn clear_cookie(secure: bool) -> String {
    set_cookie("", 0, secure)
}

/// A logged-in operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub name: String,
    /// `None` = every gym.
    pub gyms: Option<Vec<String>>,
}

/// The outcome of a login attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// The new session's token, for the cookie.
    Ok(String),
    /// Refused, with the audited reason (the browser is told nothing more precise).
    Refused(&'static str),
}

/// Checks the credentials, opens a session on success, audits either way.
pub async fn login(
    db: &Central,
    instance: &str,
    name: &str,
    password: &str,
    remote: &str,
    ttl_s: u64,
) -> Result<Login, DbError> {
    let c = db.client().await?;
    let row = c
        .query_opt(
            "SELECT password_hash, disabled_at IS NOT NULL AS disabled FROM dashboard_operators WHERE operator = $1",
            &[&name],
        )
        .await?;
    let outcome = match row {
        None => {
            verify_password(password, decoy_hash());
            Login::Refused("unknown_operator")
        }
        Some(r) => {
            let phc: String = r.try_get("password_hash")?;
            let disabled: bool = r.try_get("disabled")?;
            if !verify_password(password, &phc) {
                Login::Refused("bad_password")
            } else if disabled {
                Login::Refused("disabled")
            } else {
                let token = new_token().map_err(|e| DbError::Query(e.to_string()))?;
                let ttl = i64::try_from(ttl_s).unwrap_or(i64::MAX);
                c.execute(
                    "DELETE FROM dashboard_sessions WHERE expires_at < now()",
                    &[],
                )
                .await?;
                c.execute(
                    "INSERT INTO dashboard_sessions (token_hash, operator, expires_at) \
                     VALUES ($1, $2, now() + make_interval(secs => $3::bigint))",
                    &[&token_hash(&token), &name, &ttl],
                )
                .await?;
                Login::Ok(token)
            }
        }
    };
    let (outcome_text, reason) = match &outcome {
        Login::Ok(_) => ("ok", None),
        Login::Refused(r) => ("refused", Some(*r)),
    };
    audit(db, instance, name, "login", outcome_text, reason, remote).await?;
    Ok(outcome)
}

/// The operator of a live session token.
pub async fn session(db: &Central, token: &str) -> Result<Option<Operator>, DbError> {
    let c = db.client().await?;
    let row = c
        .query_opt(
            "SELECT o.operator, o.gyms FROM dashboard_sessions s \
             JOIN dashboard_operators o ON o.operator = s.operator \
             WHERE s.token_hash = $1 AND s.expires_at > now() AND o.disabled_at IS NULL",
            &[&token_hash(token)],
        )
        .await?;
    Ok(match row {
        Some(r) => Some(Operator {
            name: r.try_get("operator")?,
            gyms: r.try_get("gyms")?,
        }),
        None => None,
    })
}

/// Ends a session (and drops expired ones while at it).
pub async fn logout(
    db: &Central,
    instance: &str,
    token: &str,
    remote: &str,
) -> Result<(), DbError> {
    let c = db.client().await?;
    let row = c
        .query_opt(
            "DELETE FROM dashboard_sessions WHERE token_hash = $1 RETURNING operator",
            &[&token_hash(token)],
        )
        .await?;
    c.execute(
        "DELETE FROM dashboard_sessions WHERE expires_at < now()",
        &[],
    )
    .await?;
    if let Some(r) = row {
        let name: String = r.try_get("operator")?;
        audit(db, instance, &name, "logout", "ok", None, remote).await?;
    }
    Ok(())
}

async fn audit(
    db: &Central,
    instance: &str,
    operator: &str,
    action: &str,
    outcome: &str,
    reason: Option<&str>,
    remote: &str,
) -> Result<(), DbError> {
    let c = db.client().await?;
    // The name as typed is kept, bounded: a failed login may carry anything.
    let operator: String = operator.chars().take(64).collect();
    c.execute(
        "INSERT INTO dashboard_audit (instance, operator, action, outcome, reason, remote) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[&instance, &operator, &action, &outcome, &reason, &remote],
    )
    .await?;
    Ok(())
}

/// Creates or updates an operator (`jarvis-dashboard operator add`): needs a connection as
/// `admin_service` (or the schema owner).
pub async fn upsert_operator(
    client: &tokio_postgres::Client,
    name: &str,
    password: &str,
    gyms: Option<&[String]>,
) -> anyhow::Result<()> {
    if !valid_name(name) {
        return Err(AuthError::BadName(name.to_owned()).into());
    }
    if password.chars().count() < 12 {
        return Err(AuthError::WeakPassword.into());
    }
    let phc = hash_password(password)?;
    let gyms: Option<Vec<String>> = gyms.map(<[String]>::to_vec);
    client
        .execute(
            "INSERT INTO dashboard_operators (operator, password_hash, gyms) VALUES ($1, $2, $3) \
             ON CONFLICT (operator) DO UPDATE SET password_hash = excluded.password_hash, \
             gyms = excluded.gyms, disabled_at = NULL",
            &[&name, &phc, &gyms],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_only_its_password() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterY", &h));
        assert!(!verify_password("x", "not a phc string"));
        assert_ne!(h, hash_password("correct horse battery").unwrap(), "salted");
    }

    #[test]
    fn cookies() {
        assert_eq!(
            cookie_value("a=1; jarvis_dashboard=abc; b=2", COOKIE),
            Some("abc")
        );
        assert_eq!(cookie_value("xjarvis_dashboard=abc", COOKIE), None);
        let c = set_cookie("t", 60, true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(token_hash(&a).len(), 32);
    }

    #[test]
    fn names_follow_the_table_check() {
        for ok in ["alice", "a", "ops.lead@gym-1", "B_2"] {
            assert!(valid_name(ok), "{ok}");
        }
        let long = "a".repeat(64);
        for bad in ["", "-a", ".a", "a b", "a'b", "é", long.as_str()] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
