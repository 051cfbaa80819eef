//! Log setup: journald under systemd, human-readable on a terminal, JSON on request.
