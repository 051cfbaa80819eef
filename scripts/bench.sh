#!/usr/bin/env bash
# Runs every benchmark in release mode and prints their tables (numbers go in README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_packages
trap cleanup_postgres EXIT
ensure_postgres
for b in $(sed -n 's/^name = "\(.*\)"/\1/p' <(awk '/^\[\[bench\]\]/{f=1;next} f&&/^name/{print;f=0}' Cargo.toml)); do
  echo "==> $b"
  cargo bench --locked --bench "$b"
done
echo "==> jarvis-audio playout"
cargo bench --locked -p jarvis-audio --bench playout
