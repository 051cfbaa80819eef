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
echo "==> crate graph (ARCHITECTURE.md: core without I/O, one owner per I/O crate)"
scripts/check-crate-graph.sh
echo "==> cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo doc (intra-doc links must resolve)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
echo "==> cargo bench --no-run (benchmarks must build; run them with scripts/bench.sh)"
cargo bench --workspace --no-run --locked
echo "==> Pion interop peer (offline, from Debian's Go sources)"
export JARVIS_PION_PEER="$(cargo_target_dir)/pion-peer/pion-peer"
tests/interop/pion-peer/build.sh "$JARVIS_PION_PEER"
echo "==> cargo test --workspace (tests/interop_pion.rs runs a whole session against that peer)"
cargo test --workspace --locked
scripts/ci-packaging.sh   # unit verify/security, install.sh, .deb, aarch64 under qemu
