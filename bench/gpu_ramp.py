#!/usr/bin/env python3
"""gpu_ramp.py: is decode slower at the start of a request than later (a GPU clocking
up after idling between requests)? For the gap between the sidecar's decode rate and
llama-bench's back-to-back loop (bench/RESULTS.md, "CUDA").

    bench/gpu_ramp.py CODICTATE MODEL [PAUSE_S ...]

Starts `CODICTATE sidecar`, loads MODEL, and for each pause (default 0.3 and 0)
sends requests of 20, 60 and 150 greedy tokens (ignore_eos) after sleeping the
pause, 5 rounds, a new prompt each (same 300-token prefix, as refine_bench). Prints
the median generation_ms per length and the ms per token of tokens 1-20, 21-60 and
61-150 from the differences."""
import http.client, json, statistics, subprocess, sys, time

binary, model = sys.argv[1], sys.argv[2]
pauses = [float(x) for x in sys.argv[3:]] or [0.3, 0.0]
prefix = "Clean up this dictated text. Keep the meaning; fix punctuation. " * 20


def req(port, path, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    data = json.loads(r.read())
    c.close()
    if r.status != 200:
        raise RuntimeError(f"{path}: HTTP {r.status}: {data}")
    return data


p = subprocess.Popen([binary, "sidecar", "--port-range", "18700-18799"], stdout=subprocess.PIPE, text=True)
port = int(p.stdout.readline().strip().split("=")[1])
try:
    req(port, "/load", {"model_path": model, "warmup_prompt": prefix})
    n = 0
    for k in range(3):  # warm-up requests
        req(port, "/generate", {"prompt": prefix + f"warm {k}", "max_tokens": 150, "temperature": 0, "ignore_eos": True})
    for pause in pauses:
        ms = {20: [], 60: [], 150: []}
        for rnd in range(5):
            for length in (20, 60, 150):
                n += 1
                time.sleep(pause)
                r = req(port, "/generate", {"prompt": prefix + f"transcript number {n}, the {rnd} round",
                                            "max_tokens": length, "temperature": 0, "ignore_eos": True})
                assert r["timings"]["generated_tokens"] == length, r
                ms[length].append(r["timings"]["generation_ms"])
        m = {k: statistics.median(v) for k, v in ms.items()}
        print(f"pause {pause:.1f} s: generation_ms median 20/60/150 tokens = "
              f"{m[20]:.1f} / {m[60]:.1f} / {m[150]:.1f}; ms per token: tokens 1-20 {m[20] / 20:.3f}, "
              f"21-60 {(m[60] - m[20]) / 40:.3f}, 61-150 {(m[150] - m[60]) / 90:.3f}; "
              f"whole request {m[150] / 150:.3f} ({150000 / m[150]:.0f} tok/s)", flush=True)
finally:
    p.terminate()
    p.wait()
