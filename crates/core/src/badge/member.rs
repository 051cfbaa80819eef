//! Who a badge belongs to: the directory contract the central-sync module implements.
//!
//! The lookup answers facts only (found with a membership status, not found, or could not
//! ask). What to do with a guest, an expired membership or an outage is the lifecycle core's
//! decision (`badge.unknown_member`), so nothing here guesses.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::badge::id::Badge;
use crate::events::MembershipStatus;

/// A member as the greeting needs them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Central member id (recorded in `session_started.member_id`).
    pub id: String,
    pub first_name: String,
    /// BCP 47 language tag the greeting uses, e.g. `fr` or `en`.
    pub language: String,
    pub membership: MembershipStatus,
}

/// What the directory knows about a badge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryAnswer {
    Found(Member),
    /// No member of this kiosk's gym has this badge.
    NotFound,
}

/// Why the directory could not answer. The cache layer falls back to cached members on any
/// of these, so the kiosk keeps recognising members during a network outage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// The central database cannot be reached (network down, timeout, Postgres restarting).
    #[error("member directory unreachable: {0}")]
    Unavailable(String),
    /// The directory answered with something unusable (schema mismatch, permission denied).
    #[error("member directory failed: {0}")]
    Failed(String),
}

/// Looks members up by badge. Implemented by the central-sync module against Postgres (one
/// member of the kiosk's own gym by badge, never a list); wrapped by
/// `jarvis_badge::MemberLookup` for caching and timeouts.
///
/// The implementation receives the raw badge because the central function needs it; it
/// must not log it (log `badge` with `Display`, which is masked).
pub trait MemberDirectory: Send + Sync {
    fn lookup(
        &self,
        badge: &Badge,
    ) -> impl Future<Output = Result<DirectoryAnswer, DirectoryError>> + Send;
}
