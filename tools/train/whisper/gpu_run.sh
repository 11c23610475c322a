#!/bin/sh
# The training recipe of the espeak-ng Whisper, on the GPU machine (README.md here):
#   gpu_run.sh OUT [train.py options…]     (prepare.py's output in .trainw/)
# Speech and checkpoints are kept in /tmp/codictate-whisper between runs on one
# machine (--speech-only, --resume). OUT gets the model (xz, in parts under 16 MB), its
# sha256 and the logs.
set -eu
out=$1
shift
work=/tmp/codictate-whisper
mkdir -p "$work/run"
PYTHONUNBUFFERED=1 python3 tools/train/whisper/train.py --data .trainw --cache "$work" \
  --out "$work/run" "$@"
cp "$work/run/train.log" "$out/"
model=$work/run/codictate-whisper-espeak.bin
if [ -f "$model" ]; then
  cp "$work/run/metrics.json" "$out/"
  sha256sum "$model" | tee "$out/model.sha256"
  xz -T0 -6 -c "$model" | split -b 15M - "$out/model.xz.part-"
  rm -f "$model"
fi
ls -la "$out"
