#!/usr/bin/env bash
# Packaging checks, run by scripts/test.sh (so by CI) after the Rust tests; as root on Debian.
#   1. the systemd units (kiosk and broker): `systemd-analyze verify` (warnings fail) and
#      `security` (exposure <= 2.0)
#   2. the udev rule and sysusers entry: syntax, and that they agree with the unit and the config
#   3. scripts/install.sh into a scratch root: files and modes, idempotence, uninstall, purge
#   4. the amd64 .deb (cargo-deb): contents, conffiles, maintainer scripts
#   5. the aarch64 build (scripts/build-arm.sh), run under qemu-user, and its .deb
# Environment: JARVIS_CI_SKIP_ARM=1 skips step 5 (quick local runs; CI runs everything).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

CARGO_DEB_VERSION=3.8.0
name=jarvis-kiosk
unit=systemd/$name.service
work=$(mktemp -d /tmp/jarvis-ci-packaging.XXXXXX)
trap 'rm -rf "$work"' EXIT
trap 'echo "ci-packaging: FAIL: line $LINENO: $BASH_COMMAND" >&2' ERR

step() { echo "==> packaging: $*"; }
fail() { echo "ci-packaging: FAIL: $*" >&2; exit 1; }
pass() { passed=$((passed + 1)); echo "    ok: $*"; }
passed=0
summary=()

[ "$(id -u)" -eq 0 ] || fail "run as root: the install test checks root ownership"
for tool in systemd-analyze systemd-sysusers dpkg-deb; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool not found: install the Debian package systemd / dpkg"
done

step "cargo build --release (the binary the unit, install.sh and the .deb are checked with)"
t0=$(date +%s)
cargo build --release --locked
bin=$PWD/target/release/$name
summary+=("x86_64 release build: $(( $(date +%s) - t0 )) s, $(stat -c %s "$bin") bytes")

# --- 1. unit ------------------------------------------------------------------------------------
step "systemd-analyze verify $unit (ExecStart rewritten to $bin)"
mkdir -p "$work/unit"
sed "s#^ExecStart=/usr/bin/$name #ExecStart=$bin #" "$unit" > "$work/unit/$name.service"
grep -q "^ExecStart=$bin --config /etc/$name/config.toml run\$" "$work/unit/$name.service" \
  || fail "$unit: ExecStart is not '/usr/bin/$name --config /etc/$name/config.toml run'"
if ! systemd-analyze verify --recursive-errors=no "$work/unit/$name.service" > "$work/verify.log" 2>&1; then
  cat "$work/verify.log" >&2
  fail "systemd-analyze verify $unit"
fi
[ ! -s "$work/verify.log" ] || { cat "$work/verify.log" >&2; fail "systemd-analyze verify printed warnings"; }
pass "verify: no errors, no warnings"

step "systemd-analyze security --offline=true --threshold=20 (exposure must be <= 2.0)"
if ! systemd-analyze security --offline=true --threshold=20 "$work/unit/$name.service" > "$work/security.log" 2>&1; then
  grep -E '✗|Overall' "$work/security.log" >&2 || cat "$work/security.log" >&2
  fail "exposure above 2.0"
fi
exposure=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$work/security.log")
[ -n "$exposure" ] || fail "no exposure level in systemd-analyze security's output"
grep '✗' "$work/security.log" | sed 's/^/    /'
pass "exposure $exposure"
summary+=("systemd-analyze security exposure: $exposure (threshold 2.0)")

step "the broker's unit (systemd/jarvis-broker.service): verify and the same exposure threshold"
cargo build --release --locked -p jarvis-broker
sed "s#^ExecStart=/usr/bin/jarvis-broker #ExecStart=$PWD/target/release/jarvis-broker #" \
  systemd/jarvis-broker.service > "$work/unit/jarvis-broker.service"
if ! systemd-analyze verify --recursive-errors=no "$work/unit/jarvis-broker.service" > "$work/verify-broker.log" 2>&1 \
   || [ -s "$work/verify-broker.log" ]; then
  cat "$work/verify-broker.log" >&2
  fail "systemd-analyze verify systemd/jarvis-broker.service"
fi
systemd-analyze security --offline=true --threshold=20 "$work/unit/jarvis-broker.service" > "$work/security-broker.log" 2>&1 \
  || { grep -E '✗|Overall' "$work/security-broker.log" >&2; fail "broker unit exposure above 2.0"; }
broker_exposure=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$work/security-broker.log")
systemd-sysusers --dry-run "$PWD/systemd/jarvis-broker.sysusers" > /dev/null 2>&1 \
  || fail "systemd/jarvis-broker.sysusers does not parse"
pass "broker unit: verify clean, exposure $broker_exposure"
summary+=("broker unit exposure: $broker_exposure (threshold 2.0)")

step "unit contract: what the daemon needs is there, what would cut it off is not"
for d in 'Type=notify' 'WatchdogSec=' 'Restart=on-failure' 'StartLimitBurst=' 'StartLimitIntervalSec=' \
         "User=$name" 'SupplementaryGroups=dialout audio input' "StateDirectory=$name" \
         "ConfigurationDirectory=$name" "RuntimeDirectory=$name" \
         "LoadCredential=openai-api-key:/etc/$name/credentials/openai-api-key" \
         "LoadCredential=central-password:/etc/$name/credentials/central-password" \
         "LoadCredential=badge-hash-key:/etc/$name/credentials/badge-hash-key" \
         'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' 'NoNewPrivileges=yes' \
         'DevicePolicy=closed' 'DeviceAllow=char-ttyACM rw' 'DeviceAllow=char-ttyUSB rw' \
         'DeviceAllow=char-alsa rw' 'DeviceAllow=char-input r' 'SystemCallFilter=@system-service' \
         'CapabilityBoundingSet=$' 'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK'; do
  grep -q "^$d" "$unit" || fail "$unit lacks '$d'"
done
for d in PrivateUsers IPAddressDeny IPAddressAllow PrivateNetwork PrivateDevices DynamicUser; do
  ! grep -q "^$d=" "$unit" || fail "$unit sets $d=, which cuts the daemon off from its devices or the network"
done
pass "required directives present; PrivateUsers/IPAddressDeny/PrivateNetwork/PrivateDevices absent"
grep -q "^runtime_dir = \"/run/$name\"" config/$name.example.toml || fail "health.runtime_dir is not RuntimeDirectory=$name"
grep -q "^path = \"/var/lib/$name/kiosk.db\"" config/$name.example.toml || fail "storage.path is not under StateDirectory=$name"
pass "config defaults live in the unit's RuntimeDirectory/StateDirectory"

# --- 2. udev rule, sysusers ----------------------------------------------------------------------
step "udev rule systemd/60-jarvis-scanner.rules"
rules=systemd/60-jarvis-scanner.rules
active=0
while IFS= read -r line; do
  case "$line" in ''|'#'*) continue ;; esac
  active=$((active + 1))
  rest=$line
  while [ -n "$rest" ]; do
    pair=${rest%%, *}
    [[ "$pair" =~ ^[A-Z_]+(\{[A-Za-z_]+\})?(==|!=|=|\+=|-=|:=)\"[^\"]*\"$ ]] || fail "$rules: bad key/value '$pair' in: $line"
    [ "$pair" = "$rest" ] && rest="" || rest=${rest#*, }
  done
  for want in 'SUBSYSTEM=="tty"' 'ATTRS{idVendor}=="' 'ATTRS{idProduct}=="' "GROUP=\"$name\"" 'MODE="0660"' 'SYMLINK+="jarvis-scanner"'; do
    [[ "$line" == *"$want"* ]] || fail "$rules: a rule lacks $want: $line"
  done
done < "$rules"
[ "$active" -ge 3 ] || fail "$rules: expected rules for the FTDI, CH340 and CP210x chips"
grep -q '^path = "/dev/jarvis-scanner"' config/$name.example.toml || fail "badge.serial.path default is not /dev/jarvis-scanner"
pass "$active rules, each KEY op \"value\", group $name, symlink /dev/jarvis-scanner (= badge.serial.path)"

step "sysusers entry systemd/$name.sysusers"
mkdir -p "$work/sysusers/etc"
# With --root, systemd-sysusers resolves relative paths inside the root: pass an absolute one.
systemd-sysusers --root="$work/sysusers" "$PWD/systemd/$name.sysusers" > "$work/sysusers.log" 2>&1 \
  || { cat "$work/sysusers.log" >&2; fail "systemd-sysusers rejected systemd/$name.sysusers"; }
grep -qi 'ignoring' "$work/sysusers.log" && { cat "$work/sysusers.log" >&2; fail "systemd-sysusers ignored a line"; }
sed 's/^/    /' "$work/sysusers.log"
grep -q "^$name:x:[0-9]*:[0-9]*:.*:/var/lib/$name:/usr/sbin/nologin\$" "$work/sysusers/etc/passwd" || fail "sysusers did not create the user $name"
for g in dialout audio input; do
  grep -Eq "^$g:x:[0-9]+:(.*,)?$name(,.*)?\$" "$work/sysusers/etc/group" || fail "sysusers did not put $name in group $g"
done
pass "user $name, groups $name dialout audio input"

# --- 3. install.sh -------------------------------------------------------------------------------
root=$work/root
snapshot() {
  (cd "$root" && find . -printf '%p %y %m %U:%G %s %T@\n' | LC_ALL=C sort \
     && find . -type f -exec sha256sum {} + | LC_ALL=C sort)
}
# expect PATH MODE [OWNER]: PATH exists in the scratch root with that mode and owner.
expect() {
  local p=$root$1 m=$2 o=${3:-0:0}
  [ -e "$p" ] || fail "install.sh: $1 is missing"
  [ "$(stat -c %a "$p")" = "$m" ] || fail "install.sh: $1 has mode $(stat -c %a "$p"), expected $m"
  [ "$(stat -c %u:%g "$p")" = "$o" ] || fail "install.sh: $1 is owned by $(stat -c %u:%g "$p"), expected $o"
}

step "install.sh --root (first run)"
scripts/install.sh --root "$root" --binary "$bin" | sed 's/^/    /'
ids=$(awk -F: -v u="$name" '$1 == u { print $3 ":" $4 }' "$root/etc/passwd")
[ -n "$ids" ] || fail "install.sh did not create the user $name in $root/etc/passwd"
expect /usr/bin/$name 755
expect /usr/lib/systemd/system/$name.service 644
expect /usr/lib/sysusers.d/$name.conf 644
expect /usr/lib/udev/rules.d/60-jarvis-scanner.rules 644
expect /etc/$name 755
expect /etc/$name/config.toml 644
expect /etc/$name/credentials 700
for c in openai-api-key central-password badge-hash-key; do
  expect /etc/$name/credentials/$c 600
  [ ! -s "$root/etc/$name/credentials/$c" ] || fail "placeholder $c is not empty"
done
expect /var/lib/$name 750 "$ids"
cmp -s "$bin" "$root/usr/bin/$name" || fail "installed binary differs from $bin"
cmp -s "$unit" "$root/usr/lib/systemd/system/$name.service" || fail "installed unit differs"
cmp -s config/$name.example.toml "$root/etc/$name/config.toml" || fail "installed config is not the example"
"$root/usr/bin/$name" --config "$root/etc/$name/config.toml" config check > "$work/check.log" \
  || { cat "$work/check.log" >&2; fail "config check of the installed config"; }
pass "files in place: binary 755, unit/sysusers/udev 644, config 644, credentials 700/600 root (empty), state 750 $name ($ids); config check passes"

step "install.sh --root (second run changes nothing)"
snapshot > "$work/before"
scripts/install.sh --root "$root" --binary "$bin" > "$work/second.log"
snapshot > "$work/after"
diff -u "$work/before" "$work/after" || fail "second install.sh run changed the files above"
! grep -Eq 'installed |created |set |fixed ' "$work/second.log" || { cat "$work/second.log"; fail "second run reports changes"; }
pass "identical tree (paths, modes, owners, sizes, mtimes, sha256)"

step "install.sh --root keeps an edited config and real secrets, fixes their modes and the state owner"
echo '# edited by the technician' >> "$root/etc/$name/config.toml"
printf 'sk-test-not-a-key\n' > "$root/etc/$name/credentials/openai-api-key"
chmod 644 "$root/etc/$name/credentials/openai-api-key"
echo data > "$root/var/lib/$name/kiosk.db"
chown 0:0 "$root/var/lib/$name/kiosk.db"
scripts/install.sh --root "$root" --binary "$bin" | sed 's/^/    /'
tail -n 1 "$root/etc/$name/config.toml" | grep -q 'edited by the technician' || fail "config.toml was overwritten"
grep -q sk-test-not-a-key "$root/etc/$name/credentials/openai-api-key" || fail "a credential was overwritten"
expect /etc/$name/credentials/openai-api-key 600
expect /var/lib/$name/kiosk.db 644 "$ids"
pass "config and secret kept; secret back to 600; state file given to $name"

step "install.sh --root --uninstall keeps config and state"
scripts/install.sh --root "$root" --uninstall | sed 's/^/    /'
for p in /usr/bin/$name /usr/lib/systemd/system/$name.service /usr/lib/sysusers.d/$name.conf \
         /usr/lib/udev/rules.d/60-jarvis-scanner.rules; do
  [ ! -e "$root$p" ] || fail "uninstall left $p"
done
[ -f "$root/var/lib/$name/kiosk.db" ] || fail "uninstall removed the state"
[ -f "$root/etc/$name/config.toml" ] && [ -s "$root/etc/$name/credentials/openai-api-key" ] || fail "uninstall removed the config or credentials"
pass "program files gone; /var/lib/$name and /etc/$name kept"

step "install.sh --root --uninstall --purge"
scripts/install.sh --root "$root" --uninstall --purge | sed 's/^/    /'
[ ! -e "$root/var/lib/$name" ] && [ ! -e "$root/etc/$name" ] || fail "purge left state or config"
pass "state and config gone"

step "install.sh --root without systemd-sysusers (JARVIS_INSTALL_USERADD=1: groupadd/useradd)"
JARVIS_INSTALL_USERADD=1 scripts/install.sh --root "$work/root-useradd" --binary "$bin" 2>&1 \
  | grep -E 'user|var/lib' | sed 's/^/    /'
grep -q "^$name:x:[0-9]*:[0-9]*:.*:/var/lib/$name:/usr/sbin/nologin\$" "$work/root-useradd/etc/passwd" \
  || fail "useradd path did not create $name"
for g in dialout audio input; do
  grep -Eq "^$g:x:[0-9]+:(.*,)?$name(,.*)?\$" "$work/root-useradd/etc/group" || fail "useradd path: $name not in $g"
done
pass "useradd fallback: user $name in dialout, audio, input"

# --- 4. amd64 .deb -------------------------------------------------------------------------------
ensure_cargo_deb() {
  if ! cargo deb --version 2>/dev/null | grep -q " $CARGO_DEB_VERSION\$"; then
    step "cargo install cargo-deb --version $CARGO_DEB_VERSION --locked"
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked
  fi
}
# check_deb FILE ARCH: the .deb's metadata and contents.
check_deb() {
  local deb=$1 arch=$2 x
  dpkg-deb -I "$deb" > "$work/info" || fail "dpkg-deb -I $deb"
  dpkg-deb -c "$deb" > "$work/contents" || fail "dpkg-deb -c $deb"
  sed 's/^/    /' "$work/contents"
  grep -q "^ Package: $name\$" "$work/info" || fail "$deb: Package is not $name"
  grep -q "^ Architecture: $arch\$" "$work/info" || fail "$deb: Architecture is not $arch"
  grep -q "^ Depends: .*systemd (>= 247)" "$work/info" || fail "$deb: does not depend on systemd (>= 247)"
  for p in "-rwxr-xr-x 0/0 .* ./usr/bin/$name\$" \
           "-rw-r--r-- 0/0 .* ./usr/lib/systemd/system/$name.service\$" \
           "-rw-r--r-- 0/0 .* ./usr/lib/sysusers.d/$name.conf\$" \
           "-rw-r--r-- 0/0 .* ./usr/lib/udev/rules.d/60-jarvis-scanner.rules\$" \
           "-rw-r--r-- 0/0 .* ./etc/$name/config.toml\$"; do
    grep -Eq -- "$p" "$work/contents" || fail "$deb lacks $p"
  done
  rm -rf "$work/ctl" "$work/x"
  dpkg-deb -e "$deb" "$work/ctl"
  dpkg-deb -x "$deb" "$work/x"
  grep -qx "/etc/$name/config.toml" "$work/ctl/conffiles" || fail "$deb: config.toml is not a conffile"
  grep -q "systemd-sysusers.* $name.conf" "$work/ctl/postinst" || fail "$deb: postinst does not create the user"
  grep -q "deb-systemd-helper enable $name.service" "$work/ctl/postinst" || fail "$deb: postinst does not enable the unit"
  grep -q 'credentials' "$work/ctl/postinst" || fail "$deb: postinst does not create the credential placeholders"
  grep -q 'purge' "$work/ctl/postrm" || fail "$deb: postrm has no purge"
  for x in postinst postrm prerm; do
    [ ! -e "$work/ctl/$x" ] || sh -n "$work/ctl/$x" || fail "$deb: $x is not valid sh"
  done
  cmp -s "$unit" "$work/x/usr/lib/systemd/system/$name.service" || fail "$deb: unit differs from $unit"
  cmp -s systemd/$name.sysusers "$work/x/usr/lib/sysusers.d/$name.conf" || fail "$deb: sysusers differs"
  cmp -s config/$name.example.toml "$work/x/etc/$name/config.toml" || fail "$deb: config differs"
}

ensure_cargo_deb
step "cargo deb (amd64)"
mkdir -p "$work/deb"
cargo deb --no-build --no-strip --output "$work/deb/${name}_amd64.deb" | sed 's/^/    /'
check_deb "$work/deb/${name}_amd64.deb" amd64
pass "amd64 .deb: binary, unit, sysusers, udev rule, conffile config; postinst sysusers + enable + credentials"
summary+=("amd64 .deb: $(stat -c %s "$work/deb/${name}_amd64.deb") bytes")

# --- 5. aarch64 ----------------------------------------------------------------------------------
if [ "${JARVIS_CI_SKIP_ARM:-0}" = 1 ]; then
  echo "==> packaging: aarch64 skipped (JARVIS_CI_SKIP_ARM=1)"
else
  step "scripts/build-arm.sh aarch64"
  t0=$(date +%s)
  scripts/build-arm.sh aarch64
  secs=$(( $(date +%s) - t0 ))
  abin=target/aarch64-unknown-linux-gnu/release/$name
  size=$(stat -c %s "$abin")
  [ "$size" -le $((20 * 1024 * 1024)) ] || fail "$abin is $size bytes, over the 20 MB budget"
  qemu=$(command -v qemu-aarch64-static || command -v qemu-aarch64) || fail "qemu-aarch64(-static) not found"
  "$qemu" "$abin" --version | tee "$work/version"
  grep -q "^$name " "$work/version" || fail "$abin --version under qemu"
  "$qemu" "$abin" --config config/$name.example.toml config check > "$work/acheck.log" \
    || { cat "$work/acheck.log" >&2; fail "$abin config check under qemu"; }
  pass "aarch64: --version and config check under $(basename "$qemu")"
  summary+=("aarch64 release binary (stripped): $size bytes, build ${secs} s (incremental when target/ is warm)")
  step "cargo deb --target aarch64-unknown-linux-gnu --no-build"
  cargo deb --target aarch64-unknown-linux-gnu --no-build --no-strip \
    --output "$work/deb/${name}_arm64.deb" | sed 's/^/    /'
  check_deb "$work/deb/${name}_arm64.deb" arm64
  pass "arm64 .deb"
  summary+=("arm64 .deb: $(stat -c %s "$work/deb/${name}_arm64.deb") bytes")
fi

echo "==> packaging summary"
printf '    %s\n' "${summary[@]}"
echo "packaging: $passed passed, 0 failed"
