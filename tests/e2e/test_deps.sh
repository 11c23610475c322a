#!/bin/bash
# scripts/deps.sh: as a non-root user, a missing package stops the build with the
# exact apt-get line to run (as root it would install it).
#   test_deps.sh SOURCE_DIR
set -u
src=$1
. "$(dirname "$0")/../sh_test.sh"

run_unprivileged() {
  if [ "$(id -u)" -eq 0 ]; then
    setpriv --reuid=65534 --regid=65534 --clear-groups env PATH="$PATH" bash "$src/scripts/deps.sh" "$@"
  else
    bash "$src/scripts/deps.sh" "$@"
  fi
}

out=$(run_unprivileged codictate-test-no-such-package 2>&1)
rc=$?
check "non-root with a missing package: exit 1" [ "$rc" -eq 1 ]
check "prints the apt-get line" grep -q "apt-get install -y --no-install-recommends .*codictate-test-no-such-package" <<<"$out"
check "names the missing package" grep -q "missing Debian packages: .*codictate-test-no-such-package" <<<"$out"
run_unprivileged >/dev/null 2>&1
check "nothing missing: exit 0" [ $? -eq 0 ]
finish
