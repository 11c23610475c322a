#!/usr/bin/env bash
# Checks the Debian packages the build needs; installs the missing ones with apt
# when running as root, else prints the exact apt-get line and fails.
#   scripts/deps.sh [extra-package ...]
set -euo pipefail

# package:probe pairs. A probe is a command name or an absolute file path.
NEEDED=(
  "build-essential:/usr/bin/gcc"
  "g++:/usr/bin/g++"
  "cmake:cmake"
  "ninja-build:ninja"
  "git:git"
  "patch:patch"
  "ccache:ccache"
  "pkg-config:pkg-config"
  "ca-certificates:/etc/ssl/certs/ca-certificates.crt"
  "curl:curl"
  "libcurl4-openssl-dev:/usr/include/x86_64-linux-gnu/curl/curl.h"
  "libssl-dev:/usr/include/openssl/ssl.h"
  "libmicrohttpd-dev:/usr/include/microhttpd.h"
  "libcjson-dev:/usr/include/cjson/cJSON.h"
  "libsndfile1-dev:/usr/include/sndfile.h"
  "libsoxr-dev:/usr/include/soxr.h"
  "libpulse-dev:/usr/include/pulse/simple.h"
  # Tests: speech to transcribe, and the Silero VAD ONNX -> ggml converter.
  "espeak-ng:espeak-ng"
  "python3-onnx:/usr/lib/python3/dist-packages/onnx/__init__.py"
  "python3-numpy:/usr/lib/python3/dist-packages/numpy/__init__.py"
  # Tests: a private sound server with a virtual microphone for the capture test.
  "pulseaudio:pulseaudio"
  # Tests: the web UI in a real browser (tests/browser, driven by playwright-core).
  "chromium:/usr/bin/chromium"
  # Fuzzing (tests/fuzz, `make fuzz` and the ctest fuzz_targets): clang's libFuzzer.
  "clang:clang"
  # Tests: memcheck on the CLI verbs (tests/integration/test_valgrind.sh).
  "valgrind:/usr/bin/valgrind"
)

have() {
  case "$1" in
    /*) [ -e "$1" ] ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}

# Whether dpkg has pkg installed (its status read whole: `| grep -q` under pipefail
# fails at random when grep exits before the writer).
installed() {
  local st
  st=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) || return 1
  [[ $st == *"ok installed"* ]]
}

missing=()
for pair in "${NEEDED[@]}"; do
  pkg=${pair%%:*}
  probe=${pair#*:}
  # Header paths differ per architecture; fall back to dpkg for those.
  if ! have "$probe" && ! installed "$pkg"; then
    missing+=("$pkg")
  fi
done
for pkg in "$@"; do
  installed "$pkg" || missing+=("$pkg")
done
command -v npm >/dev/null 2>&1 || missing+=(npm)

[ ${#missing[@]} -eq 0 ] && exit 0

line="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "codictate: missing Debian packages: ${missing[*]}" >&2
  echo "codictate: install them with:" >&2
  echo "  sudo sh -c '$line'" >&2
  exit 1
fi
echo "codictate: installing ${missing[*]}" >&2
apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
