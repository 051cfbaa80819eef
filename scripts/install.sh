#!/usr/bin/env bash
# Installs jarvis-kiosk on a kiosk, from a checkout of this repository. Safe to run again: it
# only changes what differs, and never overwrites the configuration or the credentials.
#
#   sudo scripts/install.sh [--binary PATH]          install or upgrade (then enable the unit)
#   sudo scripts/install.sh --uninstall [--purge]    remove; keeps /etc/jarvis-kiosk and
#                                                    /var/lib/jarvis-kiosk unless --purge
#   scripts/install.sh --root DIR ...                the same into a scratch root (no systemctl,
#                                                    no udevadm: what CI tests)
#
# The binary defaults to target/release/jarvis-kiosk (cargo build --release); for an ARM kiosk
# pass --binary target/aarch64-unknown-linux-gnu/release/jarvis-kiosk (scripts/build-arm.sh).
# On Debian-family kiosks the .deb (cargo deb, see README) installs the same files.
# The user comes from systemd-sysusers when present, else groupadd/useradd
# (JARVIS_INSTALL_USERADD=1 forces the latter; CI uses it to test that path).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
name=jarvis-kiosk
root=""
binary=""
mode=install
purge=0

usage() {
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

while [ "$#" -gt 0 ]; do
  case "$1" in
    --root) [ "$#" -ge 2 ] || usage; root=$2; shift 2 ;;
    --root=*) root=${1#--root=}; shift ;;
    --binary) [ "$#" -ge 2 ] || usage; binary=$2; shift 2 ;;
    --binary=*) binary=${1#--binary=}; shift ;;
    --uninstall) mode=uninstall; shift ;;
    --purge) purge=1; shift ;;
    -h|--help) usage ;;
    *) echo "install.sh: unknown option '$1'" >&2; usage ;;
  esac
done
if [ "$purge" = 1 ] && [ "$mode" != uninstall ]; then
  echo "install.sh: --purge only goes with --uninstall" >&2; exit 2
fi
if [ -n "$root" ]; then
  mkdir -p "$root"
  root=$(cd "$root" && pwd)
  [ "$root" != / ] || root=""
fi
if [ -z "$root" ] && [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (sudo $0 $*), or pass --root DIR to install into a scratch root" >&2
  exit 1
fi
is_root_user() { [ "$(id -u)" -eq 0 ]; }
# chown only as root (a scratch --root install by a normal user keeps its own ownership).
own() { if is_root_user; then chown "$@"; fi; }

# Installed paths, inside $root.
bin_path=/usr/bin/$name
unit_path=/usr/lib/systemd/system/$name.service
sysusers_path=/usr/lib/sysusers.d/$name.conf
udev_path=/usr/lib/udev/rules.d/60-jarvis-scanner.rules
etc_dir=/etc/$name
config_path=$etc_dir/config.toml
cred_dir=$etc_dir/credentials
credentials=(openai-api-key central-password badge-hash-key)
state_dir=/var/lib/$name

say() { echo "install.sh: $*"; }
live() { [ -z "$root" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

# put SRC DST MODE: installs a root-owned file unless an identical one with that mode is there.
put() {
  local src=$1 dst=$root$2 m=$3
  if [ -f "$dst" ] && cmp -s "$src" "$dst" && [ "$(stat -c %a "$dst")" = "$m" ]; then
    say "unchanged  $2"
    return
  fi
  install -D -m "$m" "$src" "$dst"
  own 0:0 "$dst"
  say "installed  $2 (mode $m)"
}

# ensure_dir DIR MODE [OWNER:GROUP]
ensure_dir() {
  local dir=$root$1 m=$2 owner=${3:-0:0}
  if [ -d "$dir" ] && [ "$(stat -c %a "$dir")" = "$m" ] \
     && { ! is_root_user || [ "$(stat -c %u:%g "$dir")" = "$owner" ]; }; then
    say "unchanged  $1/"
    return
  fi
  mkdir -p "$dir"
  chmod "$m" "$dir"
  own "$owner" "$dir"
  say "set        $1/ (mode $m, owner $owner)"
}

# The numeric uid:gid of the service user, read from $root/etc/passwd.
service_ids() {
  local uid gid
  uid=$(awk -F: -v u="$name" '$1 == u { print $3 }' "$root/etc/passwd" 2>/dev/null)
  gid=$(awk -F: -v u="$name" '$1 == u { print $4 }' "$root/etc/passwd" 2>/dev/null)
  [ -n "$uid" ] && [ -n "$gid" ] || return 1
  echo "$uid:$gid"
}

# Creates the user and groups from the sysusers.d entry: systemd-sysusers when present,
# else groupadd/useradd/usermod.
create_user() {
  if service_ids >/dev/null; then
    say "unchanged  user $name"
  elif ! is_root_user; then
    say "skipped    user $name (not root)"
    return
  elif [ "${JARVIS_INSTALL_USERADD:-0}" != 1 ] && command -v systemd-sysusers >/dev/null 2>&1; then
    if [ -n "$root" ]; then
      mkdir -p "$root/etc"
      systemd-sysusers --root="$root" "$root$sysusers_path"
    else
      systemd-sysusers "$sysusers_path"
    fi
    say "created    user $name (systemd-sysusers)"
  else
    local g prefix=() f
    if [ -n "$root" ]; then
      prefix=(--root "$root")
      mkdir -p "$root/etc"
      for f in passwd group shadow gshadow; do [ -e "$root/etc/$f" ] || : > "$root/etc/$f"; done
    fi
    for g in "$name" dialout audio input; do
      grep -q "^$g:" "$root/etc/group" 2>/dev/null || groupadd "${prefix[@]}" --system "$g"
    done
    useradd "${prefix[@]}" --system --gid "$name" --groups dialout,audio,input \
      --home-dir "$state_dir" --no-create-home --shell /usr/sbin/nologin \
      --comment "JARVIS kiosk daemon" "$name"
    say "created    user $name (useradd)"
  fi
  # A user that exists from before (e.g. created by hand) still needs the device groups.
  if [ -z "$root" ] && is_root_user && id "$name" >/dev/null 2>&1; then
    local g
    for g in dialout audio input; do
      if getent group "$g" >/dev/null && ! id -nG "$name" | tr ' ' '\n' | grep -qx "$g"; then
        usermod -aG "$g" "$name"
        say "added      $name to group $g"
      fi
    done
  fi
}

do_install() {
  if [ -z "$binary" ]; then
    binary=$repo/target/release/$name
    [ -x "$binary" ] || {
      echo "install.sh: no binary at $binary: run 'cargo build --release' or pass --binary PATH" >&2
      exit 1
    }
  fi
  [ -f "$binary" ] && [ -x "$binary" ] || { echo "install.sh: $binary is not an executable file" >&2; exit 1; }

  put "$binary" "$bin_path" 755
  put "$repo/systemd/$name.service" "$unit_path" 644
  put "$repo/systemd/$name.sysusers" "$sysusers_path" 644
  put "$repo/systemd/60-jarvis-scanner.rules" "$udev_path" 644
  create_user

  ensure_dir "$etc_dir" 755
  if [ -e "$root$config_path" ]; then
    say "kept       $config_path (never overwritten)"
  else
    put "$repo/config/$name.example.toml" "$config_path" 644
  fi
  ensure_dir "$cred_dir" 700
  local c f
  for c in "${credentials[@]}"; do
    f=$root$cred_dir/$c
    if [ -e "$f" ]; then
      if [ "$(stat -c %a "$f")" != 600 ] || { is_root_user && [ "$(stat -c %u:%g "$f")" != 0:0 ]; }; then
        chmod 600 "$f"
        own 0:0 "$f"
        say "fixed      $cred_dir/$c (root, mode 600; content kept)"
      else
        say "kept       $cred_dir/$c"
      fi
    else
      (umask 077 && : > "$f")
      own 0:0 "$f"
      say "created    $cred_dir/$c (empty placeholder, root, mode 600)"
    fi
  done

  local ids
  if ids=$(service_ids); then
    ensure_dir "$state_dir" 750 "$ids"
    # Files left by a run as another user (e.g. root) would stop the service opening its store.
    if is_root_user && [ -n "$(find "$root$state_dir" -mindepth 1 \( ! -uid "${ids%:*}" -o ! -gid "${ids#*:}" \) -print -quit)" ]; then
      chown -R "$ids" "$root$state_dir"
      say "fixed      ownership under $state_dir"
    fi
  else
    ensure_dir "$state_dir" 750
  fi

  if live; then
    systemctl daemon-reload
    if command -v udevadm >/dev/null 2>&1; then
      udevadm control --reload
      udevadm trigger --subsystem-match=tty --action=add
    fi
    systemctl enable "$name.service"
    systemctl try-restart "$name.service"
    if ! "$bin_path" --config "$config_path" config check >/dev/null; then
      say "WARNING: $config_path has errors (above); fix them before starting the service"
    fi
    cat <<EOF
install.sh: done. Next:
  1. edit $config_path (kiosk.id; uncomment api_key_file = "openai-api-key" and, with a
     central database, central.url and password_file = "central-password")
  2. put the secrets in $cred_dir/ (one value per file, they stay root-owned, mode 600)
  3. jarvis-kiosk --config $config_path config check && systemctl start $name
  4. jarvis-kiosk doctor; journalctl -u $name -f
EOF
  else
    say "done (into ${root:-/}; systemctl and udevadm not run)"
  fi
}

do_uninstall() {
  if live; then
    systemctl disable --now "$name.service" 2>/dev/null || true
  fi
  local p
  for p in "$bin_path" "$unit_path" "$sysusers_path" "$udev_path"; do
    if [ -e "$root$p" ]; then rm -f "$root$p"; say "removed    $p"; fi
  done
  if live; then
    systemctl daemon-reload
    if command -v udevadm >/dev/null 2>&1; then udevadm control --reload; fi
  fi
  if [ "$purge" = 1 ]; then
    for p in "$etc_dir" "$state_dir"; do
      if [ -e "$root$p" ]; then rm -rf "$root$p"; say "purged     $p"; fi
    done
    say "the user $name is kept (files elsewhere may still belong to it): userdel $name"
  else
    for p in "$etc_dir" "$state_dir"; do
      if [ -e "$root$p" ]; then say "kept       $p (remove with --uninstall --purge)"; fi
    done
  fi
  say "uninstalled from ${root:-/}"
}

case "$mode" in
  install) do_install ;;
  uninstall) do_uninstall ;;
esac
