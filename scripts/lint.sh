#!/usr/bin/env bash
# Project rules that the compiler cannot check; run by `make test` (ctest unit_lint)
# and so by CI. Prints one line per violation and "N passed, N failed".
#   scripts/lint.sh [REPO_ROOT]
#
# Rules:
#   kill-pid  A PID held in a variable is checked before it is signalled: kill(0, …)
#             signals the caller's whole process group (ctest and make included),
#             kill(-1, …) every process it may. C code calls cdt_proc_signal()
#             (src/lib/util.c, the one kill(2) on a variable) or kill(getpid(), …);
#             shell tests call kill_pid (tests/sh_test.sh) or probe with `kill -0`.
set -u
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root" || exit 2
passed=0 failed=0

rule() { # rule NAME VIOLATIONS...
  local name=$1
  shift
  if [ $# -eq 0 ]; then
    passed=$((passed + 1))
    echo "ok   $name" >&2
  else
    failed=$((failed + 1))
    printf '%s\n' "$@" | sed "s/^/$name: /" >&2
    echo "FAIL $name" >&2
  fi
}

files() { # tracked and new (not ignored) files matching the globs
  git ls-files --cached --others --exclude-standard -- "$@" 2>/dev/null
}

# C: kill( with anything but getpid() as its first argument, outside util.c.
mapfile -t bad < <(files '*.c' '*.h' | grep -v '^src/lib/util\.c$' | xargs -r grep -nE '(^|[^_[:alnum:]])kill[[:space:]]*\(' |
  grep -vE 'kill[[:space:]]*\([[:space:]]*getpid[[:space:]]*\(\)' |
  grep -vE '^[^:]+:[0-9]+:[[:space:]]*(/?\*|//)')
rule "kill-pid (C: use cdt_proc_signal)" "${bad[@]}"

# Shell tests: kill(1) other than a `kill -0` probe, outside the kill_pid helper.
mapfile -t bad < <(files 'tests/*.sh' | grep -v '^tests/sh_test\.sh$' | xargs -r grep -nE '(^|[^_[:alnum:]-])kill[[:space:]]' |
  grep -vE '(^|[^_[:alnum:]-])kill[[:space:]]+-0([[:space:]]|$)' | grep -vE '^[^:]+:[0-9]+:[[:space:]]*#')
rule "kill-pid (shell tests: use kill_pid)" "${bad[@]}"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
