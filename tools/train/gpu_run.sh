#!/bin/sh
# The training recipe of the built-in refiner, on the GPU machine (see README.md here):
# train, convert with the pinned llama.cpp's convert_hf_to_gguf.py to q8_0, and put the
# GGUF (xz, in parts under 16 MB) and the logs in OUT.
#   gpu_run.sh OUT [train.py options…]   (data, tokenizer and llama.cpp tools in .train/)
set -eu
out=$1
shift
run=/tmp/codictate-train
rm -rf "$run"
PYTHONUNBUFFERED=1 python3 tools/train/train.py --data .train/data --tokenizer .train/tok \
  --out "$run" "$@"
PYTHONPATH=.train/llama/gguf-py python3 .train/llama/convert_hf_to_gguf.py "$run/hf" \
  --outtype q8_0 --outfile "$run/codictate-refiner-q8_0.gguf" 2>&1 | tail -5
cp "$run/train.log" "$run/metrics.json" "$run/samples.json" "$out/"
sha256sum "$run/codictate-refiner-q8_0.gguf" | tee "$out/gguf.sha256"
xz -T0 -6 -c "$run/codictate-refiner-q8_0.gguf" | split -b 15M - "$out/gguf.xz.part-"
ls -la "$out"
