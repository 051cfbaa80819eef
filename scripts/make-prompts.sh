#!/usr/bin/env bash
# Regenerates the spoken and synthesised prompts in assets/prompts/ (embedded in the binary by
# crates/audio/src/prompts.rs). Needs espeak-ng and sox:
#     apt-get install -y --no-install-recommends espeak-ng sox
# Output: mono, 16 kHz, signed 16-bit WAV, peak-normalised to -3 dBFS.
set -euo pipefail

out="$(cd "$(dirname "$0")/.." && pwd)/assets/prompts"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"

fmt=(-r 16000 -c 1 -b 16 -e signed-integer)

speak() { # file name, French text
    espeak-ng -v fr -s 150 -w "$tmp/raw.wav" "$2"
    sox "$tmp/raw.wav" "${fmt[@]}" "$out/$1" norm -3
}

speak unavailable.wav "JARVIS est indisponible, merci de vous adresser à l'accueil"
speak front_desk.wav "Merci de vous adresser à l'accueil"
speak budget_reached.wav "Le budget du jour est atteint, merci de réessayer demain"
speak connection_lost.wav "Désolé, la connexion a été perdue. Au revoir."

# Badge accepted: two rising notes (E5, A5), soft attack and release.
sox -n "${fmt[@]}" "$tmp/n1.wav" synth 0.12 sine 659.25 fade h 0.01 0.12 0.04
sox -n "${fmt[@]}" "$tmp/n2.wav" synth 0.20 sine 880 fade h 0.01 0.20 0.12
sox "$tmp/n1.wav" "$tmp/n2.wav" "$out/badge_accepted.wav" norm -6

# Error: two falling low notes.
sox -n "${fmt[@]}" "$tmp/e1.wav" synth 0.18 sine 392 fade h 0.01 0.18 0.04
sox -n "${fmt[@]}" "$tmp/e2.wav" synth 0.30 sine 294 fade h 0.01 0.30 0.15
sox "$tmp/e1.wav" "$tmp/e2.wav" "$out/error.wav" norm -6

ls -l "$out"
