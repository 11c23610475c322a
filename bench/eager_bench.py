#!/usr/bin/python3
"""The wait after a dictation stops (issue 16): eager transcription vs the sequential
pipeline, with whisper-cli on the whole file as the peer.

Dictations of espeak-ng sentences with pauses (0.4-1.6 s) of 30 s, 2 min and 6 min are
spoken in real time into a private PulseAudio daemon's virtual microphone
(module-pipe-source, as tests/pulse_mic.sh), recorded by `codictate dictate --json`
(the real pipeline: capture, preload, save, transcribe, refine, history), and stopped
with Enter 0.7 s after the last word (--stop-after S). Each dictation is recorded twice: eager (the
default) and --no-eager. Reported per run, from dictate's --json timings: stop -> raw
text (raw_after_stop_ms), stop -> refined text (after_stop_ms), whisper's own time
(transcribe_ms), the chunks and how many were left after stop. The peer: whisper-cli
(from the engine cache) on the saved recording of the eager run, with the same models,
threads, VAD and greedy decoding: its wall time (model load included, as a one-shot peer has no
preload) and its own "total time" less "load time"; with GOMP_SPINCOUNT=3000 (what
codictate sets for itself; 1000 before 2026-12-06) and with libgomp's default spin.

  /usr/bin/python3 bench/eager_bench.py [--build build] [--lengths 30,120,360]
      [--whisper PATH] [--llm PATH] [--threads 2] [--stop-after 0.7] [--out FILE.json]
      [--sentences FILE] [--log DIR] [--no-context] [--app]

Words: each run's raw transcript is aligned with the words spoken (lower case, no
punctuation) for a word error rate, and the eager transcript with the sequential one
(same model, greedy): "lost" counts the sequential transcript's words that the eager
one lacks (deleted or replaced in the alignment), the issue's "no word lost"; and,
against the words spoken, those the sequential transcript has right and the eager one
does not (which leaves out the sequential transcript's own errors). The two
dictations are two recordings, which differ a little, so the same count is also made
against the sequential pipeline's transcription (`codictate transcribe`) of the eager
run's own saved recording: the comparison of the pipelines on the same audio. With
random weights these figures say nothing; with a model that transcribes espeak-ng
(tools/train/whisper/) they do. --sentences speaks other sentences (one a line) than
the built-in ones, e.g. sentences such a model was trained on.

Models default to the build's generated test models (tests/gen_models.sh): the tiny
random whisper model and the tiny random Qwen3 (q8_0), with the real Silero VAD.
Needs pulseaudio, espeak-ng. Takes about twice the sum of the lengths in real time.
The LLM's output projection is computed in full (LLAMA_PRUNE_OUTPUT=0, unless the
environment says otherwise): --llm stands for a real model, which has no zero rows.
"""
import argparse
import difflib
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import wave

SENTENCES = [
    "Good morning everyone, here is the update on the project.",
    "We finished the first version of the report last week.",
    "The numbers look better than we expected in March.",
    "Please send the slides to the whole team before Friday.",
    "I think we should move the meeting to Thursday afternoon.",
    "The new office opens on the first of next month.",
    "Remember to book the large room for the review.",
    "Sarah will present the results of the customer survey.",
    "Most people asked for a simpler way to export their data.",
    "We also need to fix the login problem on older phones.",
    "The budget for the second quarter is still open.",
    "Let me know if you have questions about the plan.",
    "After lunch we will walk through the design together.",
    "The test results came back and everything passed.",
    "Next, I would like to talk about hiring.",
    "We are looking for two engineers and a designer.",
]
PAUSES = [0.6, 1.1, 0.4, 1.6, 0.8, 0.5, 1.3, 0.7]


def words(text):
    """Lower-case words without punctuation, as the word error rate counts them (an
    apostrophe only inside a word: "engineers'" is the word "engineers" spoken)."""
    bare = (w.strip("'") for w in re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split())
    return [w for w in bare if w]


def wer(ref, hyp):
    """Word error rate of hyp against ref (word lists), by edit distance."""
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
    return d[len(hyp)] / max(len(ref), 1)


def lost(base, other):
    """The words of base that other lacks (deleted or replaced when aligned): their
    count, and each such place as "base words -> other words"."""
    sm = difflib.SequenceMatcher(None, base, other, autojunk=False)
    ops = [(i1, i2, j1, j2) for op, i1, i2, j1, j2 in sm.get_opcodes() if op in ("delete", "replace")]
    return (sum(i2 - i1 for i1, i2, _, _ in ops),
            [" ".join(base[i1:i2]) + " -> " + " ".join(other[j1:j2]) for i1, i2, j1, j2 in ops])


def heard(ref, hyp):
    """The indices of ref's words that hyp has, aligned (equal runs)."""
    sm = difflib.SequenceMatcher(None, ref, hyp, autojunk=False)
    return {i for op, i1, i2, _, _ in sm.get_opcodes() if op == "equal" for i in range(i1, i2)}


def say_all(tmp, sentences):
    """espeak-ng WAVs of every sentence: (rate, [pcm bytes])."""
    pcms, rate = [], None
    for i, s in enumerate(sentences):
        path = os.path.join(tmp, f"s{i}.wav")
        subprocess.run(["espeak-ng", "-w", path, s], check=True, stderr=subprocess.DEVNULL)
        w = wave.open(path)
        rate = w.getframerate()
        pcms.append(w.readframes(w.getnframes()))
    return rate, pcms


def dictation(tmp, rate, pcms, seconds, sentences):
    """A WAV of sentences and pauses at least `seconds` long; its path, length and
    the text spoken."""
    out, i, said = b"", 0, []
    while len(out) / 2 / rate < seconds:
        if i:
            out += b"\0\0" * int(rate * PAUSES[i % len(PAUSES)])
        out += pcms[i % len(pcms)]
        said.append(sentences[i % len(pcms)])
        i += 1
    # It ends with the last sentence (espeak-ng's own ~0.1 s of trailing silence).
    path = os.path.join(tmp, f"dictation-{seconds}.wav")
    w = wave.open(path, "wb")
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(rate)
    w.writeframes(out)
    w.close()
    return path, len(out) / 2 / rate, " ".join(said)


FEEDER = r"""
import os, sys, time, wave
w = wave.open(sys.argv[1]); rate = w.getframerate(); pcm = w.readframes(w.getnframes())
fifo, go = sys.argv[2], sys.argv[3]
chunk = rate // 20 * 2
silence = b"\0" * chunk
with open(fifo, "wb", buffering=0) as f:
    t0, sent = time.monotonic(), 0
    def put(b):
        global sent
        f.write(b); sent += len(b) // 2
        ahead = t0 + sent / rate - time.monotonic()
        if ahead > 0: time.sleep(ahead)
    played = False
    while True:
        if not played and os.path.exists(go):
            os.unlink(go)
            for off in range(0, len(pcm), chunk): put(pcm[off:off + chunk])
            played = True
        put(silence)
"""


class Mic:
    """A private pulseaudio whose default source plays a WAV when asked."""

    def __init__(self, tmp, rate):
        self.dir = os.path.join(tmp, "pa")
        os.makedirs(os.path.join(self.dir, "config"), exist_ok=True)
        self.fifo = os.path.join(self.dir, "mic.fifo")
        self.go = os.path.join(self.dir, "go")
        with open(os.path.join(self.dir, "default.pa"), "w") as f:
            f.write(f"load-module module-native-protocol-unix auth-anonymous=1 "
                    f"socket={self.dir}/pulse.sock\n"
                    f"load-module module-pipe-source source_name=virtmic file={self.fifo} "
                    f"format=s16le rate={rate} channels=1\nset-default-source virtmic\n")
        env = dict(os.environ, HOME=self.dir, XDG_RUNTIME_DIR=self.dir,
                   XDG_CONFIG_HOME=os.path.join(self.dir, "config"), DBUS_SESSION_BUS_ADDRESS="")
        self.pa = subprocess.Popen(
            ["pulseaudio", "--daemonize=no", "-n", f"--file={self.dir}/default.pa",
             "--exit-idle-time=-1", "--disallow-exit", "--use-pid-file=no", "--disable-shm=yes",
             "--realtime=no", "--high-priority=no", "--log-target=stderr", "--log-level=error"],
            env=env, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if os.path.exists(f"{self.dir}/pulse.sock") and os.path.exists(self.fifo):
                break
            time.sleep(0.05)
        self.feeder = None
        self.server = f"unix:{self.dir}/pulse.sock"

    def play(self, wav):
        if self.feeder:
            self.feeder.terminate()
            self.feeder.wait()
        self.feeder = subprocess.Popen([sys.executable, "-c", FEEDER, wav, self.fifo, self.go])

    def stop(self):
        for p in (self.feeder, self.pa):
            if p:
                p.terminate()
                p.wait()


def run_dictate(args, mic, wav, length, eager, env):
    """One dictation through the microphone; dictate's --json."""
    mic.play(wav)
    time.sleep(1.0)
    cmd = [args.bin] + (["-v"] if args.log else []) + ["dictate", "--json", "--threads", str(args.threads), "--whisper-model",
           args.whisper, "--vad-model", args.vad]
    if not args.app:  # through the app: its model (settings' llm_model = --llm)
        cmd += ["--model", args.llm]
    if not eager:
        cmd.append("--no-eager")
    elif args.no_context:
        cmd.append("--no-context")
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    time.sleep(1.5)  # the recording has started; the models load meanwhile
    open(mic.go, "w").close()
    time.sleep(length + args.stop_after)  # the dictation, then Enter after its last word
    out, err = p.communicate(b"\n", timeout=length + 600)
    if p.returncode != 0:
        sys.exit(f"dictate failed ({p.returncode}): {err.decode()[-2000:]}")
    if args.log:  # debug: the chunks' bounds and text (transcripts only at debug)
        os.makedirs(args.log, exist_ok=True)
        with open(os.path.join(args.log, f"dictate-{length}-{'eager' if eager else 'sequential'}.log"),
                  "wb") as f:
            f.write(err)
    return json.loads(out)


def run_sequential_on(args, wav, env):
    """The sequential pipeline's transcript of wav (the eager run's own saved
    recording): `codictate transcribe`, which hands whisper the whole recording as
    `dictate --no-eager` does after stop (same model, VAD, threads, greedy, no prompt).
    So eager and sequential are compared on the same audio, not on two recordings."""
    p = subprocess.run([args.bin, "transcribe", wav, "--json", "--threads", str(args.threads),
                        "--whisper-model", args.whisper, "--vad-model", args.vad],
                       capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"codictate transcribe failed: {p.stderr[-2000:]}")
    return json.loads(p.stdout)["raw"]


def run_whisper_cli(args, wav, short_spin):
    cli = args.whisper_cli
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    env.pop("GOMP_SPINCOUNT", None)
    if short_spin:  # what codictate sets for itself (src/cli/main.c)
        env["GOMP_SPINCOUNT"] = "3000"
    t0 = time.monotonic()
    # Greedy, as codictate decodes (whisper-cli's default is a beam search of 5); with
    # timestamps, as codictate decodes (-nt would also change the decoding); VAD padded
    # by 400 ms, as codictate pads it (src/lib/transcribe.c).
    p = subprocess.run([cli, "-m", args.whisper, "-f", wav, "-t", str(args.threads), "--vad",
                        "-vm", args.vad, "-vp", "400", "-bs", "1", "-bo", "1"],
                       capture_output=True, text=True, env=env)
    wall = (time.monotonic() - t0) * 1000
    if p.returncode != 0:
        sys.exit(f"whisper-cli failed: {p.stderr[-2000:]}")
    total = re.search(r"total time\s*=\s*([\d.]+) ms", p.stderr)
    load = re.search(r"load time\s*=\s*([\d.]+) ms", p.stderr)
    own = float(total.group(1)) - float(load.group(1)) if total and load else None
    return {"wall_ms": round(wall), "without_load_ms": round(own) if own is not None else None}


def start_app(args, tmp, env):
    """`codictate serve` in a home of its own with --llm as its model, warmed up; the
    dictations then reach it through CODICTATE_APP_PORT (their LLM step, with the
    refinement ahead, runs in the app). Returns (process, port, catalog)."""
    import hashlib
    import urllib.request
    # --llm as a catalog model (the app takes catalog ids), already in the Hugging Face
    # cache (a hard link, else a symbolic one, as its blob: no copy, no download).
    h = hashlib.sha256()
    with open(args.llm, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    sha, rev = h.hexdigest(), "0" * 40
    repo = os.path.join(env["HF_HOME"], "hub", "models--codictate-bench--llm")
    for d in ("blobs", os.path.join("snapshots", rev), "refs"):
        os.makedirs(os.path.join(repo, d), exist_ok=True)
    try:
        os.link(args.llm, os.path.join(repo, "blobs", sha))
    except OSError:
        os.symlink(args.llm, os.path.join(repo, "blobs", sha))
    os.symlink(os.path.join("..", "..", "blobs", sha), os.path.join(repo, "snapshots", rev, "model.gguf"))
    with open(os.path.join(repo, "refs", "main"), "w") as f:
        f.write(rev)
    catalog = os.path.join(tmp, "catalog.json")
    with open(catalog, "w") as f:
        json.dump({"version": 1, "models": [{
            "id": "bench_llm_v1", "kind": "llm", "name": "the benchmark's LLM", "best_for": "benchmarks",
            "ram_mb": os.path.getsize(args.llm) // (1 << 20) + 500,
            "files": [{"name": "model.gguf", "size": os.path.getsize(args.llm), "sha256": sha}],
            "sources": [{"type": "huggingface", "repo": "codictate-bench/llm", "revision": "main"}]}]}, f)
    home = os.path.join(tmp, "apphome")
    run = os.path.join(home, "run")
    os.makedirs(run, mode=0o700)
    aenv = dict(env, HOME=home, XDG_CONFIG_HOME=os.path.join(home, "config"), XDG_RUNTIME_DIR=run,
                CODICTATE_CATALOG=catalog)
    aenv.pop("CODICTATE_NO_APP", None)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if args.log:  # debug: the app's log, with its sidecar's steps (-v), kept in --log
        os.makedirs(args.log, exist_ok=True)
    log = open(os.path.join(args.log or tmp, "serve.log"), "w")
    proc = subprocess.Popen([args.bin] + (["-v"] if args.log else []) + ["serve", "--port", str(port)],
                            stdout=log, stderr=log, env=aenv)

    def call(path, body=None, timeout=300):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                     json.dumps(body).encode() if body is not None else None,
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.load(r)
    for _ in range(300):
        try:
            call("/api/status", timeout=2)
            break
        except OSError:
            time.sleep(0.1)
    call("/api/settings", {"llm_model": "bench_llm_v1", "idle_timeout_s": -1})
    call("/api/refine", {"text": "so um this warms the model up"})
    return proc, port, catalog


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--lengths", default="30,120,360")
    ap.add_argument("--whisper")
    ap.add_argument("--llm")
    ap.add_argument("--vad")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out")
    ap.add_argument("--sentences", help="a file of sentences to speak, one a line")
    ap.add_argument("--no-context", action="store_true",
                    help="eager runs without the text before as whisper's prompt (dictate --no-context)")
    ap.add_argument("--log", help="a folder for dictate's debug logs (-v: chunks and their text)")
    ap.add_argument("--app", action="store_true",
                    help="dictate with `codictate serve` running (its model = --llm): the LLM "
                         "step and the refinement ahead run in the app")
    ap.add_argument("--stop-after", type=float, default=0.7,
                    help="seconds from the end of the dictation to Enter (default 0.7)")
    args = ap.parse_args()
    # --llm usually stands for a real Qwen3 (the built-in model embedded in its shape,
    # mkgguf --embed), whose output projection has no zero rows: computed in full, as
    # there. LLAMA_PRUNE_OUTPUT=1 in the environment prunes it anyway.
    os.environ.setdefault("LLAMA_PRUNE_OUTPUT", "0")
    models = os.path.join(args.build, "test-models")
    args.bin = os.path.abspath(os.path.join(args.build, "bin", "codictate"))
    args.whisper = os.path.abspath(args.whisper or os.path.join(models, "whisper-tiny.bin"))
    args.llm = os.path.abspath(args.llm or os.path.join(models, "qwen3-tiny-q8_0.gguf"))
    args.vad = os.path.abspath(args.vad or os.path.join(models, "ggml-silero-npm.bin"))
    clis = sorted(glob.glob(os.path.expanduser("~/.cache/codictate/engines/*/bin/whisper-cli")))
    args.whisper_cli = clis[-1] if clis else shutil.which("whisper-cli")
    for f in (args.bin, args.whisper, args.llm, args.vad, args.whisper_cli):
        if not f or not os.path.exists(f):
            sys.exit(f"missing: {f} (make; ctest -R 'models_generate|vad_model_fetch')")

    tmp = tempfile.mkdtemp(prefix="cdt-eager-bench-")
    sentences = SENTENCES
    if args.sentences:
        with open(args.sentences) as f:
            sentences = [line.strip() for line in f if line.strip()]
    rate, pcms = say_all(tmp, sentences)
    mic = Mic(tmp, rate)
    env = dict(os.environ, PULSE_SERVER=mic.server, HF_HOME=os.path.join(tmp, "hf"),
               CODICTATE_DATA_DIR=os.path.join(tmp, "data"), CODICTATE_NO_APP="1",
               CODICTATE_NO_BUILTIN_MODEL="1")
    results = []
    app = None
    if args.app:
        app, port, catalog = start_app(args, tmp, env)
        env = dict(env, CODICTATE_APP_PORT=str(port), CODICTATE_CATALOG=catalog)
    try:
        for length in [int(x) for x in args.lengths.split(",")]:
            wav, secs, said = dictation(tmp, rate, pcms, length, sentences)
            row = {"length_s": length, "speech_s": round(secs, 1), "words_spoken": len(words(said))}
            raws = {}
            for eager in (True, False):
                d = run_dictate(args, mic, wav, secs, eager, env)
                t = d["timings"]
                chunks = t.get("chunks") or []
                row["eager" if eager else "sequential"] = {
                    "audio_s": d["audio_seconds"],
                    "raw_after_stop_ms": t["raw_after_stop_ms"],
                    "after_stop_ms": t["after_stop_ms"],
                    "transcribe_ms": t["transcribe_ms"],
                    "whisper_wait_ms": t["whisper_wait_ms"],
                    "refine_ms": t["refine_ms"],
                    "pieces": t.get("pieces"),
                    "piece_ms": t.get("piece_ms"),
                    "pieces_ahead": t.get("pieces_ahead"),
                    # The refine time of the last piece alone (its model call, after
                    # stop): the yardstick for stop -> refined.
                    "last_piece_ms": (t.get("piece_ms") or [None])[-1],
                    "fallback_reason": d.get("fallback_reason"),
                    "tail_window_s": [c.get("window_s") for c in chunks if c["after_stop"]
                                      and c["speech"]],
                    "chunks": len(chunks),
                    "chunks_after_stop": sum(1 for c in chunks if c["after_stop"]),
                    "words": len(d["raw"].split()),
                    "wer": round(wer(words(said), words(d["raw"])), 3),
                    # With random weights the text is noise (and the prompt changes how
                    # much of it there is): count what was heard, not words.
                    "segments": len(d["segments"]),
                    "speech_chunks_without_text": sum(
                        1 for c in chunks if c["speech"] and not any(
                            c["start"] <= g["start"] < c["end"] for g in d["segments"])),
                }
                raws[eager] = words(d["raw"])
                row["eager" if eager else "sequential"]["raw"] = d["raw"]
                row["eager" if eager else "sequential"]["chunk_bounds"] = [
                    [round(c["start"], 2), round(c["end"], 2)] for c in chunks]
                row["eager" if eager else "sequential"]["segment_text"] = [
                    [round(g["start"], 2), round(g["end"], 2), g["text"]] for g in d["segments"]]
                if eager:
                    rec = d["recording"]
            row["lost_vs_sequential"], row["lost_where"] = lost(raws[False], raws[True])
            row["gained_vs_sequential"] = lost(raws[True], raws[False])[0]
            row["spoken"] = said
            # Against the words spoken: those the sequential transcript has right and
            # the eager one does not (the fair "lost": not the sequential's own errors).
            ref = words(said)
            hs, he = heard(ref, raws[False]), heard(ref, raws[True])
            row["lost_right_words"] = len(hs - he)
            row["lost_right_where"] = [ref[i] + "@" + str(i) for i in sorted(hs - he)]
            row["gained_right_words"] = len(he - hs)
            row["sequential_words"] = len(raws[False])
            # The same, against the sequential pipeline on the eager run's own recording
            # (the two dictations above are two recordings, which differ a little).
            row["sequential_same_audio_raw"] = run_sequential_on(args, rec, env)
            same = words(row["sequential_same_audio_raw"])
            hq = heard(ref, same)
            row["sequential_same_audio_wer"] = round(wer(ref, same), 3)
            row["lost_right_same_audio"] = len(hq - he)
            row["lost_right_same_audio_where"] = [ref[i] + "@" + str(i) for i in sorted(hq - he)]
            row["gained_right_same_audio"] = len(he - hq)
            row["whisper_cli"] = run_whisper_cli(args, rec, True)
            row["whisper_cli_spin"] = run_whisper_cli(args, rec, False)
            e, s, w = row["eager"], row["sequential"], row["whisper_cli"]
            row["sequential_over_eager_raw"] = round(
                s["raw_after_stop_ms"] / max(e["raw_after_stop_ms"], 1), 1)
            row["whisper_cli_over_eager_raw"] = round(w["wall_ms"] / max(e["raw_after_stop_ms"], 1), 1)
            if e.get("last_piece_ms"):
                row["eager_refined_over_last_piece"] = round(
                    e["after_stop_ms"] / max(e["last_piece_ms"], 1), 2)
            print(json.dumps(row), flush=True)
            results.append(row)
    finally:
        mic.stop()
        if app:
            app.send_signal(signal.SIGTERM)
            app.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print("| dictation | eager: stop → raw | → refined | chunks (after stop) | sequential: stop → raw "
          "| → refined | whisper-cli, spin 1k (wall / w/o load) | whisper-cli, default spin "
          "| sequential ÷ eager | whisper-cli ÷ eager | eager: last piece's refine | stop → refined "
          "÷ last piece | WER eager / sequential | words lost (of sequential's) | right in sequential, not eager (eager, not sequential) "
          "| same recording: sequential WER, right in sequential not eager (eager, not sequential) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        e, s, w, ws = r["eager"], r["sequential"], r["whisper_cli"], r["whisper_cli_spin"]
        print(f"| {r['length_s']} s ({e['audio_s']:.0f} s recorded) | {e['raw_after_stop_ms']:.0f} ms "
              f"| {e['after_stop_ms']:.0f} ms | {e['chunks']} ({e['chunks_after_stop']}) "
              f"| {s['raw_after_stop_ms']:.0f} ms | {s['after_stop_ms']:.0f} ms "
              f"| {w['wall_ms']} / {w['without_load_ms']} ms | {ws['wall_ms']} / {ws['without_load_ms']} ms "
              f"| {r['sequential_over_eager_raw']}× | {r['whisper_cli_over_eager_raw']}× "
              f"| {e.get('last_piece_ms') or '–'} ms | {r.get('eager_refined_over_last_piece', '–')}× "
              f"| {e['wer']} / {s['wer']} | {r['lost_vs_sequential']} (of {r['sequential_words']}) "
              f"| {r['lost_right_words']} ({r['gained_right_words']}) "
              f"| {r['sequential_same_audio_wer']}, {r['lost_right_same_audio']} ({r['gained_right_same_audio']}) |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    main()
