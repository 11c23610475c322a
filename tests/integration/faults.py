#!/usr/bin/env python3
"""Faults injected into a running app (issue 14 §3); helpers for test_faults.sh.

  faults.py biggguf OUT BYTES     a valid GGUF whose one F32 tensor holds BYTES (a
                                  sparse file: no disk is used), for "a model larger
                                  than RAM"
  faults.py sigkill URL CODICTATE WAV
                                  `codictate serve` at URL with the test LLM and
                                  whisper models downloaded (tests/serve_app.sh):
      generation  the sidecar SIGKILLed while it generates for POST /api/refine: the
                  answer is the deterministic text with reason_code sidecar_error;
                  the next refine starts a new sidecar and is answered by it
      stream      the sidecar SIGKILLed while a dictation's refine streams (a
                  `refined` delta seen on /api/events): the dictation ends done, the
                  transcript kept, the deterministic text delivered with the reason,
                  in the history too; the next dictation refines with a new sidecar
  faults.py appdisk URL WAV SMALL MODE
                                  the app with HF_HOME and its data dir on the small
                                  disk SMALL (MODE tmpfs: filled here; rlimit: the app
                                  runs under RLIMIT_FSIZE, so only the download fails):
      a download from the app when the disk fills mid-way: download_failed with the
      reason, the partial kept, the next download fetches only the missing bytes;
      a dictation on the full disk: the text delivered, a notice says the recording
      cannot be saved and why
Prints "ok"/"FAIL" lines, then "N passed, N failed"; exits 1 on a failure.
"""
import http.client
import json
import os
import resource
import signal
import struct
import subprocess
import sys
import threading
import time

HOST = "127.0.0.1"
passed = 0
failed = 0


def report(ok, name, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("ok   " + name + (" (" + detail + ")" if detail else ""), file=sys.stderr)
    else:
        failed += 1
        print("FAIL " + name + (": " + detail if detail else ""), file=sys.stderr)
    return ok


def biggguf(out, nbytes):
    def s(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b

    n = nbytes // 4
    kv = [("general.architecture", "qwen3"), ("general.name", "larger than RAM")]
    head = b"GGUF" + struct.pack("<IQQ", 3, 1, len(kv))
    for k, v in kv:
        head += s(k) + struct.pack("<I", 8) + s(v)  # 8: string
    head += s("token_embd.weight") + struct.pack("<I", 2) + struct.pack("<QQ", n, 1)
    head += struct.pack("<IQ", 0, 0)  # F32, offset 0
    head += b"\0" * (-len(head) % 32)
    with open(out, "wb") as f:
        f.write(head)
        f.truncate(len(head) + n * 4)


def request(port, method, path, body=None, timeout=120, ctype="application/json"):
    c = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body)
        c.request(method, path, body=data, headers={"Content-Type": ctype} if body is not None else {})
        r = c.getresponse()
        raw = r.read()
        try:
            return r.status, json.loads(raw)
        except ValueError:
            return r.status, raw.decode("utf-8", "replace")
    finally:
        c.close()


def cpu_ticks(pid):
    try:
        f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
        return int(f[11]) + int(f[12])  # utime + stime
    except OSError:
        return -1


def sidecar_pid(port, limit_s=30):
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        st, s = request(port, "GET", "/api/status")
        pid = (s.get("sidecar") or {}).get("pid") if st == 200 else None
        if pid and os.path.exists("/proc/%d" % pid):
            return pid
        time.sleep(0.05)
    return 0


def deterministic(bin_, text):
    """What `codictate refine` delivers without a model: the deterministic pass."""
    env = dict(os.environ, CODICTATE_NO_APP="1", HF_HOME="/nonexistent-codictate-faults",
               CODICTATE_NO_BUILTIN_MODEL="1")
    out = subprocess.run([bin_, "refine", "--json", text], env=env, capture_output=True,
                         timeout=60).stdout
    return json.loads(out)["refined"]


LONG = ("so um the plan for the launch is that we we ship the first build on monday and then "
        "uh we collect the feedback from the the pilot customers for about two weeks and after "
        "that we decide whether the the pricing page needs another pass or not and I think we "
        "should also uh talk to the support team about the the questions they keep getting about "
        "invoices because that is where most of the tickets come from at the moment and then "
        "we can plan the second release")


def kill_generation(port, bin_):
    want = deterministic(bin_, LONG)
    st, r = request(port, "POST", "/api/refine", {"text": "warm up the model please"})
    report(st == 200, "generation: a first refine starts the sidecar", str(st))
    for attempt in range(3):
        pid = sidecar_pid(port)
        if not report(pid > 0, "generation: the sidecar runs", "pid %d" % pid):
            return
        res = [None]

        def refine():
            res[0] = request(port, "POST", "/api/refine", {"text": LONG}, timeout=120)

        t = threading.Thread(target=refine)
        c0 = cpu_ticks(pid)
        t.start()
        # Generating: the sidecar burns CPU for this request (3 ticks: ~30 ms).
        end = time.monotonic() + 20
        while t.is_alive() and cpu_ticks(pid) < c0 + 3 and time.monotonic() < end:
            time.sleep(0.005)
        if not t.is_alive():
            print("  (the refine finished before the kill; again)", file=sys.stderr)
            continue
        os.kill(pid, signal.SIGKILL)  # pid > 0: checked above
        t.join(60)
        st, r = res[0] or (0, {})
        report(st == 200, "generation: the refine is answered after the kill", str(st))
        report(isinstance(r, dict) and r.get("reason_code") == "sidecar_error",
               "generation: reason_code sidecar_error", str(r)[:300])
        report(isinstance(r, dict) and bool(r.get("fallback_reason")),
               "generation: a reason for people", str(r.get("fallback_reason"))[:200])
        report(isinstance(r, dict) and r.get("refined") == want,
               "generation: the deterministic text delivered", "%r vs %r" % (
                   str(r.get("refined"))[:80], want[:80]))
        st, r = request(port, "POST", "/api/refine", {"text": "the next request after the crash"})
        new = sidecar_pid(port)
        report(st == 200 and new > 0 and new != pid,
               "generation: the next refine restarts the sidecar", "pid %d -> %d" % (pid, new))
        report(isinstance(r, dict) and r.get("reason_code") not in ("sidecar_error", "no_model",
                                                                    "model_unavailable"),
               "generation: ... and the model answers it", str(r.get("reason_code")))
        return
    report(False, "generation: caught the sidecar generating", "3 refines ended first")


class Events:
    """Reads /api/events in a thread; keeps every (event, data)."""

    def __init__(self, port):
        self.c = http.client.HTTPConnection(HOST, port, timeout=300)
        self.c.request("GET", "/api/events")
        self.r = self.c.getresponse()
        self.seen, self.lock = [], threading.Lock()
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        ev = None
        try:
            while True:
                line = self.r.fp.readline()
                if not line:
                    return
                line = line.decode("utf-8", "replace").rstrip("\n")
                if line.startswith("event: "):
                    ev = line[7:]
                elif line.startswith("data: "):
                    try:
                        d = json.loads(line[6:])
                    except ValueError:
                        d = line[6:]
                    with self.lock:
                        self.seen.append((ev, d))
        except (OSError, ValueError):
            return

    def find(self, pred):
        with self.lock:
            return [x for x in self.seen if pred(x)]

    def close(self):
        try:
            self.c.sock.shutdown(2)
        except OSError:
            pass
        self.c.close()


def dictate(port, wav, ev, kill=False):
    """A dictation of wav; with kill, SIGKILLs the sidecar at the first refined delta.
    Returns (dictation object, killed pid)."""
    pid = sidecar_pid(port) if kill else 0
    start = len(ev.find(lambda x: True))
    st, d = request(port, "POST", "/api/transcribe", wav, ctype="audio/wav")
    if st != 202:
        return {"state": "http %d" % st, "detail": d}, 0
    killed = 0
    end = time.monotonic() + 180
    while time.monotonic() < end:
        if kill and not killed:
            with ev.lock:
                fresh = ev.seen[start:]
            if any(e == "refined" and isinstance(x, dict) and x.get("delta") for e, x in fresh):
                if pid <= 0:  # kill(0) would signal our process group, ctest included
                    return {"state": "no sidecar to kill"}, 0
                # Frozen first: if the refine's end still comes, it ended before we
                # acted (not a kill mid-stream: the attempt is retried).
                os.kill(pid, signal.SIGSTOP)
                time.sleep(0.3)
                with ev.lock:
                    fresh = ev.seen[start:]
                if any(e == "refined" and isinstance(x, dict) and x.get("final") for e, x in fresh):
                    os.kill(pid, signal.SIGCONT)
                    kill = False
                    continue
                os.kill(pid, signal.SIGKILL)
                killed = pid
        st, d = request(port, "GET", "/api/dictation")
        if st == 200 and d.get("state") in ("done", "failed", "cancelled"):
            return d, killed
        time.sleep(0.002 if kill and not killed else 0.05)
    return {"state": "no end in 180 s"}, killed


def kill_stream(port, bin_, wav):
    ev = Events(port)
    try:
        d, _ = dictate(port, wav, ev)  # warm: the models are loaded
        report(d.get("state") == "done", "stream: a first dictation", d.get("state", "?"))
        for attempt in range(3):
            d, killed = dictate(port, wav, ev, kill=True)
            if not killed:
                print("  (no delta before the end: %s; again)" % d.get("state"), file=sys.stderr)
                continue
            report(d.get("state") == "done", "stream: the dictation ends done after the kill",
                   "%s %s" % (d.get("state"), d.get("error")))
            raw = (d.get("raw") or "").strip()
            report(bool(raw), "stream: the transcript is kept")
            report(d.get("reason_code") == "sidecar_error", "stream: reason_code sidecar_error",
                   str(d.get("reason_code")))
            want = deterministic(bin_, d.get("raw") or "")
            report(d.get("refined") == want, "stream: the deterministic text delivered",
                   "%r vs %r" % (str(d.get("refined"))[:80], want[:80]))
            fin = ev.find(lambda x: x[0] == "refined" and isinstance(x[1], dict) and
                          x[1].get("final") and x[1].get("id") == d.get("id"))
            report(bool(fin) and fin[-1][1].get("text") == d.get("refined"),
                   "stream: the final refined event carries it")
            st, h = request(port, "GET", "/api/history")
            e = next((x for x in h.get("entries", []) if x.get("id") == d.get("id")), {})
            report(e.get("status") == "done" and e.get("refined") == want and
                   e.get("reason_code") == "sidecar_error" and bool(e.get("audio_path")),
                   "stream: the history keeps the recording, the text and the reason",
                   str({k: e.get(k) for k in ("status", "reason_code", "audio_path")}))
            d2, _ = dictate(port, wav, ev)
            new = sidecar_pid(port)
            report(d2.get("state") == "done" and new and new != killed and
                   d2.get("reason_code") != "sidecar_error",
                   "stream: the next dictation refines with a new sidecar",
                   "pid %d -> %d, %s" % (killed, new, d2.get("reason_code")))
            return
        report(False, "stream: caught the refine streaming", "3 dictations ended first")
    finally:
        ev.close()


def hub(method, path, body=None):
    u = os.environ["HF_ENDPOINT"].split("//", 1)[1]
    host, hport = u.split(":")
    c = http.client.HTTPConnection(host, int(hport), timeout=10)
    c.request(method, path, body=None if body is None else json.dumps(body))
    raw = c.getresponse().read()
    c.close()
    return json.loads(raw) if raw.startswith(b"{") else raw


def model(port, mid):
    st, m = request(port, "GET", "/api/models")
    return next((x for x in m["models"] if x["id"] == mid), {}) if st == 200 else {}


def fill(small):
    """Fills the disk: a file that takes what is left."""
    try:
        with open(os.path.join(small, "filler"), "wb") as f:
            while True:
                f.write(b"\0" * 65536)
    except OSError:
        pass


def appdisk(port, wav, small, mode):
    import glob
    ev = Events(port)
    try:
        hub("POST", "/_control", {"reset": True, "rate": 1000000})
        st, _ = request(port, "POST", "/api/models/test_big_v1/download", {})
        report(st in (200, 202), "app disk: download started", str(st))
        end = time.monotonic() + 60
        while time.monotonic() < end and (model(port, "test_big_v1").get("bytes_done") or 0) < 1500000:
            time.sleep(0.05)
        if mode == "tmpfs":
            fill(small)
        end = time.monotonic() + 60
        m = {}
        while time.monotonic() < end:
            m = model(port, "test_big_v1")
            if m.get("state") in ("download_failed", "downloaded"):
                break
            time.sleep(0.1)
        why = "No space left on device" if mode == "tmpfs" else "File too large"
        report(m.get("state") == "download_failed", "app disk: the download fails",
               str(m.get("state")))
        report(why in str(m.get("detail")), "app disk: ... saying why", str(m.get("detail")))
        parts = glob.glob(os.path.join(small, "hf/hub/models--codictate-test--big/blobs/*.incomplete"))
        have = os.path.getsize(parts[0]) if parts else 0
        report(have > 0, "app disk: the partial is kept", "%d bytes" % have)
        if mode == "tmpfs":
            n0 = len(ev.find(lambda x: True))
            d, _ = dictate(port, wav, ev)
            report(d.get("state") == "done" and bool((d.get("raw") or "").strip()),
                   "app disk: a dictation on the full disk delivers its text",
                   "%s %s" % (d.get("state"), d.get("error")))
            with ev.lock:
                notes = [x for e, x in ev.seen[n0:] if e in ("notice", "warn")]
            text = json.dumps(notes)
            report("the recording cannot be saved" in text and why in text,
                   "app disk: a notice says the recording is not kept, and why", text[:300])
            os.unlink(os.path.join(small, "filler"))
        else:  # the limit lifted, as room made on a disk
            st, status = request(port, "GET", "/api/status")
            hard = resource.prlimit(status["pid"], resource.RLIMIT_FSIZE)[1]
            resource.prlimit(status["pid"], resource.RLIMIT_FSIZE, (hard, hard))
        # A dropped response's thread in the hub may count bytes a moment longer.
        b = hub("GET", "/_stats")["body_bytes"]
        for _ in range(50):
            time.sleep(0.2)
            a = hub("GET", "/_stats")["body_bytes"]
            if a == b:
                break
            b = a
        hub("POST", "/_control", {"reset": True})
        st, _ = request(port, "POST", "/api/models/test_big_v1/download", {})
        end = time.monotonic() + 60
        while time.monotonic() < end:
            m = model(port, "test_big_v1")
            if m.get("state") in ("download_failed", "downloaded"):
                break
            time.sleep(0.1)
        report(m.get("state") == "downloaded", "app disk: the next download completes",
               "%s %s" % (m.get("state"), m.get("detail")))
        stats = hub("GET", "/_stats")
        report(stats.get("body_bytes") == 6000000 - have and
               stats.get("last_range") == "bytes=%d-" % have,
               "app disk: ... fetching only the missing bytes",
               "%s, %s" % (stats.get("body_bytes"), stats.get("last_range")))
    finally:
        ev.close()


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "biggguf":
        biggguf(sys.argv[2], int(sys.argv[3]))
        return
    if len(sys.argv) == 6 and sys.argv[1] == "appdisk":
        port = int(sys.argv[2].rstrip("/").rsplit(":", 1)[1])
        appdisk(port, open(sys.argv[3], "rb").read(), sys.argv[4], sys.argv[5])
    elif len(sys.argv) == 5 and sys.argv[1] == "sigkill":
        port = int(sys.argv[2].rstrip("/").rsplit(":", 1)[1])
        kill_generation(port, sys.argv[3])
        kill_stream(port, sys.argv[3], open(sys.argv[4], "rb").read())
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
