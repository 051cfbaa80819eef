#!/usr/bin/env bash
# Runs every check CI runs, on a fresh Debian machine as root or with sudo:
# installs what is missing, finds or starts a Postgres, then fmt, clippy and all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_packages
trap cleanup_postgres EXIT
ensure_postgres

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings
echo "==> cargo bench --no-run (benchmarks must build; run them with scripts/bench.sh)"
cargo bench --no-run --locked
echo "==> cargo test"
cargo test --locked
scripts/ci-packaging.sh   # unit verify/security, install.sh, .deb, aarch64 under qemu
