//! `jarvis-dashboard`: the fleet at a glance. A page for operators (each kiosk alive or not, its
//! session in progress, today's sessions and spend against the budgets, the last alerts, sync
//! backlogs, SLA figures for a period) read from the central Postgres through
//! `monitoring_service`, and webhook notifications of critical incidents, driven from central
//! so several instances never send the same one twice.
//!
//! - [`config`]: layered configuration (`JARVIS_DASHBOARD__*`).
//! - [`db`]: connections to central; [`queries`]: the page's statements.
//! - [`view`]: HTML and SVG charts, without I/O.
//! - [`auth`]: operators, argon2 hashes, login sessions, the login audit.
//! - [`notify`]: incidents, deliveries, webhooks.
//! - [`server`]: the HTTP routes. Logs: `jarvis_service::telemetry`.

pub mod auth;
pub mod config;
pub mod db;
pub mod notify;
pub mod queries;
pub mod server;
pub mod view;
