//! The start-up check: does the central database have what this kiosk needs?
//!
//! A kiosk newer than its central database would otherwise fail on every batch with
//! "column does not exist" (the production "Could not find the 'input_audio_tokens_cost_usd'
//! column" error). Instead it names the missing object and the migration that adds it, keeps
//! buffering locally, and checks again later.

use std::collections::BTreeSet;

/// One database object the kiosk relies on, and the migration that creates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement {
    /// `kiosk_events.payload`, `function current_kiosk_id()`, `trigger kiosk_events_derive`.
    pub object: &'static str,
    /// File in `sql/central/` that adds it.
    pub migration: &'static str,
}

const EVENTS: &str = "0003_kiosk_events.sql";
const DERIVED: &str = "0004_derived_tables.sql";
const SECURITY: &str = "0005_security.sql";
const USAGE_ONCE: &str = "0007_usage_once.sql";
/// GPT-Live sessions: without it central would store `live_usage` and `delegation_usage`
/// events but derive no cost from them.
const LIVE: &str = "0011_live_sessions.sql";

/// Everything the sync and the member lookup use, in migration order.
pub const REQUIRED: &[Requirement] = &[
    Requirement {
        object: "kiosk_events.event_id",
        migration: EVENTS,
    },
    Requirement {
        object: "kiosk_events.kiosk_id",
        migration: EVENTS,
    },
    Requirement {
        object: "kiosk_events.session_id",
        migration: EVENTS,
    },
    Requirement {
        object: "kiosk_events.seq",
        migration: EVENTS,
    },
    Requirement {
        object: "kiosk_events.kind",
        migration: EVENTS,
    },
    Requirement {
        object: "kiosk_events.occurred_at",
        migration: EVENTS,
    },
    Requirement {
        object: "kiosk_events.payload",
        migration: EVENTS,
    },
    Requirement {
        object: "function current_kiosk_id()",
        migration: EVENTS,
    },
    Requirement {
        object: "trigger kiosk_events_derive",
        migration: DERIVED,
    },
    Requirement {
        object: "openai_realtime_sessions.input_audio_tokens_cost_usd",
        migration: DERIVED,
    },
    Requirement {
        object: "openai_realtime_sessions.total_cost_usd",
        migration: DERIVED,
    },
    Requirement {
        object: "function kiosk_lookup_member(text)",
        migration: SECURITY,
    },
    Requirement {
        object: "index kiosk_events_usage_once",
        migration: USAGE_ONCE,
    },
    Requirement {
        object: "openai_realtime_sessions.duration_cost_usd",
        migration: LIVE,
    },
    Requirement {
        object: "openai_realtime_sessions.delegation_cost_usd",
        migration: LIVE,
    },
];

/// One query (simple protocol, pooler-safe) listing which required objects exist, one name
/// per row in the same spelling as [`Requirement::object`]. Catalog tables are readable by
/// every role, so the kiosk's own role can run it.
pub const PROBE_SQL: &str = "\
SELECT c.relname || '.' || a.attname FROM pg_catalog.pg_attribute a \
  JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
 WHERE n.nspname = 'public' AND c.relname IN ('kiosk_events', 'openai_realtime_sessions') \
   AND a.attnum > 0 AND NOT a.attisdropped \
UNION ALL SELECT 'function current_kiosk_id()' WHERE to_regprocedure('public.current_kiosk_id()') IS NOT NULL \
UNION ALL SELECT 'function kiosk_lookup_member(text)' WHERE to_regprocedure('public.kiosk_lookup_member(text)') IS NOT NULL \
UNION ALL SELECT 'trigger ' || t.tgname FROM pg_catalog.pg_trigger t \
 WHERE t.tgrelid = to_regclass('public.kiosk_events') AND t.tgname = 'kiosk_events_derive' \
UNION ALL SELECT 'index kiosk_events_usage_once' WHERE to_regclass('public.kiosk_events_usage_once') IS NOT NULL";

/// The requirements absent from `found` (the rows of [`PROBE_SQL`]).
pub fn missing(found: &BTreeSet<String>) -> Vec<Requirement> {
    REQUIRED
        .iter()
        .filter(|r| !found.contains(r.object))
        .copied()
        .collect()
}

/// One line for health and the log: what is missing and which migrations to apply.
pub fn explain(missing: &[Requirement]) -> Option<String> {
    if missing.is_empty() {
        return None;
    }
    let objects: Vec<&str> = missing.iter().map(|r| r.object).collect();
    let migrations: BTreeSet<&str> = missing.iter().map(|r| r.migration).collect();
    let files: Vec<String> = migrations
        .iter()
        .map(|m| format!("sql/central/{m}"))
        .collect();
    Some(format!(
        "central database lacks {} (added by {}): run scripts/central-migrate.sh on it; events stay buffered meanwhile",
        objects.join(", "),
        files.join(", ")
    ))
}

/// Checks the identity the database gives this login role against `kiosk.id`.
pub fn explain_identity(kiosk_id: &str, central: Option<&str>, can_insert: bool) -> Option<String> {
    match central {
        None => Some(format!(
            "the central login role is not registered for any kiosk: run scripts/central-add-kiosk.sh --password-file PATH DATABASE_URL {kiosk_id} GYM_ID and use the URL it prints as central.url"
        )),
        Some(c) if c != kiosk_id => Some(format!(
            "the central login role belongs to kiosk `{c}` but kiosk.id is `{kiosk_id}`: fix kiosk.id or central.url"
        )),
        Some(_) if !can_insert => Some(
            "the central login role may not INSERT into kiosk_events: re-run scripts/central-migrate.sh (0005_security.sql grants it to kiosk_service)".into()
        ),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> BTreeSet<String> {
        REQUIRED.iter().map(|r| r.object.to_owned()).collect()
    }

    #[test]
    fn nothing_missing_when_all_found() {
        assert!(missing(&all()).is_empty());
        assert_eq!(explain(&[]), None);
    }

    #[test]
    fn names_the_object_and_its_migration() {
        let mut found = all();
        found.remove("openai_realtime_sessions.input_audio_tokens_cost_usd");
        found.remove("function kiosk_lookup_member(text)");
        let text = explain(&missing(&found)).unwrap();
        assert!(
            text.contains("openai_realtime_sessions.input_audio_tokens_cost_usd"),
            "{text}"
        );
        assert!(
            text.contains("sql/central/0004_derived_tables.sql"),
            "{text}"
        );
        assert!(text.contains("sql/central/0005_security.sql"), "{text}");
        assert!(text.contains("scripts/central-migrate.sh"), "{text}");
    }

    #[test]
    fn empty_database_needs_everything() {
        assert_eq!(missing(&BTreeSet::new()).len(), REQUIRED.len());
    }

    #[test]
    fn every_requirement_is_created_by_the_migration_it_names() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sql/central");
        for r in REQUIRED {
            let sql = std::fs::read_to_string(dir.join(r.migration)).unwrap();
            let name = r
                .object
                .trim_start_matches("function ")
                .trim_start_matches("trigger ")
                .trim_start_matches("index ");
            let name = name.split('(').next().unwrap();
            let needle = name.rsplit('.').next().unwrap();
            assert!(
                sql.contains(needle),
                "{} does not mention {}",
                r.migration,
                r.object
            );
        }
    }

    #[test]
    fn identity_problems_say_how_to_fix() {
        assert!(
            explain_identity("k1", None, true)
                .unwrap()
                .contains("central-add-kiosk.sh")
        );
        assert!(
            explain_identity("k1", Some("k2"), true)
                .unwrap()
                .contains("kiosk.id")
        );
        assert!(
            explain_identity("k1", Some("k1"), false)
                .unwrap()
                .contains("0005_security.sql")
        );
        assert_eq!(explain_identity("k1", Some("k1"), true), None);
    }
}
