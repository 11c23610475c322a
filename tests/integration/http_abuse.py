#!/usr/bin/env python3
"""Hostile HTTP clients against a server on the shared HTTP layer (src/lib/httpd.c).

  http_abuse.py PORT PATH [--only malformed|chunked|flood]
  http_abuse.py PORT PATH --halfclose MODEL      (the sidecar, with a model file)

PATH is a token-free GET that answers 200 (the sidecar's /health, the app's
/api/status). Checks (issue 14 §0):
  malformed  each malformed request gets exactly one status line (400; 501 for a
             transfer coding other than chunked) and a closed connection within a
             few seconds
  chunked    a chunked body (several chunks, an extension, a trailer) is answered as
             the same body with a Content-Length; a chunked body over the server's
             cap gets one 413 and a close; a chunk that never ends, one 408 and a
             close at the request deadline
  flood      PATH answers while 500 idle sockets and some byte-a-second dribblers
             hang on; the dribblers are cut within a bounded time
  halfclose  a complete POST /generate (plain and streamed) followed by
             shutdown(SHUT_WR), as `nc -N` does, is answered 200: end of input is
             not a disconnect
Every wait is bounded; prints "ok"/"FAIL" lines and exits 1 on a failure.
"""
import json
import socket
import sys
import time

HOST = "127.0.0.1"
failed = 0


def report(ok, name, detail=""):
    global failed
    if ok:
        print("ok   " + name, file=sys.stderr)
    else:
        failed += 1
        print("FAIL " + name + (": " + detail if detail else ""), file=sys.stderr)


def read_until_close(s, limit_s):
    """Reads until the peer closes or limit_s passes. Returns (data, closed)."""
    data = b""
    end = time.monotonic() + limit_s
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return data, False
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk


def status_lines(data):
    return [ln for ln in data.split(b"\r\n") if ln.startswith(b"HTTP/1.")]


def get(port, path, limit_s):
    """A plain GET on a new connection; returns the status code or an error string."""
    try:
        s = socket.create_connection((HOST, port), timeout=limit_s)
    except OSError as e:
        return "connect: %s" % e
    try:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n"
                  % (path.encode(), port))
        data, _ = read_until_close(s, limit_s)
    except OSError as e:
        return "io: %s" % e
    finally:
        s.close()
    lines = status_lines(data)
    if not lines:
        return "no answer within %g s" % limit_s
    return int(lines[0].split()[1])


def malformed(port, path):
    host = b"Host: 127.0.0.1:%d\r\n" % port
    body = b'{"prompt":"hello"}'
    post = b"POST /generate HTTP/1.1\r\n" + host + b"Content-Type: application/json\r\n"
    chunks = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    cases = [
        ("two different Content-Length",
         post + b"Content-Length: %d\r\nContent-Length: 5\r\n\r\n" % len(body) + body),
        ("Content-Length and Transfer-Encoding",
         post + b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % len(body)
         + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"),
        ("Content-Length -1", post + b"Content-Length: -1\r\n\r\n" + body),
        ("Content-Length +30", post + b"Content-Length: +30\r\n\r\n" + body),
        ("Content-Length 1e3", post + b"Content-Length: 1e3\r\n\r\n" + body),
        ("Content-Length 0x10", post + b"Content-Length: 0x10\r\n\r\n" + body),
        ("Content-Length empty", post + b"Content-Length: \r\n\r\n" + body),
        ("Transfer-Encoding gzip", post + b"Transfer-Encoding: gzip\r\n\r\n" + body),
        ("Transfer-Encoding gzip, chunked", post + b"Transfer-Encoding: gzip, chunked\r\n\r\n"
         + chunks, 501),
        ("Transfer-Encoding chunked, gzip", post + b"Transfer-Encoding: chunked, gzip\r\n\r\n"
         + chunks),
        ("two Transfer-Encoding", post + b"Transfer-Encoding: chunked\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n" + chunks),
        ("chunked in HTTP/1.0", post.replace(b"HTTP/1.1", b"HTTP/1.0")
         + b"Transfer-Encoding: chunked\r\n\r\n" + chunks),
        ("chunk size over 2^64-1 (1FFFFFFFFFFFFFFFF)",
         post + b"Transfer-Encoding: chunked\r\n\r\n1FFFFFFFFFFFFFFFF\r\n" + body),
        ("chunk size not hex", post + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n" + body),
        ("chunk without its CRLF", post + b"Transfer-Encoding: chunked\r\n\r\n"
         + b"%x\r\n" % len(body) + body + b"XY0\r\n\r\n"),
        ("request line without version", b"GET /\r\n\r\n"),
        ("request line with a bad version", b"GET / HTTP/x.y\r\n\r\n"),
        ("duplicate Host", b"GET %s HTTP/1.1\r\n" % path.encode() + host
         + b"Host: evil.example\r\nConnection: close\r\n\r\n"),
        ("duplicate Origin", b"GET %s HTTP/1.1\r\n" % path.encode() + host
         + b"Origin: http://127.0.0.1\r\nOrigin: http://evil.example\r\n"
         b"Connection: close\r\n\r\n"),
    ]
    for case in cases:
        name, raw, want = case if len(case) == 3 else case + (400,)
        try:
            s = socket.create_connection((HOST, port), timeout=5)
        except OSError as e:
            report(False, name, "connect: %s" % e)
            continue
        try:
            s.sendall(raw)
            t0 = time.monotonic()
            data, closed = read_until_close(s, 10)
            took = time.monotonic() - t0
        except OSError as e:
            data, closed, took = b"", True, 0
            report(False, name, "io: %s" % e)
            s.close()
            continue
        s.close()
        lines = status_lines(data)
        ok = len(lines) == 1 and lines[0].split()[1:2] == [b"%d" % want] and closed
        report(ok, name + ": one %d and closed" % want,
               "status lines %r, closed %s after %.1f s" % (lines, closed, took))
    # A first line that is not HTTP at all (no space in it, e.g. a TLS hello): one 400
    # at once (libmicrohttpd alone would close without a word), closed.
    hello = bytes.fromhex("160301020001") + bytes(200)
    for name, raw in [("not HTTP (TLS hello)", hello),
                      ("not HTTP (a word, then CRLF)", b"GARBAGE\r\n\r\n"),
                      ("not HTTP, no end of line", b"\x16\x03\x01garbage")]:
        s = socket.create_connection((HOST, port), timeout=5)
        t0 = time.monotonic()
        s.sendall(raw)
        data, closed = read_until_close(s, 30)
        took = time.monotonic() - t0
        s.close()
        lines = status_lines(data)
        report(closed and len(lines) == 1 and b" 400 " in lines[0] and took < 2,
               name + ": one 400 at once and closed",
               "status lines %r, closed %s after %.1f s" % (lines, closed, took))


# A POST per server whose answer depends on its body: the sidecar's /load of a file
# that does not exist (500 naming it), the app's /api/refine (200, the text refined).
POSTS = {"/health": ("/load", b'{"model_path":"/nonexistent/chunked-test.gguf"}'),
         "/api/status": ("/api/refine", b'{"text":"so um the chunked body arrived comma intact"}')}


def exchange(port, raw, limit_s):
    """Sends raw on a new connection; returns (status lines, body after the head,
    closed, seconds)."""
    s = socket.create_connection((HOST, port), timeout=limit_s)
    t0 = time.monotonic()
    try:
        s.sendall(raw)
        data, closed = read_until_close(s, limit_s)
    finally:
        s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    return status_lines(head + b"\r\n"), rest, closed, time.monotonic() - t0


def same(a, b):
    """Two JSON answers alike but for their timings."""
    def strip(v):
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if k != "timings"}
        return [strip(x) for x in v] if isinstance(v, list) else v
    try:
        return strip(json.loads(a)) == strip(json.loads(b))
    except ValueError:
        return a == b


def chunked(port, path):
    if path not in POSTS:
        return
    target, body = POSTS[path]
    head = (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\n" % (target.encode(), port))
    want_lines, want, _, _ = exchange(port, head + b"Content-Length: %d\r\n\r\n" % len(body)
                                      + body, 60)
    a, b = body[:7], body[7:]
    for name, te, framed in [
            ("three chunks, an extension and a trailer", b"chunked",
             b"%x;name=value\r\n%s\r\n%x\r\n%s\r\n0\r\nX-Trailer: t\r\n\r\n"
             % (len(a), a, len(b), b)),
            ("one chunk, 'Chunked'", b"Chunked", b"%X\r\n%s\r\n0\r\n\r\n" % (len(body), body))]:
        lines, got, closed, _ = exchange(port, head + b"Transfer-Encoding: " + te + b"\r\n\r\n"
                                         + framed, 60)
        report(len(lines) == 1 and lines == want_lines and same(got, want) and closed,
               "chunked: %s: answered as with a Content-Length (%s)" % (name, want_lines),
               "got %r %r, want %r %r" % (lines, got[:200], want_lines, want[:200]))
    # Over the cap (the sidecar's 1 MB, the app's 100 MB): one 413 once it passes,
    # without waiting for the rest.
    cap = 1024 * 1024 if target == "/load" else 100 * 1024 * 1024
    piece = b"x" * 65536
    s = socket.create_connection((HOST, port), timeout=30)
    t0 = time.monotonic()
    sent = 0
    try:
        s.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
        while sent <= cap + len(piece) and time.monotonic() - t0 < 60:
            s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sent += len(piece)
    except OSError:
        pass  # closed by the server: its answer is in our receive queue
    try:
        data, closed = read_until_close(s, 30)
    except OSError:
        data, closed = b"", True
    s.close()
    lines = status_lines(data)
    report(len(lines) == 1 and lines[0].split()[1:2] == [b"413"] and closed,
           "chunked: a body over the cap (%d bytes): one 413 and closed" % cap,
           "status lines %r, closed %s after %d bytes, %.1f s"
           % (lines, closed, sent, time.monotonic() - t0))
    # A chunk announced as 2^64-1 bytes with the head: one 413 at once.
    lines, got, closed, took = exchange(
        port, head + b"Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\n" + body, 40)
    report(len(lines) == 1 and lines[0].split()[1:2] == [b"413"] and closed and took < 2,
           "chunked: chunk size FFFFFFFFFFFFFFFF with the head: one 413 at once and closed",
           "status lines %r, closed %s after %.1f s" % (lines, closed, took))
    # The same after the head, then nothing: MHD takes any 16-digit size, so the
    # request deadline (10 s) ends it, with a 408.
    s = socket.create_connection((HOST, port), timeout=40)
    t0 = time.monotonic()
    s.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
    time.sleep(0.2)
    s.sendall(b"FFFFFFFFFFFFFFFF\r\n" + body)
    data, closed = read_until_close(s, 40)
    took = time.monotonic() - t0
    s.close()
    lines = status_lines(data)
    report(len(lines) == 1 and lines[0].split()[1:2] == [b"408"] and closed,
           "chunked: chunk size FFFFFFFFFFFFFFFF after the head, then nothing: one 408 and "
           "closed", "status lines %r, closed %s after %.1f s" % (lines, closed, took))


def flood(port, path, n_idle=500, n_dribble=16):
    idle, dribblers = [], []
    t_start = time.monotonic()
    for _ in range(n_idle):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect((HOST, port))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            continue
        idle.append(s)
    req = b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Slow: " % (path.encode(), port)
    for _ in range(n_dribble):
        s = socket.socket()
        s.settimeout(5)
        try:
            s.connect((HOST, port))
        except OSError:
            s.close()
            continue
        s.setblocking(False)
        dribblers.append([s, 0, None])  # socket, bytes sent, time it was cut
    # /health must answer while they hang on: several times over 12 s.
    answers = []
    next_probe = time.monotonic()
    while time.monotonic() - t_start < 12:
        for d in dribblers:  # a byte a second
            if d[2] is None:
                try:
                    d[0].send(req[d[1] % len(req):d[1] % len(req) + 1] if d[1] < len(req)
                              else b"a")
                    d[1] += 1
                except OSError:
                    d[2] = time.monotonic()
        if time.monotonic() >= next_probe:
            answers.append(get(port, path, 15))
            next_probe = time.monotonic() + 3
        time.sleep(1)
    report(len(answers) >= 3 and all(a == 200 for a in answers),
           "flood: %s answers 200 with %d idle sockets and %d dribblers"
           % (path, len(idle), len(dribblers)), "answers %r" % answers)
    # The dribblers never finish their request: each is cut (bounded wait).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(d[2] is None for d in dribblers):
        for d in dribblers:
            if d[2] is None:
                try:
                    d[0].send(b"a")
                    if d[0].recv(1) == b"":
                        d[2] = time.monotonic()
                except BlockingIOError:
                    pass
                except OSError:
                    d[2] = time.monotonic()
        time.sleep(1)
    alive = sum(1 for d in dribblers if d[2] is None)
    report(alive == 0, "flood: byte-a-second clients are cut",
           "%d of %d still connected after %.0f s" % (alive, len(dribblers),
                                                      time.monotonic() - t_start))
    for s in idle:
        s.close()
    for d in dribblers:
        d[0].close()
    report(get(port, path, 15) == 200, "flood: %s answers after the flood" % path)


def post(port, path, body, half_close, limit_s=60):
    """A POST; with half_close the sending side is shut after the body. Returns
    (status or None, raw answer)."""
    s = socket.create_connection((HOST, port), timeout=limit_s)
    try:
        s.sendall(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (path.encode(), port, len(body))
                  + body)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        data, _ = read_until_close(s, limit_s)
    finally:
        s.close()
    lines = status_lines(data)
    return (int(lines[0].split()[1]) if lines else None), data


def halfclose(port, model):
    status, data = post(port, "/load", b'{"model_path":"%s"}' % model.encode(), False, 120)
    report(status == 200, "halfclose: the model loads", data[-300:].decode(errors="replace"))
    status, data = post(port, "/generate", b'{"prompt":"Say hi.","max_tokens":8}', True)
    report(status == 200 and b'"response"' in data,
           "halfclose: POST /generate then shutdown(SHUT_WR): answered 200",
           data[-300:].decode(errors="replace"))
    status, data = post(port, "/generate", b'{"prompt":"Say hi.","max_tokens":8,"stream":true}',
                        True)
    report(status == 200 and b'"done":true' in data,
           "halfclose: streamed POST /generate then shutdown(SHUT_WR): every event",
           data[-300:].decode(errors="replace"))


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    only = sys.argv[4] if len(sys.argv) > 4 and sys.argv[3] == "--only" else None
    report(get(port, path, 15) == 200, "%s answers 200" % path)
    if len(sys.argv) > 4 and sys.argv[3] == "--halfclose":
        halfclose(port, sys.argv[4])
        only = "none"
    if only in (None, "malformed"):
        malformed(port, path)
    if only in (None, "chunked"):
        chunked(port, path)
    if only in (None, "flood"):
        flood(port, path)
    print("%s" % ("all passed" if failed == 0 else "%d failed" % failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
