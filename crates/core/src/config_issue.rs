//! A setting that cannot be used, named by its config key: what the core's settings checks
//! (prices) and the config validation both report, so a technician reads one list.

use std::fmt;

/// One thing wrong with the configuration, tied to its key (`session.max_cost_usd`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub key: String,
    pub problem: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}
