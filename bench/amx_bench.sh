#!/usr/bin/env bash
# amx_bench.sh: Intel AMX in ggml's CPU backend, left out vs patched (issue 12).
#
# On a CPU with AMX, GGML_NATIVE builds ggml's AMX kernels, which die at the first
# inference in this llama.cpp (#20824). scripts/engines.sh either leaves them out
# (CODICTATE_AMX=off) or applies scripts/patches/ggml-amx-xfd.patch (=patch). This
# builds the CPU engines three ways on an AMX machine (the GPU machine of the device
# tool is one) and measures, side by side in one run:
#   stock    GGML_NATIVE as upstream ships it (AMX kernels unpatched): does it crash?
#   off      CODICTATE_AMX=off   (scripts/engines.sh)
#   patch    CODICTATE_AMX=patch (scripts/engines.sh)
# llama-bench prefill (pp478: a cold refine prompt; pp170 at depth 304: the warm one)
# and decode (tg150 at depth 478) of the 0.6b and 1.7b shapes (Q4_K, as refine_bench),
# on all physical cores and on 4 (a laptop), -r 5; then the integration tests that
# crashed (llama_link, engine, speculative, sidecar, manager) with each build.
#
#   bench/cuda_bench.sh prep            HERE: sources, Debian libraries, HEAD snapshot
#                                       into .cudabench (see cuda_bench.sh)
#   bench/amx_bench.sh build            device: the three engine builds + codictate
#   bench/amx_bench.sh bench            device: llama-bench, report to $OUT/amx.md
#   bench/amx_bench.sh tests            device: the integration tests per build
# Device commands (tool `run`, carry [".cudabench"]):
#   bench/amx_bench.sh build && bench/amx_bench.sh bench && bench/amx_bench.sh tests
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CB=${CUDA_BENCH_DIR:-$ROOT/.cudabench}
WORK=${AMX_BENCH_WORK:-/tmp/amxbench}
RES=${OUT:-$WORK/out}

log() { printf '[amx_bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'amx_bench: error: %s\n' "$*" >&2; exit 1; }

threads() {
    local n
    n=$(lscpu -p=CORE,SOCKET 2>/dev/null | grep -v '^#' | sort -u | wc -l)
    ((n >= 1)) || n=$(nproc)
    echo "$n"
}

sys_env() {
    export PATH=$WORK/sys/bin:$PATH
    export PKG_CONFIG_LIBDIR=$WORK/sys/lib/pkgconfig
    export LD_LIBRARY_PATH=$WORK/sys/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
}

build() {
    local f v prefix
    for f in llama-src.tar.xz whisper-src.tar.xz sys.tar.xz codictate.tar; do
        [[ -f $CB/$f ]] || die "$CB/$f missing: run bench/cuda_bench.sh prep here and carry .cudabench"
    done
    mkdir -p "$WORK/src" "$RES"
    grep -qw amx_int8 /proc/cpuinfo || die "this CPU has no AMX (amx_int8 not in /proc/cpuinfo)"
    [[ -d $WORK/src/llama.cpp ]] || tar -xJf "$CB/llama-src.tar.xz" -C "$WORK/src"
    [[ -d $WORK/src/whisper.cpp ]] || tar -xJf "$CB/whisper-src.tar.xz" -C "$WORK/src"
    [[ -d $WORK/sys ]] || tar -xJf "$CB/sys.tar.xz" -C "$WORK"
    [[ -d $WORK/codictate ]] || { mkdir -p "$WORK/codictate" && tar -xf "$CB/codictate.tar" -C "$WORK/codictate"; }
    sys_env
    {
        echo "cpu: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) logical, $(threads) physical"
        echo "amx flags: $(grep -m1 -o 'amx[a-z_0-9]*' /proc/cpuinfo | sort -u | tr '\n' ' ')"
        echo "kernel: $(uname -r); $(cc --version | sed -n 1p); cmake $(cmake --version | sed -n '1s/.* //p')"
        echo "codictate: $(cat "$CB/codictate.commit" 2>/dev/null || echo unknown)"
    } | tee "$WORK/env.txt" >&2
    # AMX_BENCH_VARIANTS: which builds (default "stock off patch").
    local want=" ${AMX_BENCH_VARIANTS:-stock off patch} "
    # stock: upstream's native build, AMX kernels as shipped (llama-bench only).
    if [[ $want == *" stock "* && ! -x $WORK/stock/bin/llama-bench ]]; then
        log "stock llama.cpp (GGML_NATIVE, AMX unpatched): llama-bench"
        cmake -G Ninja -S "$WORK/src/llama.cpp" -B "$WORK/stock" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
            -DGGML_NATIVE=ON -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
            -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >"$WORK/stock-configure.log" 2>&1 ||
            { tail -n 20 "$WORK/stock-configure.log"; die "stock configure failed"; }
        cmake --build "$WORK/stock" -j "$(nproc)" --target llama-bench >"$WORK/stock-build.log" 2>&1 ||
            { tail -n 20 "$WORK/stock-build.log"; die "stock build failed"; }
    fi
    for v in off patch; do
        [[ $want == *" $v "* ]] || continue
        log "engines, CODICTATE_AMX=$v (scripts/engines.sh)"
        prefix=$(CODICTATE_AMX=$v CODICTATE_LLAMA_SRC=$WORK/src/llama.cpp CODICTATE_WHISPER_SRC=$WORK/src/whisper.cpp \
            CODICTATE_CACHE=$WORK/cache CODICTATE_JOBS=$(nproc) "$WORK/codictate/scripts/engines.sh" | tail -n 1)
        [[ -f $prefix/.complete ]] || die "engines.sh ($v) printed no engine prefix"
        grep -q "CODICTATE_ENGINES_AMX \"$([[ $v == off ]] && echo off || echo patched)\"" \
            "$prefix/share/codictate-engines/versions.cmake" || die "engines ($v): versions.cmake says otherwise"
        if [[ ! -x $WORK/build-$v/bin/codictate ]]; then
            log "codictate against the $v engines"
            cmake -S "$WORK/codictate" -B "$WORK/build-$v" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
                -DCODICTATE_ENGINES="$prefix" -DPKG_CONFIG_EXECUTABLE="$WORK/sys/bin/pkg-config" \
                -DCMAKE_C_STANDARD_LIBRARIES="-lstdc++ -lm -ldl -lrt -lpthread" >"$WORK/configure-$v.log" 2>&1 ||
                { tail -n 30 "$WORK/configure-$v.log"; die "configure ($v) failed"; }
            cmake --build "$WORK/build-$v" -j "$(nproc)" >"$WORK/build-$v.log" 2>&1 ||
                { tail -n 30 "$WORK/build-$v.log"; die "build ($v) failed"; }
        fi
        "$WORK/build-$v/bin/codictate" version | grep -E '^(llama|amx|cpu)' >&2
    done
    log "built"
}

models() {
    local m
    mkdir -p "$WORK/models"
    for m in 0.6b 1.7b; do
        [[ -f $WORK/models/$m.gguf ]] ||
            "$WORK/build-off/bin/mkgguf" --preset "$m" --type q4_k --out "$WORK/models/$m.gguf" --no-partial-utf8 >/dev/null
    done
}

# One llama-bench call; prints "label|t/s mean|sd" rows or "label|crashed (signal)".
lb() { # lb BIN LABEL ARGS...
    local bin=$1 label=$2 out rc
    shift 2
    out=$("$bin" "$@" -o jsonl 2>>"$WORK/lbench.err") && rc=0 || rc=$?
    if ((rc != 0)); then
        echo "$label|crashed (exit $rc$( ((rc > 128)) && echo ", signal $((rc - 128))"))|"
        return
    fi
    awk -v l="$label" 'match($0, /"avg_ts": *[0-9.eE+-]+/) { a = substr($0, RSTART, RLENGTH); sub(/.*: */, "", a)
        match($0, /"stddev_ts": *[0-9.eE+-]+/); s = substr($0, RSTART, RLENGTH); sub(/.*: */, "", s)
        printf "%s|%.1f|%.1f\n", l, a, s }' <<<"$out"
}

bench() {
    local T m t v bin tests
    sys_env
    models
    mkdir -p "$RES"
    T=$(threads)
    {
        echo "## AMX in ggml's CPU backend: stock vs off vs patched"
        echo
        sed 's/^/    /' "$WORK/env.txt"
        echo
        echo "llama-bench -r ${AMX_BENCH_REPS:-5}, Q4_K shapes from mkgguf (--no-partial-utf8), tokens/s mean (sd)."
        echo
        echo "| model | threads | test | stock (AMX unpatched) | off (AMX left out) | patch (AMX patched) | patch / off |"
        echo "|---|---|---|---|---|---|---|"
    } >"$RES/amx.md"
    for m in 0.6b 1.7b; do
        for t in "$T" 4; do
            for spec in "pp478|-p 478 -n 0" "pp170@d304|-p 170 -n 0 -d 304" "tg150@d478|-p 0 -n 150 -d 478"; do
                local name=${spec%%|*} args=${spec#*|} row o p
                row="| $m | $t | $name |"
                for v in stock off patch; do
                    bin=$WORK/build-$v/bin/llama-bench
                    [[ $v == stock ]] && bin=$WORK/stock/bin/llama-bench
                    log "$m t=$t $name $v"
                    # shellcheck disable=SC2086
                    IFS='|' read -r _ mean sd < <(lb "$bin" "$v" -m "$WORK/models/$m.gguf" -t "$t" $args -r "${AMX_BENCH_REPS:-5}" -fa 0)
                    row+=" $mean${sd:+ ($sd)} |"
                    [[ $v == off ]] && o=$mean
                    [[ $v == patch ]] && p=$mean
                done
                row+=" $(awk -v o="$o" -v p="$p" 'BEGIN { if (o + 0 > 0 && p + 0 > 0) printf "%.2f", p / o; else print "n/a" }') |"
                echo "$row" >>"$RES/amx.md"
            done
        done
    done
    cat "$RES/amx.md"
}

tests() { # tests [VARIANT...] (default: off patch); full logs in $OUT/tests-V.log
    local v vs=("$@")
    ((${#vs[@]})) || vs=(off patch)
    sys_env
    mkdir -p "$RES"
    for v in "${vs[@]}"; do
        [[ -x $WORK/build-$v/bin/codictate ]] || continue
        log "integration tests, $v build"
        (cd "$WORK/build-$v" && ctest -V --timeout 300 \
            -R 'models_generate|integration_(llama_link|engine|speculative|sidecar|manager|models)$|unit_util|e2e_cli' \
            >"$RES/tests-$v.log" 2>&1) || true
        grep -E '(Test +#|tests passed|near-tie|differ by|FAIL|failed:)' "$RES/tests-$v.log" | tail -n 40
    done
}

case ${1:-} in
build) build ;;
bench) bench ;;
tests) shift; tests "$@" ;;
*) echo "usage: bench/amx_bench.sh build|bench|tests (see the header)" >&2; exit 2 ;;
esac
