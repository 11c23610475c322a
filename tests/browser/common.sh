# Sourced by the browser tests (after sh_test.sh): how they skip or fail before any
# check ran, and what they need.
#   skip REASON      exit 77 (skipped), or fail where CI=true (CI never skips)
#   fail REASON      "0 passed, 1 failed", exit 1
#   browser_modules  checks chromium and node, installs the pinned playwright-core
#                    (setup.sh) and sets `modules` to its node_modules; skips or
#                    fails otherwise.
#                    Call it before HOME moves: the cache is the real user's.
skip() {
  if [ "${CI:-}" = true ]; then
    echo "FAIL: $1 (CI=true: not skipped)" >&2
    echo "0 passed, 1 failed"
    exit 1
  fi
  echo "SKIP: $1"
  exit 77
}
fail() {
  echo "FAIL: $1" >&2
  echo "0 passed, 1 failed"
  exit 1
}
browser_modules() {
  [ -x /usr/bin/chromium ] || skip "no /usr/bin/chromium (scripts/deps.sh installs it)"
  command -v node >/dev/null || fail "no node (scripts/deps.sh installs npm)"
  modules=$("$(dirname "${BASH_SOURCE[0]}")/setup.sh") ||
    fail "tests/browser/setup.sh could not install playwright-core"
}
