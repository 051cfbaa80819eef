//! Daemon wiring: supervisor, adapters, shutdown, systemd notify and watchdog.
