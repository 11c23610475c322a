#!/bin/sh
# Generates the models the tests share: a tiny random Qwen3 GGUF and a tiny
# random whisper model. Deterministic, so reruns produce the same bytes.
#   gen_models.sh MKGGUF MKWHISPER OUTDIR
set -eu
mkgguf=$1 mkwhisper=$2 out=$3
mkdir -p "$out"
"$mkgguf" --preset tiny --type q8_0 --out "$out/qwen3-tiny-q8_0.gguf.tmp"
mv "$out/qwen3-tiny-q8_0.gguf.tmp" "$out/qwen3-tiny-q8_0.gguf"
"$mkwhisper" --out "$out/whisper-tiny.bin.tmp"
mv "$out/whisper-tiny.bin.tmp" "$out/whisper-tiny.bin"
echo "1 passed, 0 failed"
