#!/bin/bash
# Step 4 of the built-in refiner's recipe (tools/train/README.md): its token embedding,
# which is also its output projection (tied), to q4_0; every other tensor stays as
# convert_hf_to_gguf.py wrote it (q8_0). With the pinned llama.cpp's own llama-quantize,
# built here from the source tools/train/prepare.sh fetched (its cache), once.
#   tools/train/quantize_embd.sh IN.gguf OUT.gguf
# Why: the projection over Qwen3's 151,936 tokens is most of this small model's work
# per token, and on x86 (AVX2) and ARM ggml runs q4_0 matrices through its repacked
# kernels: decode about twice as fast, the eval's numbers within noise of q8_0
# (bench/RESULTS.md, "The built-in refiner's embedding in q4_0").
set -euo pipefail
in=${1:?usage: quantize_embd.sh IN.gguf OUT.gguf} out=${2:?usage: quantize_embd.sh IN.gguf OUT.gguf}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/codictate/train
src=$cache/llama.cpp
bin=$cache/build-quantize/bin/llama-quantize
[ -d "$src" ] || { echo "quantize_embd: $src missing: run tools/train/prepare.sh first" >&2; exit 1; }
if [ ! -x "$bin" ]; then
  # Portable flags: the quantization itself is ggml-base's C reference code either way.
  cmake -S "$src" -B "$cache/build-quantize" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DBUILD_SHARED_LIBS=OFF >/dev/null
  cmake --build "$cache/build-quantize" -j "$(nproc)" --target llama-quantize >/dev/null
fi
"$bin" --allow-requantize --token-embedding-type q4_0 "$in" "$out" Q8_0 | tail -n 3
sha256sum "$out"
