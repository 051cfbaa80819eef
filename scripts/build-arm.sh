#!/usr/bin/env bash
# Builds release binaries of jarvis-kiosk for ARM kiosks.
#
#   scripts/build-arm.sh [aarch64|armv7|all]     (default: all)
#
# With `cross` and a running Docker engine it uses cross-rs (see cross.toml: Ubuntu 20.04 images,
# glibc 2.31, so the binary also runs on older kiosk OSes). Otherwise it builds on this Debian
# machine with Debian's cross toolchains and multiarch -dev packages, installing what is missing
# (needs root or sudo); such binaries need glibc >= 2.34 (Debian 12, Raspberry Pi OS bookworm,
# Ubuntu 22.04 or later).
#
# Output: target/<triple>/release/jarvis-kiosk (stripped by the release profile; under
# $CARGO_TARGET_DIR when set).
# Environment: JARVIS_ARM_NO_INSTALL=1 skips the apt/rustup steps (for machines already set up).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

usage() { echo "usage: $0 [aarch64|armv7|all]" >&2; exit 2; }

case "${1:-all}" in
  aarch64) arches=(aarch64) ;;
  armv7) arches=(armv7) ;;
  all) arches=(aarch64 armv7) ;;
  -h|--help) usage ;;
  *) echo "unknown target '$1'" >&2; usage ;;
esac
[ "$#" -le 1 ] || usage

# Per target: Rust triple, Debian architecture, GNU triple of the cross gcc.
target_of() { case "$1" in aarch64) echo aarch64-unknown-linux-gnu ;; armv7) echo armv7-unknown-linux-gnueabihf ;; esac; }
debarch_of() { case "$1" in aarch64) echo arm64 ;; armv7) echo armhf ;; esac; }
gnu_of() { case "$1" in aarch64) echo aarch64-linux-gnu ;; armv7) echo arm-linux-gnueabihf ;; esac; }

have_cross() {
  command -v cross >/dev/null 2>&1 && command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# Installs the Debian cross toolchain and the target's multiarch -dev packages when missing.
ensure_cross_toolchain() {
  local arch=$1 debarch gnu missing=() p
  debarch=$(debarch_of "$arch")
  gnu=$(gnu_of "$arch")
  if ! dpkg --print-foreign-architectures | grep -qx "$debarch"; then
    echo "==> dpkg --add-architecture $debarch"
    as_root dpkg --add-architecture "$debarch"
  fi
  for p in "gcc-$gnu" "libc6-dev-$debarch-cross" "libasound2-dev:$debarch" "libudev-dev:$debarch" \
           "libopus-dev:$debarch" qemu-user-static pkg-config; do
    installed "$p" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> installing for $arch: ${missing[*]}"
    # With armhf added, apt-get update has been seen to exit 100 on a mirror mid-sync
    # (Packages.xz size mismatch) while the install still works: tolerate it, the install decides.
    as_root apt-get update -qq || echo "warning: apt-get update failed; trying the install anyway" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

ensure_rust_target() {
  local target=$1
  if ! rustup target list --installed | grep -qx "$target"; then
    echo "==> rustup target add $target"
    rustup target add "$target"
  fi
}

# Exports the cc / cargo / pkg-config variables for one target (aws-lc-sys, libopus, libasound
# and libudev are found through these; the linker is also in .cargo/config.toml).
export_cross_env() {
  local arch=$1 target gnu up low
  target=$(target_of "$arch")
  gnu=$(gnu_of "$arch")
  up=$(echo "$target" | tr 'a-z-' 'A-Z_')
  low=$(echo "$target" | tr '-' '_')
  export "CARGO_TARGET_${up}_LINKER=$gnu-gcc"
  export "CC_${low}=$gnu-gcc" "CXX_${low}=$gnu-g++" "AR_${low}=$gnu-ar"
  export PKG_CONFIG_ALLOW_CROSS=1
  export "PKG_CONFIG_LIBDIR_${low}=/usr/lib/$gnu/pkgconfig:/usr/share/pkgconfig"
}

for arch in "${arches[@]}"; do
  target=$(target_of "$arch")
  start=$(date +%s)
  if have_cross; then
    echo "==> cross build --release --target $target"
    cross build --release --locked --target "$target"
  else
    echo "==> cross or a Docker engine is missing: using Debian's cross toolchain for $target"
    if [ "${JARVIS_ARM_NO_INSTALL:-0}" != 1 ]; then
      ensure_cross_toolchain "$arch"
      ensure_rust_target "$target"
    fi
    command -v "$(gnu_of "$arch")-gcc" >/dev/null 2>&1 \
      || { echo "$(gnu_of "$arch")-gcc not found: install gcc-$(gnu_of "$arch") or unset JARVIS_ARM_NO_INSTALL" >&2; exit 1; }
    export_cross_env "$arch"
    echo "==> cargo build --release --target $target"
    cargo build --release --locked --target "$target"
  fi
  bin="${CARGO_TARGET_DIR:-target}/$target/release/jarvis-kiosk"
  [ -x "$bin" ] || { echo "build finished but $bin is missing" >&2; exit 1; }
  secs=$(( $(date +%s) - start ))
  size=$(stat -c %s "$bin")
  echo "==> $bin: $size bytes ($(( size / 1024 )) KiB), built in ${secs}s"
  file "$bin" 2>/dev/null || true
done
