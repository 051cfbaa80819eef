//! The badge module's [`MemberDirectory`] against central: `kiosk_lookup_member(badge)`, a
//! SECURITY DEFINER function that returns at most one member of this kiosk's own gym.

use tokio::sync::Mutex;

use super::conn::CentralTarget;
use super::writer::{CentralMember, Writer};
use jarvis_core::badge::id::Badge;
use jarvis_core::badge::member::{DirectoryAnswer, DirectoryError, Member, MemberDirectory};
use jarvis_core::events::MembershipStatus;
use jarvis_core::sync_policy::{FailureClass, classify};

/// Member lookups over one lazily opened connection (reopened after it drops). The caller
/// (`jarvis_badge::MemberLookup`) bounds each lookup with its own timeout; a lookup cut short
/// by it drops its connection with it, so a connection lost in a network black hole (no RST,
/// no FIN) is never reused: the next lookup opens a fresh one.
pub struct CentralDirectory {
    target: CentralTarget,
    conn: Mutex<Option<Writer>>,
}

impl CentralDirectory {
    pub fn new(target: CentralTarget) -> Self {
        CentralDirectory {
            target,
            conn: Mutex::new(None),
        }
    }
}

impl MemberDirectory for CentralDirectory {
    async fn lookup(&self, badge: &Badge) -> Result<DirectoryAnswer, DirectoryError> {
        let mut slot = self.conn.lock().await;
        // Taken out for the query and put back only once it answered: if this future is
        // dropped mid-query (the caller's timeout), the connection goes with it.
        let w = match slot.take().filter(|w| !w.is_closed()) {
            Some(w) => w,
            None => Writer::connect(&self.target).await.map_err(|e| {
                DirectoryError::Unavailable(format!(
                    "cannot connect to central {}: {e}",
                    self.target.display()
                ))
            })?,
        };
        let answer = w.lookup_member(badge.expose()).await;
        if !w.is_closed() {
            *slot = Some(w);
        }
        match answer {
            Ok(None) => Ok(DirectoryAnswer::NotFound),
            Ok(Some(m)) => to_member(m).map(DirectoryAnswer::Found),
            Err(e) => {
                let code = e.code().map(|c| c.code().to_owned());
                let detail = e
                    .as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_owned());
                Err(match classify(code.as_deref()) {
                    FailureClass::Transient => DirectoryError::Unavailable(detail),
                    _ => DirectoryError::Failed(format!(
                        "{detail} (SQLSTATE {}): kiosk_lookup_member comes with sql/central/0005_security.sql; run scripts/central-migrate.sh",
                        code.unwrap_or_default()
                    )),
                })
            }
        }
    }
}

/// Maps the central row; an unknown status is a central data problem, not a guest.
fn to_member(m: CentralMember) -> Result<Member, DirectoryError> {
    let membership = match m.membership_status.as_str() {
        "active" => MembershipStatus::Active,
        "expired" => MembershipStatus::Expired,
        "suspended" => MembershipStatus::Suspended,
        other => {
            return Err(DirectoryError::Failed(format!(
                "member {} has membership_status `{other}`, expected active, expired or suspended",
                m.member_id
            )));
        }
    };
    Ok(Member {
        id: m.member_id,
        first_name: m.first_name,
        language: m.language,
        membership,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: &str) -> CentralMember {
        CentralMember {
            member_id: "m1".into(),
            first_name: "Alice".into(),
            language: "fr".into(),
            membership_status: status.into(),
        }
    }

    #[test]
    fn maps_statuses_and_refuses_unknown_ones() {
        for (s, m) in [
            ("active", MembershipStatus::Active),
            ("expired", MembershipStatus::Expired),
            ("suspended", MembershipStatus::Suspended),
        ] {
            assert_eq!(to_member(row(s)).unwrap().membership, m);
        }
        let e = to_member(row("vip")).unwrap_err();
        assert!(e.to_string().contains("`vip`"), "{e}");
    }
}
