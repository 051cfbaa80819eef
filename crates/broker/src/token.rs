//! Kiosk credentials: a random token shown once, kept centrally only as its SHA-256.
//!
//! The token is 32 random bytes, so an unsalted hash is enough: there is nothing to guess
//! by dictionary, and one indexed lookup by hash finds the kiosk (no per-row KDF to run).

use sha2::{Digest, Sha256};

/// Prefix of every kiosk token (`jkt_` + 64 hex digits): recognisable in a leaked file.
pub const PREFIX: &str = "jkt_";

/// A new token and the hash central keeps.
pub fn generate() -> Result<(String, [u8; 32]), getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let token = format!("{PREFIX}{}", hex::encode(bytes));
    let digest = hash(&token);
    Ok((token, digest))
}

/// What central stores and looks a presented token up by.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

/// The token of an `Authorization: Bearer …` header, if it is one.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, ha) = generate().unwrap();
        let (b, hb) = generate().unwrap();
        assert_ne!(a, b);
        assert_ne!(ha, hb);
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 64);
        assert_eq!(hash(&a), ha);
        assert_eq!(
            hash(&format!("{a}\n")),
            ha,
            "a trailing newline in the file is ignored"
        );
    }

    #[test]
    fn bearer_headers() {
        assert_eq!(bearer(Some("Bearer jkt_1")), Some("jkt_1"));
        assert_eq!(bearer(Some("bearer  jkt_1 ")), Some("jkt_1"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }
}
