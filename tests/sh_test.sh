# Sourced by shell tests: check helpers and the closing "N passed, N failed" line.
passed=0
failed=0
check() { # check NAME COMMAND...
  name=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
    echo "ok   $name" >&2
  else
    failed=$((failed + 1))
    echo "FAIL $name" >&2
  fi
}
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
# kill_pid -SIG PID...: kill(1) for PIDs held in variables. Each must be a positive
# integer: `kill 0` signals the whole process group (ctest and make included) and
# `kill -1` every process we may signal. Returns 1 when one is refused or not sent.
# scripts/lint.sh keeps tests from calling kill(1) directly (probes with -0 aside).
kill_pid() {
  local sig=$1 pid_ rc_=0
  shift
  for pid_ in "$@"; do
    case $pid_ in
      '' | 0 | *[!0-9]*)
        echo "kill_pid: refusing PID '$pid_'" >&2
        rc_=1
        ;;
      *) kill "$sig" "$pid_" 2>/dev/null || rc_=1 ;;
    esac
  done
  return $rc_
}
# start_stubllm STUB OUTFILE [ARGS...]: starts tests/stubllm in the background (sets
# stubpid; the caller's cleanup stops it) and waits for the port it prints (sets
# port; empty when it never printed one).
start_stubllm() {
  local stub_=$1 out_=$2
  shift 2
  "$stub_" "$@" >"$out_" &
  stubpid=$!
  port=
  for _ in $(seq 1 100); do
    port=$(sed -n 's/^STUBLLM_PORT=//p' "$out_")
    [ -n "$port" ] && break
    sleep 0.05
  done
}
