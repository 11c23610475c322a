#!/bin/bash
# Installs the browser test's node packages (playwright-core, pinned by
# package-lock.json) with `npm ci` into a cache outside the checkout, keyed by the
# lockfile's hash, and prints that node_modules directory. A rerun with the same
# lockfile touches neither npm nor the network. No browser is downloaded: the test
# drives Debian's chromium (scripts/deps.sh installs it).
#   setup.sh            -> prints  ~/.cache/codictate/node/<sha>/node_modules
# CODICTATE_NODE_CACHE overrides ~/.cache/codictate/node.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
base=${CODICTATE_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/codictate/node}
key=$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -c1-16)
dir=$base/$key
if [ -f "$dir/.installed" ] && [ -d "$dir/node_modules/playwright-core" ]; then
  echo "$dir/node_modules"
  exit 0
fi
command -v npm >/dev/null || { echo "setup.sh: npm is missing (scripts/deps.sh installs it)" >&2; exit 1; }
mkdir -p "$base"
work=$(mktemp -d "$base/.tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp "$here/package.json" "$here/package-lock.json" "$work/"
if ! (cd "$work" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >&2); then
  echo "setup.sh: npm ci failed (is the npm registry reachable?)" >&2
  exit 1
fi
touch "$work/.installed"
# Another run may have finished first: keep the one already in place.
if ! mv -T "$work" "$dir" 2>/dev/null; then
  [ -f "$dir/.installed" ] || { echo "setup.sh: could not place $dir" >&2; exit 1; }
fi
echo "$dir/node_modules"
