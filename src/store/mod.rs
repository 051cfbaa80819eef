//! Local SQLite store: migrations, outbox, sessions, retention (the source of truth on the kiosk).
