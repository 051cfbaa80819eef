//! Sync decisions without I/O: when to send a batch, how a failure is classified, how long
//! to wait before retrying. The Postgres writer only executes what these say.

use std::time::Duration;

/// How events are grouped into batches (`central.batch_max_events`, `central.batch_max_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Most events sent in one INSERT (one transaction).
    pub max_events: usize,
    /// Longest an event waits for companions before a partial batch is sent.
    pub max_wait_ms: u64,
}

/// What the worker does with the pending outbox right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchDecision {
    /// Nothing pending: sleep until new events are signalled (or the next poll).
    Idle,
    /// Send the oldest `n` pending events now.
    Send(usize),
    /// A partial batch is filling up: look again after this long.
    Wait(Duration),
}

impl BatchPolicy {
    /// Decides from the backlog size and the age of its oldest event.
    ///
    /// A full batch goes at once; a partial one goes when its oldest event has waited
    /// `max_wait_ms`, so a quiet kiosk still syncs within that bound and a busy one (or one
    /// draining after an outage) sends full batches back to back.
    pub fn decide(&self, pending: usize, oldest_age_ms: u64) -> BatchDecision {
        let max = self.max_events.max(1);
        if pending == 0 {
            BatchDecision::Idle
        } else if pending >= max {
            BatchDecision::Send(max)
        } else if oldest_age_ms >= self.max_wait_ms {
            BatchDecision::Send(pending)
        } else {
            BatchDecision::Wait(Duration::from_millis(self.max_wait_ms - oldest_age_ms))
        }
    }
}

/// What a failed write means for the events in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// The network, the server or the pooler had a problem: retry the same events later.
    Transient,
    /// The server refused an event for its own content (data exception, constraint, oversized
    /// value): some event of the batch is poisoned. Isolate it, dead-letter it, and let the
    /// rest through.
    Poison,
    /// The central side is not set up for this kiosk (missing table, column or function, a
    /// revoked grant or an RLS policy refusing the kiosk's own rows, a trigger or function that
    /// raises, bad credentials, unknown database): no event is at fault, and dead-lettering
    /// would discard the whole backlog one event at a time. Stall, keep buffering, report the
    /// cause, retry slowly.
    Setup,
}

/// Classifies a failure by its SQLSTATE (`None`: no server answer: I/O error, timeout, closed).
///
/// Only content errors poison an event. A permission error (42501) or a PL/pgSQL `RAISE`
/// (P0xxx) is the same for every event the kiosk writes (the writer always sets its own
/// `kiosk_id`, and central's triggers validate content with 22xxx casts, not `RAISE`), so it
/// is a central regression to fix, not data to discard.
pub fn classify(sqlstate: Option<&str>) -> FailureClass {
    let Some(code) = sqlstate else {
        return FailureClass::Transient;
    };
    match code.get(..2).unwrap_or("") {
        // data exception, integrity constraint, cardinality, WITH CHECK OPTION,
        // program limit (a single oversized event)
        "22" | "23" | "21" | "44" | "54" => FailureClass::Poison,
        // syntax or access rule (undefined table/column/function, insufficient privilege),
        // authorization, unknown database or schema, feature not supported, PL/pgSQL RAISE,
        // routine and trigger failures (external routine, SQL routine, triggered action,
        // triggered data change)
        "42" | "28" | "3D" | "3F" | "0A" | "P0" | "38" | "39" | "2F" | "09" | "27" => {
            FailureClass::Setup
        }
        // connection, rollback (serialization, deadlock), resources, object in use,
        // operator intervention (shutdown, cancel), system and internal errors, others
        _ => FailureClass::Transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const P: BatchPolicy = BatchPolicy {
        max_events: 500,
        max_wait_ms: 1000,
    };

    #[test]
    fn batches_full_partial_and_idle() {
        assert_eq!(P.decide(0, 0), BatchDecision::Idle);
        assert_eq!(P.decide(0, 5000), BatchDecision::Idle);
        assert_eq!(P.decide(500, 0), BatchDecision::Send(500));
        assert_eq!(P.decide(100_000, 0), BatchDecision::Send(500));
        assert_eq!(P.decide(3, 1000), BatchDecision::Send(3));
        assert_eq!(P.decide(3, 999_999), BatchDecision::Send(3));
        assert_eq!(
            P.decide(3, 250),
            BatchDecision::Wait(Duration::from_millis(750))
        );
    }

    #[test]
    fn zero_wait_sends_at_once_and_zero_max_still_progresses() {
        let p = BatchPolicy {
            max_events: 0,
            max_wait_ms: 0,
        };
        assert_eq!(p.decide(7, 0), BatchDecision::Send(1));
    }

    #[test]
    fn classifies_sqlstates() {
        use FailureClass::*;
        for (code, class) in [
            (None, Transient),
            (Some("08006"), Transient),
            (Some("08001"), Transient),
            (Some("40001"), Transient),
            (Some("40P01"), Transient),
            (Some("53300"), Transient),
            (Some("55P03"), Transient),
            (Some("57P01"), Transient),
            (Some("57014"), Transient),
            (Some("58030"), Transient),
            (Some("XX000"), Transient),
            (Some("22P02"), Poison),
            (Some("22003"), Poison),
            (Some("23505"), Poison),
            (Some("23514"), Poison),
            (Some("23503"), Poison),
            (Some("42501"), Setup),
            (Some("P0001"), Setup),
            (Some("P0004"), Setup),
            (Some("39P01"), Setup),
            (Some("2F005"), Setup),
            (Some("54000"), Poison),
            (Some("42P01"), Setup),
            (Some("42703"), Setup),
            (Some("42883"), Setup),
            (Some("28P01"), Setup),
            (Some("3D000"), Setup),
            (Some(""), Transient),
            (Some("x"), Transient),
        ] {
            assert_eq!(classify(code), class, "{code:?}");
        }
    }

    proptest! {
        #[test]
        fn decide_never_exceeds_max_and_always_progresses(
            max in 1usize..2000, wait in 0u64..10_000, pending in 0usize..100_000, age in 0u64..20_000
        ) {
            let p = BatchPolicy { max_events: max, max_wait_ms: wait };
            match p.decide(pending, age) {
                BatchDecision::Idle => prop_assert_eq!(pending, 0),
                BatchDecision::Send(n) => {
                    prop_assert!(n >= 1 && n <= max && n <= pending);
                    prop_assert!(n == max || age >= wait);
                }
                BatchDecision::Wait(d) => {
                    prop_assert!(pending > 0 && pending < max && age < wait);
                    prop_assert_eq!(d, Duration::from_millis(wait - age));
                }
            }
        }

        #[test]
        fn class_depends_on_the_sqlstate_class_only(code in "[0-9A-Z]{5}") {
            let general = format!("{}000", &code[..2]);
            prop_assert_eq!(classify(Some(&code)), classify(Some(&general)));
        }
    }
}
