#!/usr/bin/env python3
"""Load on the sidecar and on the app (issue 14 §2), loopback only, every wait bounded.

  load.py sidecar PORT PID MODEL      a `codictate sidecar` started with --queue 64
  load.py app URL PID WAV             a `codictate serve` on the fake hub's test catalog
                                      (tests/serve_app.sh; HF_ENDPOINT names the hub)

sidecar:
  concurrent  CONCURRENT /generate requests at once, distinct prompts: each answered
              200 or 503 with a detail; each 200 is its own request's answer (asked
              again alone it gives the same text and prompt token count: the sidecar's
              answers are repeatable); RSS back within 32 MB of idle afterwards
  latency     REQUESTS GET /status and /health on a keep-alive connection while a
              long generation runs: all 200; p50/p99 reported, p99 under
              CODICTATE_LOAD_P99_MS (default 500: a bound any loaded machine meets;
              the figure itself goes in the README)
  clients     REQUESTS keep-alive requests and REQUESTS new connections while SLOW
              clients send a header byte a second and others vanish mid-body and
              mid-stream: every request answered; the sidecar's descriptors
              (/proc/PID/fd) and threads (/proc/PID/task) back to their count before
app:
  together    a download (throttled by the fake hub), a dictation of WAV (POST
              /api/transcribe) and API polling at once, while uploads vanish mid-body
              and event streams after their first event: the download verifies, the
              dictation ends with a transcript, every poll answered 200 (latency
              reported); the app's descriptors and threads back to their count before

Sizes from the environment (the bigger runs of the README): CODICTATE_LOAD_CONCURRENT
(default 100; the HTTP layer holds up to 512 connections), CODICTATE_LOAD_REQUESTS
(1000), CODICTATE_LOAD_SLOW (20). Prints "ok"/"FAIL" lines and "figure:" lines, then
"N passed, N failed"; exits 1 on a failure.
"""
import http.client
import json
import os
import selectors
import socket
import struct
import sys
import threading
import time

HOST = "127.0.0.1"
CONCURRENT = int(os.environ.get("CODICTATE_LOAD_CONCURRENT", "100"))
REQUESTS = int(os.environ.get("CODICTATE_LOAD_REQUESTS", "1000"))
SLOW = int(os.environ.get("CODICTATE_LOAD_SLOW", "20"))
P99_BOUND_MS = float(os.environ.get("CODICTATE_LOAD_P99_MS", "500"))
SANITIZED = os.environ.get("CDT_SANITIZED") == "1"
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


def figure(text):
    print("figure: " + text, file=sys.stderr)


def pct(values, p):
    """The p-th percentile (nearest rank) of values."""
    if not values:
        return float("nan")
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def counts(pid):
    """(descriptors, threads) of a process."""
    return len(os.listdir("/proc/%d/fd" % pid)), len(os.listdir("/proc/%d/task" % pid))


def settle(pid, base, limit_s):
    """Waits up to limit_s for the counts to be back at base or below; returns them."""
    end = time.monotonic() + limit_s
    while True:
        now = counts(pid)
        if (now[0] <= base[0] and now[1] <= base[1]) or time.monotonic() > end:
            return now
        time.sleep(0.1)


def request(port, method, path, body=None, timeout=120, headers=None):
    """One request on a new connection: (status, parsed JSON or text). Raises on I/O errors."""
    c = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        h = {"Content-Type": "application/json"} if body is not None else {}
        h.update(headers or {})
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body)
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        raw = r.read()
        try:
            return r.status, json.loads(raw)
        except ValueError:
            return r.status, raw.decode("utf-8", "replace")
    finally:
        c.close()


# ---------------------------------------------------------------- the sidecar


def gen_body(i):
    # Distinct prompts of distinct lengths: a mixed-up answer shows in the text and
    # in the prompt's token count.
    words = " ".join("word%d" % (i * 7 + k) for k in range(i % 23))
    return {"prompt": "load request %d: %s" % (i, words), "temperature": 0, "max_tokens": 4,
            "seed": i}


def burst(port, bodies, limit_s):
    """POST /generate with each body at once, from one thread and non-blocking sockets
    (as wrk does: each request is sent the moment its connection is up, which client
    threads fighting for Python's lock cannot promise). Returns per body (status,
    parsed JSON or text), or ("error", why)."""
    sel = selectors.DefaultSelector()
    out = [None] * len(bodies)
    left = len(bodies)
    for i, b in enumerate(bodies):
        data = json.dumps(b).encode()
        req = (b"POST /generate HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n"
               b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (port, len(data))
               + data)
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((HOST, port))
        sel.register(s, selectors.EVENT_WRITE, [i, req, b""])
    end = time.monotonic() + limit_s
    while left and time.monotonic() < end:
        for key, ev in sel.select(1):
            s, st = key.fileobj, key.data
            try:
                if ev & selectors.EVENT_WRITE:
                    n = s.send(st[1])
                    st[1] = st[1][n:]
                    if not st[1]:
                        sel.modify(s, selectors.EVENT_READ, st)
                    continue
                chunk = s.recv(65536)
            except OSError as e:
                chunk, st[2] = None, st[2] or ("error: %s" % e).encode()
            if chunk:
                st[2] += chunk
                continue
            sel.unregister(s)
            s.close()
            left -= 1
            head, _, body = st[2].partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1."):
                out[st[0]] = ("error", (st[2] or b"closed without an answer").decode("utf-8", "replace"))
                continue
            try:
                out[st[0]] = (int(head.split()[1]), json.loads(body))
            except ValueError:
                out[st[0]] = (int(head.split()[1]), body.decode("utf-8", "replace"))
    for key in list(sel.get_map().values()):
        out[key.data[0]] = ("error", "no answer in %d s" % limit_s)
        key.fileobj.close()
    return out


def sidecar_concurrent(port, pid):
    st, idle = request(port, "GET", "/status")
    rss_idle = idle["memory"]["rss_bytes"]
    t0 = time.monotonic()
    results = burst(port, [gen_body(i) for i in range(CONCURRENT)], 600)
    wall = time.monotonic() - t0
    ok200 = [i for i, r in enumerate(results) if r and r[0] == 200]
    busy = [i for i, r in enumerate(results)
            if r and r[0] == 503 and isinstance(r[1], dict) and r[1].get("detail")]
    other = [(i, r) for i, r in enumerate(results) if i not in ok200 and i not in busy]
    report(not other, "concurrent: %d requests each answered 200 or 503 with a detail" % CONCURRENT,
           "%d x 200, %d x 503" % (len(ok200), len(busy)) if not other
           else "%d others, first: %r" % (len(other), other[0]))
    report(all(isinstance(results[i][1], dict) and isinstance(results[i][1].get("response"), str)
               for i in ok200), "concurrent: each 200 has a response")
    report(len(ok200) > 0, "concurrent: some were answered", "%d" % len(ok200))
    figure("sidecar concurrent: %d requests in %.1f s: %d answered 200, %d refused 503 (queue "
           "full, with a detail)" % (CONCURRENT, wall, len(ok200), len(busy)))
    if busy:
        figure("sidecar 503 detail: %s" % results[busy[0]][1]["detail"])
    # Each answer is its own request's: asked again alone, the same text and prompt.
    mixed = []
    for i in ok200:
        st, again = request(port, "POST", "/generate", gen_body(i))
        first = results[i][1]
        if st != 200 or again.get("response") != first.get("response") or \
                again["timings"]["prompt_tokens"] != first["timings"]["prompt_tokens"]:
            mixed.append((i, first.get("response"), again.get("response") if st == 200 else st))
    report(not mixed, "concurrent: each answer belongs to its request (asked again alone: the "
           "same text and prompt tokens)", "%d checked" % len(ok200) if not mixed
           else "%d differ, first %r" % (len(mixed), mixed[0]))
    distinct = len({results[i][1]["timings"]["prompt_tokens"] for i in ok200})
    report(distinct >= min(len(ok200), 10), "concurrent: the prompts differ",
           "%d distinct prompt lengths" % distinct)
    st, after = request(port, "GET", "/status")
    rss_after = after["memory"]["rss_bytes"]
    figure("sidecar RSS: idle %.1f MB, after the concurrent requests %.1f MB" %
           (rss_idle / 2**20, rss_after / 2**20))
    if SANITIZED:
        report(True, "concurrent: RSS not checked under ASan (its quarantine)")
    else:
        report(rss_after - rss_idle < 32 * 2**20, "concurrent: RSS within 32 MB of idle",
               "%+.1f MB" % ((rss_after - rss_idle) / 2**20))


class Generator:
    """Keeps the sidecar generating (one long greedy generation after another)."""

    def __init__(self, port):
        self.port, self.stop, self.runs = port, False, 0
        self.t = threading.Thread(target=self.loop)
        self.t.start()

    def loop(self):
        while not self.stop:
            try:
                request(self.port, "POST", "/generate",
                        {"prompt": "keep busy", "ignore_eos": True, "max_tokens": 160,
                         "temperature": 0}, timeout=300)
                self.runs += 1
            except Exception:  # noqa: BLE001 - the measurement reports what it saw
                time.sleep(0.05)

    def join(self):
        self.stop = True
        self.t.join(300)


def wait_state(port, want, limit_s):
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        st, s = request(port, "GET", "/status")
        if st == 200 and s.get("state") == want:
            return True
        time.sleep(0.01)
    return False


def short_slice():
    """Asks the kernel for a 100 us time slice for this thread, as the HTTP threads do
    (httpd.c's short_slice; Linux 6.12 on, ignored before), so that the client's own
    wake-up behind busy threads is not what the latency measures. CODICTATE_LOAD_CLIENT_SLICE_US
    sets it (0: the kernel's default). Returns the slice asked for, us (0: none)."""
    us = int(os.environ.get("CODICTATE_LOAD_CLIENT_SLICE_US", "100"))
    nr = {"x86_64": 314, "aarch64": 274}.get(os.uname().machine)
    if us <= 0 or nr is None or os.sched_getscheduler(0) != os.SCHED_OTHER:
        return 0
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        # struct sched_attr: size, policy, flags, nice, priority, runtime, deadline, period
        attr = struct.pack("=IIQiIQQQ", 48, os.SCHED_OTHER, 0, os.getpriority(os.PRIO_PROCESS, 0),
                           0, us * 1000, 0, 0)
        buf = ctypes.create_string_buffer(attr, len(attr))
        return us if libc.syscall(nr, 0, buf, 0) == 0 else 0
    except (OSError, AttributeError):
        return 0


def sidecar_latency(port):
    g = Generator(port)
    try:
        report(wait_state(port, "generating", 60), "latency: the sidecar is generating")
        slice_us = short_slice()
        c = http.client.HTTPConnection(HOST, port, timeout=30)
        lat = {"/status": [], "/health": []}
        bad, generating = [], 0
        for k in range(REQUESTS):
            path = "/status" if k % 2 == 0 else "/health"
            t = time.perf_counter()
            c.request("GET", path)
            r = c.getresponse()
            raw = r.read()
            lat[path].append((time.perf_counter() - t) * 1000)
            if r.status != 200:
                bad.append((path, r.status))
            elif path == "/status" and json.loads(raw).get("state") == "generating":
                generating += 1
        c.close()
    finally:
        g.join()
    both = lat["/status"] + lat["/health"]
    report(not bad, "latency: %d /status and /health answered 200 during generation" % REQUESTS,
           "" if not bad else "%d not: %r" % (len(bad), bad[:3]))
    n_status = len(lat["/status"])
    report(generating >= n_status * 0.8, "latency: measured while generating",
           "%d of %d /status said generating" % (generating, n_status))
    p50, p99, mx = pct(both, 50), pct(both, 99), max(both)
    figure("sidecar /status+/health during generation (keep-alive, %d requests, %d generations "
           "ran, client slice %s): p50 %.2f ms, p99 %.2f ms, max %.2f ms; /status p99 %.2f ms, "
           "/health p99 %.2f ms"
           % (len(both), g.runs, "%d us" % slice_us if slice_us else "default", p50, p99, mx,
              pct(lat["/status"], 99), pct(lat["/health"], 99)))
    report(p99 < P99_BOUND_MS, "latency: p99 under %g ms (CODICTATE_LOAD_P99_MS)" % P99_BOUND_MS,
           "%.2f ms" % p99)


def raw_conn(port, timeout=30):
    s = socket.create_connection((HOST, port), timeout=timeout)
    return s


def rst_close(s):
    """Closes with a reset (SO_LINGER 0): a client that vanishes."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def slow_client(port, out, i):
    """A header byte a second; records how the server ended it."""
    req = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Slow: %s\r\n\r\n" % (port, b"s" * 40)
    t0 = time.monotonic()
    try:
        s = raw_conn(port)
        for b in req:
            s.sendall(bytes([b]))
            time.sleep(1)
            if time.monotonic() - t0 > 40:
                break
        s.settimeout(5)
        data = s.recv(1024)
        out[i] = ("answered" if data else "closed", time.monotonic() - t0)
        s.close()
    except OSError:
        out[i] = ("closed", time.monotonic() - t0)


def vanish_mid_body(port, rst):
    s = raw_conn(port)
    body = json.dumps({"prompt": "never finished " * 60})
    s.sendall(b"POST /generate HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % (port, len(body)) + body[:len(body) // 3].encode())
    time.sleep(0.01)
    rst_close(s) if rst else s.close()


def vanish_mid_stream(port, rst):
    s = raw_conn(port, timeout=120)
    body = json.dumps({"prompt": "stream then vanish", "stream": True, "ignore_eos": True,
                       "max_tokens": 400, "temperature": 0})
    s.sendall(b"POST /generate HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (port, len(body), body.encode()))
    data = b""
    while b"data: " not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    rst_close(s) if rst else s.close()
    return b"data: " in data


def sidecar_clients(port, pid):
    wait_state(port, "ready", 60)
    base = settle(pid, counts(pid), 2)
    slow_out = [None] * SLOW
    slow = [threading.Thread(target=slow_client, args=(port, slow_out, i)) for i in range(SLOW)]
    for t in slow:
        t.start()
    streamed = []

    def vanishers():
        for k in range(max(REQUESTS // 20, 10)):
            vanish_mid_body(port, k % 2 == 0)
        for k in range(max(REQUESTS // 100, 4)):
            streamed.append(vanish_mid_stream(port, k % 2 == 0))

    van = threading.Thread(target=vanishers)
    van.start()
    # Keep-alive: one connection.
    bad, lat_ka = [], []
    c = http.client.HTTPConnection(HOST, port, timeout=30)
    for _ in range(REQUESTS):
        t = time.perf_counter()
        c.request("GET", "/health")
        r = c.getresponse()
        r.read()
        lat_ka.append((time.perf_counter() - t) * 1000)
        if r.status != 200:
            bad.append(r.status)
    c.close()
    report(not bad, "clients: %d keep-alive requests answered 200" % REQUESTS,
           "" if not bad else "%d not" % len(bad))
    # New connections.
    bad, lat_new = [], []
    for _ in range(REQUESTS):
        t = time.perf_counter()
        try:
            st, _ = request(port, "GET", "/health", timeout=30, headers={"Connection": "close"})
        except OSError as e:
            st = str(e)
        lat_new.append((time.perf_counter() - t) * 1000)
        if st != 200:
            bad.append(st)
    report(not bad, "clients: %d new connections answered 200" % REQUESTS,
           "" if not bad else "%d not, first %r" % (len(bad), bad[0]))
    van.join(300)
    report(streamed and all(streamed), "clients: the streams that vanished had begun",
           "%d streams" % len(streamed))
    for t in slow:
        t.join(60)
    cut = [o for o in slow_out if o and o[0] == "closed"]
    report(len(cut) == SLOW, "clients: %d byte-a-second clients cut" % SLOW,
           "after %.0f-%.0f s" % (min(o[1] for o in cut), max(o[1] for o in cut)) if cut else
           repr(slow_out[:3]))
    report(wait_state(port, "ready", 120), "clients: the generations of vanished clients stopped")
    st, g = request(port, "POST", "/generate", gen_body(1))
    report(st == 200, "clients: a generate after them is answered", str(st))
    after = settle(pid, base, 20)
    figure("sidecar clients: %d keep-alive (p50 %.2f ms, p99 %.2f ms) and %d new connections "
           "(p50 %.2f ms, p99 %.2f ms) while %d byte-a-second clients, %d vanishing mid-body and "
           "%d mid-stream; descriptors %d -> %d, threads %d -> %d"
           % (REQUESTS, pct(lat_ka, 50), pct(lat_ka, 99), REQUESTS, pct(lat_new, 50),
              pct(lat_new, 99), SLOW, max(REQUESTS // 20, 10), len(streamed), base[0], after[0],
              base[1], after[1]))
    report(after[0] <= base[0], "clients: no descriptor held per dead client",
           "%d -> %d" % (base[0], after[0]))
    report(after[1] <= base[1], "clients: no thread held per dead client",
           "%d -> %d" % (base[1], after[1]))


def sidecar(port, pid, model):
    st, body = request(port, "POST", "/load", {"model_path": model})
    if not report(st == 200, "load the model", str(body)[:200]):
        return
    request(port, "POST", "/generate", gen_body(0))  # warm: the idle RSS is a used model's
    sidecar_concurrent(port, pid)
    sidecar_latency(port)
    sidecar_clients(port, pid)


# ---------------------------------------------------------------- the app


def app_dictate(port, wav, limit_s):
    """POST /api/transcribe, then waits for the dictation's end; returns its state object."""
    st, d = request(port, "POST", "/api/transcribe", wav, headers={"Content-Type": "audio/wav"})
    if st != 202:
        return {"state": "http %d" % st, "detail": d}
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        st, d = request(port, "GET", "/api/dictation")
        if st == 200 and d.get("state") in ("done", "failed", "cancelled"):
            return d
        time.sleep(0.05)
    return {"state": "no end in %d s" % limit_s}


def model_state(port, mid):
    st, m = request(port, "GET", "/api/models")
    return next((x for x in m["models"] if x["id"] == mid), {}) if st == 200 else {}


def hub_control(body):
    u = os.environ["HF_ENDPOINT"].split("//", 1)[1]
    host, hport = u.split(":")
    c = http.client.HTTPConnection(host, int(hport), timeout=10)
    c.request("POST", "/_control", body=json.dumps(body))
    c.getresponse().read()
    c.close()


def app(url, pid, wav_path):
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    wav = open(wav_path, "rb").read()
    # Warm: the first dictation starts the sidecar and loads the models.
    d = app_dictate(port, wav, 180)
    report(d.get("state") == "done", "app: a first dictation", d.get("state", "?"))
    time.sleep(0.5)
    base = settle(pid, counts(pid), 2)
    hub_control({"reset": True, "rate": 1500000})
    st, _ = request(port, "POST", "/api/models/test_big_v1/download", {})
    report(st in (200, 202), "app: download started", str(st))
    done = threading.Event()
    lat, bad, polls = [], [], [0]

    def poller():
        c = http.client.HTTPConnection(HOST, port, timeout=30)
        paths = ["/api/status", "/api/models", "/api/dictation", "/api/history", "/api/settings"]
        k = 0
        while not done.is_set():
            p = paths[k % len(paths)]
            k += 1
            t = time.perf_counter()
            c.request("GET", p)
            r = c.getresponse()
            r.read()
            lat.append((time.perf_counter() - t) * 1000)
            if r.status != 200:
                bad.append((p, r.status))
        polls[0] = k
        c.close()

    pt = threading.Thread(target=poller)
    pt.start()
    t0 = time.monotonic()
    seen_downloading = model_state(port, "test_big_v1").get("state") == "downloading"
    dres = [None]

    def dictate():
        dres[0] = app_dictate(port, wav, 180)

    dt = threading.Thread(target=dictate)
    dt.start()
    gone = [0, 0]

    def app_vanishers():
        # Uploads cut mid-body (half closed, half reset) and event streams that
        # vanish after their first event, while the rest goes on.
        for k in range(max(REQUESTS // 20, 10)):
            s = raw_conn(port)
            s.sendall(b"POST /api/transcribe HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                      b"Content-Type: audio/wav\r\nContent-Length: %d\r\n\r\n" % (port, len(wav))
                      + wav[:len(wav) // 4])
            time.sleep(0.01)
            rst_close(s) if k % 2 == 0 else s.close()
            gone[0] += 1
        for k in range(max(REQUESTS // 100, 4)):
            s = raw_conn(port)
            s.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port)
            data = b""
            while b"data: " not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            rst_close(s) if k % 2 == 0 else s.close()
            gone[1] += 1

    vt = threading.Thread(target=app_vanishers)
    vt.start()
    state = ""
    while time.monotonic() - t0 < 120:
        state = model_state(port, "test_big_v1").get("state")
        if state == "downloading":
            seen_downloading = True
        if state in ("downloaded", "download_failed"):
            break
        time.sleep(0.1)
    dt.join(200)
    vt.join(120)
    dl_s = time.monotonic() - t0
    done.set()
    pt.join(60)
    report(seen_downloading, "app: the download ran while the others did")
    report(state == "downloaded", "app: the download completed and verified", state)
    d = dres[0] or {}
    report(d.get("state") == "done" and bool((d.get("raw") or "").strip()),
           "app: the dictation during it ended with a transcript", d.get("state", "?"))
    report(not bad and polls[0] > 0, "app: %d polls answered 200" % polls[0],
           "" if not bad else "%d not: %r" % (len(bad), bad[:3]))
    hub_control({"reset": True})
    after = settle(pid, base, 20)
    figure("app together: a 6 MB download at 1.5 MB/s (%.1f s), a dictation and %d API polls "
           "(p50 %.2f ms, p99 %.2f ms, max %.2f ms) while %d uploads vanished mid-body and %d "
           "event streams after their first event; the app's descriptors %d -> %d, threads "
           "%d -> %d" % (dl_s, polls[0], pct(lat, 50), pct(lat, 99), max(lat or [0]), gone[0],
                         gone[1], base[0], after[0], base[1], after[1]))
    report(after[0] <= base[0], "app: descriptors back", "%d -> %d" % (base[0], after[0]))
    report(after[1] <= base[1], "app: threads back", "%d -> %d" % (base[1], after[1]))


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "sidecar":
        sidecar(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    elif len(sys.argv) == 5 and sys.argv[1] == "app":
        app(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
