#!/bin/bash
# The CLI from the outside: help, version, exit codes.
#   test_cli.sh CODICTATE
set -u
bin=$1
. "$(dirname "$0")/../sh_test.sh"

exit_is() { # exit_is CODE COMMAND...
  want=$1
  shift
  "$@" >/dev/null 2>&1
  [ $? -eq "$want" ]
}
out_has() { # out_has PATTERN COMMAND...
  pat=$1
  shift
  "$@" 2>&1 | grep -qE -- "$pat"
}

check "--help exits 0" exit_is 0 "$bin" --help
for verb in version sidecar serve models refine transcribe dictate status; do
  check "--help lists $verb" out_has "^  $verb " "$bin" --help
done
check "no verb is a usage error" exit_is 2 "$bin"
check "unknown verb is a usage error" exit_is 2 "$bin" frobnicate
check "unknown option is a usage error" exit_is 2 "$bin" --frobnicate
check "version exits 0" exit_is 0 "$bin" version
check "version --help exits 0" exit_is 0 "$bin" version --help
check "version bad option exits 2" exit_is 2 "$bin" version --bogus
check "version extra arg exits 2" exit_is 2 "$bin" version extra
check "version shows llama.cpp commit" out_has '^llama\.cpp +([0-9a-f]{40}|unknown) \(ggml [0-9]+\.[0-9]+\.[0-9]+\)' "$bin" version
check "version shows whisper.cpp" out_has '^whisper\.cpp +[0-9]+\.[0-9]+\.[0-9]+' "$bin" version
check "version shows CPU features" out_has '^cpu +[0-9]+ cores: ' "$bin" version
check "version shows RAM tier" out_has '^ram .* tier (le8|9to16|gt16)' "$bin" version
check "version shows limits" out_has '^limits +max (1536|2048|3072) generated tokens, recording (360|480|720) s' "$bin" version
check "version shows recommendation" out_has '^recommended .*qwen3_base_' "$bin" version
check "--version works" out_has '^codictate +[0-9]' "$bin" --version
check "version --json has fields" out_has '"recommended_model"' "$bin" version --json
check "version --json has tier" out_has '"tier":[[:space:]]*"(le8|9to16|gt16)"' "$bin" version --json
# The engines' AMX choice (issue 12): on a CPU with AMX, ggml's AMX kernels are left
# out or patched (unpatched they crash at the first inference); elsewhere none.
if grep -qw amx_int8 /proc/cpuinfo 2>/dev/null; then
  check "version: AMX CPU, the build says off or patched" out_has '^amx +(off|patched)' "$bin" version
  check "version --json: amx off or patched" out_has '"amx":[[:space:]]*"(off|patched)"' "$bin" version --json
else
  check "version: no AMX on this CPU" out_has '^amx +none' "$bin" version
  check "version --json: amx none" out_has '"amx":[[:space:]]*"none"' "$bin" version --json
fi
check "serve --help exits 0" exit_is 0 "$bin" serve --help
check "serve bad port is a usage error" exit_is 2 "$bin" serve --port 0
check "status --help exits 0" exit_is 0 "$bin" status --help
check "status with no app exits 1" exit_is 1 env CODICTATE_NO_APP=1 "$bin" status
check "--help marks nothing unbuilt" eval '! "$bin" --help | grep -q "not in this build"' 
check "quiet by default" eval '[ -z "$("$bin" version 2>&1 >/dev/null)" ]'
# OpenMP's wait policy (src/cli/main.c): codictate runs itself with a short spin
# (GOMP_SPINCOUNT=3000) unless the user chose a policy or a spin count. Read from the running sidecar's environment,
# once its port line shows it has started (the re-exec keeps the PID).
omp_env() { # omp_env ENV-ASSIGNMENTS...: prints the sidecar's OMP_/GOMP_ variables
  local fifo pid line
  fifo=$(mktemp -u) && mkfifo "$fifo" || return 1
  env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT "$@" "$bin" sidecar --port-range 11400-11500 >"$fifo" 2>/dev/null &
  pid=$!
  read -r -t 30 line <"$fifo"
  tr '\0' '\n' <"/proc/$pid/environ" | grep -E '^(OMP_WAIT_POLICY|GOMP_SPINCOUNT)=' | sort
  kill_pid -TERM "$pid"
  wait "$pid" 2>/dev/null
  rm -f "$fifo"
  case $line in CODICTATE_SIDECAR_PORT=*) ;; *) return 1 ;; esac
}
check "OpenMP: a short spin when the user set nothing" eval '[ "$(omp_env)" = "GOMP_SPINCOUNT=3000" ]'
check "OpenMP: the user's OMP_WAIT_POLICY is kept" eval '[ "$(omp_env OMP_WAIT_POLICY=ACTIVE)" = "OMP_WAIT_POLICY=ACTIVE" ]'
check "OpenMP: a user's GOMP_SPINCOUNT is kept" eval '[ "$(omp_env GOMP_SPINCOUNT=300000)" = "GOMP_SPINCOUNT=300000" ]'
finish
