#!/usr/bin/env bash
# Builds the Pion test peer offline from Debian's Go sources (packages golang-go and
# golang-github-pion-webrtc.v3-dev; libopus-dev for its cgo codec): usage build.sh OUTPUT_BINARY.
#
# Debian ships Pion in GOPATH layout without some /vN suffixes of its module paths, so a private
# GOPATH of symlinks adds the missing ones (github.com/pion/webrtc/v3 -> .../pion/webrtc) and Go builds in
# GOPATH mode: no module download, no network.
set -euo pipefail
out=$(realpath -m "$1")
src=$(cd "$(dirname "$0")" && pwd)
debian=/usr/share/gocode/src
[ -d "$debian/github.com/pion/webrtc" ] || {
  echo "Pion sources missing in $debian: apt-get install golang-go golang-github-pion-webrtc.v3-dev" >&2
  exit 1
}
gopath=$(mktemp -d /tmp/pion-gopath.XXXXXX)
trap 'rm -rf "$gopath"' EXIT
mkdir -p "$gopath/src/github.com/pion" "$gopath/src/pion-peer"
for d in "$debian"/*; do [ "${d##*/}" = github.com ] || ln -s "$d" "$gopath/src/"; done
for d in "$debian"/github.com/*; do [ "${d##*/}" = pion ] || ln -s "$d" "$gopath/src/github.com/"; done
for d in "$debian"/github.com/pion/*; do
  mkdir -p "$gopath/src/github.com/pion/${d##*/}"
  ln -s "$d"/* "$gopath/src/github.com/pion/${d##*/}/"
done
for m in dtls/v2 ice/v2 sdp/v3 srtp/v2 transport/v2 turn/v2 udp/v2 webrtc/v3; do
  [ -e "$gopath/src/github.com/pion/$m" ] || ln -s "$debian/github.com/pion/${m%/*}" "$gopath/src/github.com/pion/$m"
done
cp "$src"/*.go "$gopath/src/pion-peer/"
mkdir -p "$(dirname "$out")"
cd "$gopath/src/pion-peer"
GO111MODULE=off GOPATH="$gopath" GOFLAGS= GOCACHE="${GOCACHE:-$HOME/.cache/go-build}" go build -o "$out" .
