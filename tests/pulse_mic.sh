# Sourced by tests that need a microphone (after sh_test.sh, for kill_pid): a
# private PulseAudio daemon whose default source is a virtual microphone
# (module-pipe-source) fed a WAV file in real time, again and again with one
# second of silence after each pass.
#   pulse_mic_start DIR WAV   starts both; sets pa and feeder (PIDs); the daemon's
#                             log goes to DIR/pa.log; returns 1 if it did not start
#                             then:  export PULSE_SERVER=unix:DIR/pa/pulse.sock
#   pulse_mic_stop            stops both (the sound server "dies")
pa=
feeder=
pulse_mic_start() {
  local dir=$1 wav=$2 rate
  rate=$(/usr/bin/python3 -c 'import sys, wave; print(wave.open(sys.argv[1]).getframerate())' "$wav") || return 1
  mkdir -p "$dir/pa/config"
  rm -f "$dir/pa/mic.fifo"
  cat >"$dir/pa/default.pa" <<PAEOF
load-module module-native-protocol-unix auth-anonymous=1 socket=$dir/pa/pulse.sock
load-module module-pipe-source source_name=virtmic file=$dir/pa/mic.fifo format=s16le rate=$rate channels=1
set-default-source virtmic
PAEOF
  HOME=$dir/pa XDG_RUNTIME_DIR=$dir/pa XDG_CONFIG_HOME=$dir/pa/config DBUS_SESSION_BUS_ADDRESS= \
    pulseaudio --daemonize=no -n --file="$dir/pa/default.pa" --exit-idle-time=-1 --disallow-exit \
    --use-pid-file=no --disable-shm=yes --realtime=no --high-priority=no --log-target=stderr \
    --log-level=error 2>>"$dir/pa.log" &
  pa=$!
  for _ in $(seq 1 100); do
    [ -S "$dir/pa/pulse.sock" ] && [ -p "$dir/pa/mic.fifo" ] && break
    sleep 0.05
  done
  [ -S "$dir/pa/pulse.sock" ] || return 1
  # The microphone: the speech, then silence, again and again, in real time.
  /usr/bin/python3 - "$wav" "$dir/pa/mic.fifo" <<'PYEOF' &
import sys, time, wave
w = wave.open(sys.argv[1])
rate, pcm = w.getframerate(), w.readframes(w.getnframes())
loop = pcm + b"\0\0" * rate  # one second of silence after each sentence
chunk = rate // 20 * 2       # 50 ms of s16le
with open(sys.argv[2], "wb", buffering=0) as f:
    t0, sent = time.monotonic(), 0
    while True:
        for off in range(0, len(loop), chunk):
            f.write(loop[off:off + chunk])
            sent += len(loop[off:off + chunk]) // 2
            ahead = t0 + sent / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
PYEOF
  feeder=$!
}
pulse_mic_stop() {
  [ -n "$feeder$pa" ] || return 0
  kill_pid -TERM $feeder $pa 2>/dev/null
  wait $feeder $pa 2>/dev/null
  feeder= pa=
}
