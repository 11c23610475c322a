#!/bin/bash
# `make install` (cmake --install) into a scratch prefix: the binary runs, it finds
# the installed built-in model, and the systemd user unit starts the installed binary
# (its path is the install prefix's, written at install time).
#   test_install.sh BUILD_DIR
set -u
build=$1
. "$(dirname "$0")/../sh_test.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
is() { [ "$1" = "$2" ] || { echo "  got '$1', want '$2'" >&2; return 1; }; }

cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" 2>&1
check "install: exit 0" is "$?" 0
check "install: the binary runs" eval '"$tmp/prefix/bin/codictate" --version >/dev/null'
unit=$tmp/prefix/lib/systemd/user/codictate.service
check "install: the user unit" test -s "$unit"
check "install: the unit starts the installed binary" \
  grep -qx "ExecStart=$tmp/prefix/bin/codictate serve" "$unit"
check "install: the unit restarts on failure" grep -qx "Restart=on-failure" "$unit"
check "install: the README" test -s "$tmp/prefix/share/doc/codictate/README.md"
check "install: the built-in model" \
  test -s "$tmp/prefix/share/codictate/models/codictate-refiner-v1-q8_0-embd-q4_0.gguf"
# The installed binary finds it next to itself (no source or build tree needed).
env -u CODICTATE_NO_BUILTIN_MODEL -u CODICTATE_SHARE_DIR HOME="$tmp/home" \
  XDG_CACHE_HOME="$tmp/home/.cache" HF_HOME="$tmp/home/hf" \
  "$tmp/prefix/bin/codictate" models info builtin >"$tmp/info.out" 2>&1
check "install: the installed binary uses the installed model" \
  grep -q "$tmp/prefix/share/codictate/models/codictate-refiner-v1-q8_0-embd-q4_0.gguf" "$tmp/info.out"
DESTDIR=$tmp/dest cmake --install "$build" --prefix /usr/local >/dev/null 2>&1
check "install: DESTDIR is honoured" \
  grep -qx "ExecStart=/usr/local/bin/codictate serve" "$tmp/dest/usr/local/lib/systemd/user/codictate.service"
finish
