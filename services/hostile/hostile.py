#!/usr/bin/env python3
"""hostile.py - hostile clients against the kv example and redis-server.

Each row starts a fresh server on 127.0.0.1 (a free port), plays one
hostile client pattern against it, checks that the server still serves
everyone else within bounds, and kills the server. Every row runs against
the kv example (services/examples/kv.rs, release build) and, when given,
against redis-server; the results are printed side by side. Only the kv
rows decide the exit status: redis-server's are for comparison.

Rows (see services/hostile/README.md for what each one checks and why):
  glob      CONFIG GET with 200 '*' then 'x'; 10 new clients meanwhile
  flood     one client streaming pipelined PINGs; PING latency of another
  fds       RLIMIT_NOFILE 64 on the server, 100 clients, then 50 close
  expiry    one key rewritten 500,000 times with SET k v EX 100000
  unread    50 clients pipelining GET of a 10 KB value, never reading
  bigreq    one endless request: *1000000 args of $16777216 bulks
  slowloris 50 clients sending a request a byte per 100 ms
  halfclose a pipeline, then shutdown(SHUT_WR): every reply, then a close
  reset     clients reset (SO_LINGER 0) while replies are owed

Python 3 standard library only. Linux only (/proc/PID/status, prctl).

Usage: hostile.py --kv PATH [--redis PATH] [--rows glob,flood,...]
                  [--kv-workers N] [bounds: see --help]
Exit status: 0 every kv row passed, 1 a kv row failed, 2 a setup error.
"""

import argparse
import atexit
import ctypes
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

MIB = 1 << 20

# --------------------------------------------------------------------------
# RESP


def resp(*args):
    """One RESP2 multibulk request."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


class Err(str):
    """A RESP error reply."""


NIL = object()
INCOMPLETE = object()


def parse(buf, pos):
    """One RESP2 reply in buf at pos: (value, next pos), or INCOMPLETE."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return INCOMPLETE
    kind, line, after = buf[pos:pos + 1], bytes(buf[pos + 1:end]), end + 2
    if kind == b"+":
        return line.decode(errors="replace"), after
    if kind == b"-":
        return Err(line.decode(errors="replace")), after
    if kind == b":":
        return int(line), after
    if kind == b"$":
        n = int(line)
        if n < 0:
            return NIL, after
        if len(buf) < after + n + 2:
            return INCOMPLETE
        return bytes(buf[after:after + n]), after + n + 2
    if kind == b"*":
        n = int(line)
        if n < 0:
            return NIL, after
        items = []
        for _ in range(n):
            r = parse(buf, after)
            if r is INCOMPLETE:
                return INCOMPLETE
            items.append(r[0])
            after = r[1]
        return items, after
    raise ValueError("not a RESP reply: %r" % bytes(buf[pos:pos + 40]))


class Hang(Exception):
    """No reply within the deadline."""


class Closed(Exception):
    """The server closed or reset the connection."""


class Client:
    """A blocking RESP client with deadlines."""

    def __init__(self, port, timeout=5.0, rcvbuf=None):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        try:
            sock.connect(("127.0.0.1", port))
        except socket.timeout:
            sock.close()
            raise Hang("connect")
        except OSError as e:
            sock.close()
            raise Closed("connect: %s" % e)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.buf = bytearray()

    def send(self, data):
        try:
            self.sock.sendall(data)
        except socket.timeout:
            raise Hang("send")
        except OSError as e:
            raise Closed(str(e))

    def reply(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            r = parse(self.buf, 0) if self.buf else INCOMPLETE
            if r is not INCOMPLETE:
                del self.buf[:r[1]]
                return r[0]
            left = deadline - time.monotonic()
            if left <= 0:
                raise Hang("no reply in %.1f s" % timeout)
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(1 << 16)
            except socket.timeout:
                raise Hang("no reply in %.1f s" % timeout)
            except OSError as e:
                raise Closed(str(e))
            if not data:
                raise Closed("EOF")
            self.buf += data

    def call(self, *args, timeout=5.0):
        self.send(resp(*args))
        return self.reply(timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# --------------------------------------------------------------------------
# Servers


_servers = []


def _kill_all():
    for s in list(_servers):
        s.stop()


atexit.register(_kill_all)


def _on_signal(signum, _frame):
    _kill_all()
    sys.exit(128 + signum)


def _preexec(nofile):
    def run():
        # Die with this script, whatever kills it (PR_SET_PDEATHSIG = 1).
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
        except OSError:
            pass
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    return run


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server process on a free 127.0.0.1 port, killed by stop()."""

    def __init__(self, kind, binary, logdir, workers=2, nofile=None):
        self.kind, self.port = kind, free_port()
        if kind == "kv":
            args = [binary, "--port", str(self.port), "--workers", str(workers), "--no-pin"]
        else:
            args = [binary, "--port", str(self.port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--daemonize", "no"]
        self.log = os.path.join(logdir, "%s-%d.log" % (kind, self.port))
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, preexec_fn=_preexec(nofile))
        _servers.append(self)
        deadline = time.monotonic() + 15
        while True:
            try:
                c = Client(self.port, timeout=1)
                ok = c.call("PING", timeout=2) == "PONG"
                c.close()
                if ok:
                    return
            except (Hang, Closed, ValueError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                with open(self.log, "rb") as log:
                    tail = log.read()[-2000:].decode(errors="replace")
                raise RuntimeError("%s did not answer PING on port %d:\n%s" % (kind, self.port, tail))
            time.sleep(0.05)

    def rss_mb(self):
        """Resident set size now, MiB (VmRSS of /proc/PID/status)."""
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024.0
        except OSError:
            pass
        return float("nan")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self in _servers:
            _servers.remove(self)
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


class RssPeak(threading.Thread):
    """Samples a server's RSS every 20 ms until stopped; keeps the peak."""

    def __init__(self, server):
        super().__init__(daemon=True)
        self.server, self.base = server, server.rss_mb()
        self.peak, self.halt = 0.0, threading.Event()
        self.start()

    def run(self):
        while not self.halt.is_set():
            rss = self.server.rss_mb()
            if rss == rss:  # not NaN
                self.peak = max(self.peak, rss - self.base)
            self.halt.wait(0.02)

    def stop(self):
        self.halt.set()
        self.join()
        return self.peak


def served(port, timeout=5.0, keys=8, tag="probe"):
    """Whether a fresh client gets PING and SETs/GETs of `keys` keys (spread
    over the shards) answered within `timeout`."""
    try:
        c = Client(port, timeout=timeout)
    except (Hang, Closed):
        return False
    try:
        batch = [resp("PING")]
        for j in range(keys):
            batch.append(resp("SET", "%s:%d" % (tag, j), "v%d" % j))
            batch.append(resp("GET", "%s:%d" % (tag, j)))
        c.send(b"".join(batch))
        deadline = time.monotonic() + timeout
        if c.reply(timeout) != "PONG":
            return False
        for j in range(keys):
            left = max(0.01, deadline - time.monotonic())
            if c.reply(left) != "OK" or c.reply(left) != b"v%d" % j:
                return False
        return True
    except (Hang, Closed):
        return False
    finally:
        c.close()


def result(ok, text):
    return {"ok": bool(ok), "text": text}


# --------------------------------------------------------------------------
# Rows: each takes a running Server and returns result(ok, text).


def row_glob(srv, opts):
    """CONFIG GET with 200 '*' then 'x': answered within 2 s, and 10 new
    clients' PINGs and SETs over every shard answered meanwhile."""
    a = Client(srv.port)
    sent = time.monotonic()
    a.send(resp("CONFIG", "GET", "*" * 200 + "x"))
    others = []
    for i in range(10):
        try:
            c = Client(srv.port, timeout=3)
            batch = [resp("PING")] + [resp("SET", "hostile:glob:%d:%d" % (i, j), "v") for j in range(8)]
            c.send(b"".join(batch))
            others.append(c)
        except (Hang, Closed):
            others.append(None)
    answered_in = None
    try:
        reply = a.reply(timeout=max(0.01, 2.0 - (time.monotonic() - sent)))
        answered_in = time.monotonic() - sent
    except (Hang, Closed):
        reply = None
    ok_clients = 0
    deadline = time.monotonic() + 3
    for c in others:
        if c is None:
            continue
        try:
            replies = [c.reply(max(0.01, deadline - time.monotonic())) for _ in range(9)]
            ok_clients += replies == ["PONG"] + ["OK"] * 8
        except (Hang, Closed):
            pass
        c.close()
    a.close()
    if answered_in is None:
        first = "no answer in 2 s"
    else:
        first = "answered in %.0f ms" % (answered_in * 1000)
        if not isinstance(reply, list):
            first += " (%r)" % (reply,)
    ok = answered_in is not None and isinstance(reply, list) and ok_clients == 10
    return result(ok, "%s; %d/10 new clients served" % (first, ok_clients))


def flood_client(port, seconds):
    """The flooding client of the flood row, run as its own process (no
    shared interpreter lock with the prober): a thread sends a 4 MiB file
    of pipelined PINGs in a loop with sendfile (kernel speed), another reads
    the replies and throws them away unparsed (so the server never pauses
    the connection for unsent output). Prints how many reply bytes it got."""
    flood = Client(port)
    flood.sock.settimeout(None)
    counts = {"got": 0}

    def sender(f):
        try:
            while True:
                flood.sock.sendfile(f, 0)
        except OSError:
            pass

    def drainer():
        sink = bytearray(1 << 20)
        try:
            while True:
                n = flood.sock.recv_into(sink)
                if n == 0:
                    return
                counts["got"] += n
        except OSError:
            pass

    with tempfile.TemporaryFile() as f:
        f.write(resp("PING") * (4 * MIB // len(resp("PING"))))
        f.flush()
        for target, args in ((sender, (f,)), (drainer, ())):
            threading.Thread(target=target, args=args, daemon=True).start()
        time.sleep(seconds)
        print(counts["got"], flush=True)
        os._exit(0)


def row_flood(srv, opts):
    """One client streams pipelined PINGs as fast as the kernel takes them
    ([`flood_client`], its own process). Another client on the same worker
    (the kv runs one worker here) pings every 5 ms: its worst latency must
    stay below the bound."""
    flooder = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--flood-client", str(srv.port),
         str(opts.flood_seconds + 1.0)],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, preexec_fn=_preexec(None))
    time.sleep(0.5)
    worst, probes, failure = 0.0, 0, None
    try:
        probe = Client(srv.port, timeout=10)
        end = time.monotonic() + opts.flood_seconds
        while time.monotonic() < end:
            t0 = time.monotonic()
            try:
                reply = probe.call("PING", timeout=10)
            except (Hang, Closed) as e:
                failure = "probe: %s" % e
                worst = max(worst, time.monotonic() - t0)
                break
            worst = max(worst, time.monotonic() - t0)
            probes += 1
            if reply != "PONG":
                failure = "probe got %r" % (reply,)
                break
            time.sleep(0.005)
        probe.close()
    except (Hang, Closed) as e:
        failure = "probe connect: %s" % e
    try:
        out, _ = flooder.communicate(timeout=15)
        pongs = int(out.split()[-1]) // len(b"+PONG\r\n")
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        flooder.kill()
        flooder.wait()
        pongs = 0
    bound = opts.flood_bound_ms / 1000.0
    ok = failure is None and probes > 0 and worst < bound
    text = "worst PING %.0f ms over %d probes (bound %d ms); flooder got %.1f M PONGs" % (
        worst * 1000, probes, opts.flood_bound_ms, pongs / 1e6)
    if failure:
        text += "; " + failure
    return result(ok, text)


def row_fds(srv, opts):
    """The server runs with RLIMIT_NOFILE 64 (ulimit -n 64); 100 clients
    connect and PING. None may hang: each gets PONG, an error (Redis:
    -ERR max number of clients reached) or a close. Then the refused ones
    and 50 more close, and 10 new clients must all be served."""
    sel = selectors.DefaultSelector()
    conns = []
    refused_at_connect = 0
    for i in range(100):
        s = socket.socket()
        s.setblocking(False)
        err = s.connect_ex(("127.0.0.1", srv.port))
        if err not in (0, 115):  # EINPROGRESS
            refused_at_connect += 1
            s.close()
            continue
        conns.append({"sock": s, "state": "pending", "buf": b"", "sent": False})
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, conns[-1])
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline and any(c["state"] == "pending" for c in conns):
        for key, events in sel.select(timeout=0.1):
            c = key.data
            if c["state"] != "pending":
                continue
            s = c["sock"]
            if events & selectors.EVENT_WRITE and not c["sent"]:
                try:
                    s.send(resp("PING"))
                    c["sent"] = True
                    sel.modify(s, selectors.EVENT_READ, c)
                except BlockingIOError:
                    pass
                except OSError:
                    c["state"] = "closed"
                    sel.unregister(s)
                continue
            if events & selectors.EVENT_READ:
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    c["state"] = "closed"
                    sel.unregister(s)
                    continue
                c["buf"] += data
                if c["buf"].endswith(b"\r\n"):
                    c["state"] = "served" if c["buf"].startswith(b"+PONG") else "refused"
                    c["error"] = c["buf"].strip().decode(errors="replace")
                    sel.unregister(s)
    sel.close()
    counts = {}
    for c in conns:
        counts[c["state"]] = counts.get(c["state"], 0) + 1
    errors = sorted({c.get("error", "") for c in conns if c["state"] == "refused"})
    hung = counts.get("pending", 0)
    # Close what the server refused or closed, then 50 of the rest.
    gone = [c for c in conns if c["state"] in ("refused", "closed")]
    rest = [c for c in conns if c["state"] not in ("refused", "closed")]
    for c in gone + rest[:50]:
        c["sock"].close()
    time.sleep(0.2)
    new_served = 0
    for i in range(10):
        new_served += served(srv.port, timeout=5, keys=2, tag="hostile:fds:%d" % i)
    for c in rest[50:]:
        c["sock"].close()
    text = "%d served, %d refused%s, %d closed, %d hung; then %d/10 new clients served" % (
        counts.get("served", 0), counts.get("refused", 0) + refused_at_connect,
        (" (%s)" % "; ".join(e[:60] for e in errors)) if errors else "",
        counts.get("closed", 0), hung, new_served)
    return result(hung == 0 and new_served == 10, text)


def _pipeline(client, request, n, timeout):
    """Sends `request` n times (a thread) while reading the n replies;
    returns the replies' bytes."""
    data = request * n
    failure = []

    def sender():
        try:
            view = memoryview(data)
            step = len(request) * 8192
            for at in range(0, len(data), step):
                client.sock.sendall(view[at:at + step])
        except OSError as e:
            failure.append(e)

    t = threading.Thread(target=sender, daemon=True)
    client.sock.settimeout(timeout)
    t.start()
    got = bytearray()
    want = len(b"+OK\r\n") * n
    deadline = time.monotonic() + timeout
    while len(got) < want:
        client.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = client.sock.recv(1 << 20)
        except socket.timeout:
            raise Hang("%d of %d replies in %.0f s" % (len(got) // 5, n, timeout))
        except OSError as e:
            raise Closed(str(e))
        if not chunk:
            raise Closed("EOF after %d replies" % (len(got) // 5))
        got += chunk
    t.join(timeout)
    return bytes(got)


def row_expiry(srv, opts):
    """One key rewritten 500,000 times with SET k v EX 100000, pipelined:
    the server's RSS growth stays below a bound (one key's worth)."""
    c = Client(srv.port)
    request = resp("SET", "hostile:expiry", "v", "EX", "100000")
    try:
        _pipeline(c, request, 20000, 30)  # warm up buffers and allocator
        time.sleep(0.3)
        before = srv.rss_mb()
        t0 = time.monotonic()
        got = _pipeline(c, request, opts.expiry_writes, 120)
        took = time.monotonic() - t0
        time.sleep(0.3)
        growth = srv.rss_mb() - before
    except (Hang, Closed) as e:
        c.close()
        return result(False, "pipeline failed: %s" % e)
    c.close()
    good = got == b"+OK\r\n" * opts.expiry_writes
    ok = good and growth < opts.expiry_bound_mb
    return result(ok, "RSS %+.1f MB after %d rewrites in %.1f s (bound +%d MB)%s" % (
        growth, opts.expiry_writes, took, opts.expiry_bound_mb, "" if good else "; wrong replies"))


def row_unread(srv, opts):
    """50 clients pipeline GET of a 10 KB value as fast as the server
    takes them and never read. The server must stop taking their requests
    (or close them) once it owes them a bounded amount: within the row's
    time every client is held back (nothing sent for 1.5 s), the server's
    RSS growth stays below the bound, and a fresh client is served."""
    setup = Client(srv.port)
    # One key: the clients on other workers than its own get every reply
    # from another shard.
    setup.call("SET", "hostile:unread", b"x" * 10240)
    setup.close()
    rss = RssPeak(srv)
    chunk = resp("GET", "hostile:unread") * 1024
    view = memoryview(chunk)
    socks, offsets = [], []
    for i in range(50):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        s.settimeout(3)
        try:
            s.connect(("127.0.0.1", srv.port))
        except OSError:
            s.close()
            continue
        s.setblocking(False)
        socks.append(s)
        offsets.append(0)
    start = last_progress = time.monotonic()
    aborted = False
    while time.monotonic() - start < opts.unread_seconds:
        progressed = False
        for i, s in enumerate(socks):
            if s is None:
                continue
            try:
                n = s.send(view[offsets[i]:])
                offsets[i] = (offsets[i] + n) % len(chunk)
                progressed = progressed or n > 0
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                socks[i] = None
        now = time.monotonic()
        if progressed:
            last_progress = now
        elif now - last_progress > 1.5:
            break  # every client is held back: the server stopped reading them
        else:
            time.sleep(0.005)
        if rss.peak > opts.unread_abort_mb:
            aborted = True
            break
    took = time.monotonic() - start
    stalled = time.monotonic() - last_progress > 1.5
    closed = sum(s is None for s in socks)
    fresh = served(srv.port, timeout=5, tag="hostile:unread:probe")
    peak = rss.stop()
    for s in socks:
        if s is not None:
            s.close()
    if aborted:
        growth = "RSS over +%d MB after %.1f s, stopped there" % (opts.unread_abort_mb, took)
        held = "still taking requests"
    else:
        growth = "RSS peak %+.0f MB" % peak
        if stalled:
            held = "all %d held back%s after %.1f s" % (
                len(socks), " or closed (%d)" % closed if closed else "", took - 1.5)
        else:
            held = "still taking requests after %.0f s" % took
    text = "%s (bound +%d MB); %s; fresh client %s" % (
        growth, opts.unread_bound_mb, held, "served" if fresh else "NOT served")
    ok = not aborted and stalled and peak < opts.unread_bound_mb and fresh
    return result(ok, text)


def row_bigreq(srv, opts):
    """One endless request: *1000000 then $16777216 bulks, streamed as
    fast as the server takes them. The server must refuse it (an error or
    a close) before it holds much more than its query-buffer limit, and
    serve other clients meanwhile."""
    limit = opts.query_limit_mb * MIB
    cap = limit + limit // 4 + 64 * MIB  # stream at most this much
    bound_mb = cap / MIB
    other = Client(srv.port)
    e = Client(srv.port)
    e.sock.settimeout(None)
    rss = RssPeak(srv)
    state = {"sent": 0, "why": None, "reply": None}
    stop = threading.Event()

    def sender():
        arg = b"$16777216\r\n" + b"a" * (16 * MIB) + b"\r\n"
        view = memoryview(arg)
        try:
            e.sock.sendall(b"*1000000\r\n")
            while not stop.is_set() and state["sent"] < cap:
                for at in range(0, len(arg), MIB):
                    e.sock.sendall(view[at:at + MIB])
                    state["sent"] += min(MIB, len(arg) - at)
                    if stop.is_set():
                        return
        except OSError as err:
            state["why"] = state["why"] or "send: %s" % (err.strerror or err)

    def reader():
        try:
            data = e.sock.recv(4096)
            if data:
                state["reply"] = data[:80].decode(errors="replace").strip()
            state["why"] = state["why"] or ("error reply" if data else "closed")
        except OSError as err:
            state["why"] = state["why"] or "recv: %s" % (err.strerror or err)
        stop.set()

    threads = [threading.Thread(target=sender, daemon=True), threading.Thread(target=reader, daemon=True)]
    for t in threads:
        t.start()
    probes = probe_failures = 0
    start = time.monotonic()
    while threads[0].is_alive() and time.monotonic() - start < opts.bigreq_seconds:
        if rss.peak > bound_mb:
            break
        t0 = time.monotonic()
        try:
            probes += 1
            if other.call("PING", timeout=2) != "PONG":
                probe_failures += 1
        except (Hang, Closed):
            probe_failures += 1
            other.close()
            try:
                other = Client(srv.port, timeout=2)
            except (Hang, Closed):
                pass
        time.sleep(max(0.0, 0.1 - (time.monotonic() - t0)))
    refused = state["why"] is not None
    stop.set()
    try:
        e.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    for t in threads:
        t.join(5)
    e.close()
    other.close()
    fresh = served(srv.port, timeout=5, tag="hostile:bigreq:probe")
    peak = rss.stop()
    if refused:
        what = "refused after %.0f MB sent (%s%s)" % (
            state["sent"] / MIB, state["why"], ", " + state["reply"] if state["reply"] else "")
    else:
        what = "NOT refused after %.0f MB sent" % (state["sent"] / MIB)
    text = "%s; RSS peak %+.0f MB (bound +%.0f MB); %d/%d probes answered; fresh client %s" % (
        what, peak, bound_mb, probes - probe_failures, probes, "served" if fresh else "NOT served")
    ok = refused and peak < bound_mb and probe_failures == 0 and fresh
    return result(ok, text)


def row_slowloris(srv, opts):
    """50 clients each send a PING one byte every 100 ms; meanwhile a
    probe client's PINGs and SETs are answered, and each slow client gets
    its PONG once its request is whole."""
    request = resp("PING")
    slow = []
    for _ in range(50):
        try:
            slow.append(Client(srv.port, timeout=3))
        except (Hang, Closed):
            pass
    worst, probe_fail, probes = 0.0, 0, 0
    probe = Client(srv.port)
    for i in range(len(request)):
        for c in slow:
            try:
                c.send(request[i:i + 1])
            except (Hang, Closed):
                pass
        t_end = time.monotonic() + 0.1
        while time.monotonic() < t_end:
            t0 = time.monotonic()
            try:
                probes += 1
                if probe.call("SET", "hostile:slow:%d" % probes, "v", timeout=2) != "OK":
                    probe_fail += 1
            except (Hang, Closed):
                probe_fail += 1
            worst = max(worst, time.monotonic() - t0)
            time.sleep(0.02)
    probe.close()
    pongs = 0
    for c in slow:
        try:
            pongs += c.reply(timeout=3) == "PONG"
        except (Hang, Closed):
            pass
        c.close()
    text = "%d/%d probes answered (worst %.0f ms); %d/50 slow clients got PONG" % (
        probes - probe_fail, probes, worst * 1000, pongs)
    return result(probe_fail == 0 and pongs == 50 and worst < 2.0, text)


def row_halfclose(srv, opts):
    """A pipeline of 2,000 SET/GET over every shard, then shutdown(SHUT_WR):
    every reply still arrives, then the server closes."""
    n = 1000
    c = Client(srv.port)
    batch = []
    for i in range(n):
        batch.append(resp("SET", "hostile:half:%d" % i, "v%d" % i))
        batch.append(resp("GET", "hostile:half:%d" % i))
    c.send(b"".join(batch))
    c.sock.shutdown(socket.SHUT_WR)
    good = 0
    closed = False
    try:
        for i in range(n):
            good += c.reply(5) == "OK" and c.reply(5) == b"v%d" % i
        c.reply(5)
    except Closed:
        closed = True
    except Hang:
        pass
    c.close()
    text = "%d/%d SET+GET answered after SHUT_WR, then %s" % (
        good, n, "closed" if closed else "NOT closed within 5 s")
    return result(good == n and closed, text)


def row_reset(srv, opts):
    """3 rounds of 20 clients that pipeline 2,000 GETs of a 4 KB value over
    every shard and reset the connection (SO_LINGER 0) while the replies
    are owed: the server stays up and a fresh client is served."""
    setup = Client(srv.port)
    for k in range(8):
        setup.call("SET", "hostile:reset:%d" % k, b"r" * 4096)
    setup.close()
    batch = b"".join(resp("GET", "hostile:reset:%d" % (i % 8)) for i in range(2000))
    linger = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # struct linger {1, 0}
    resets = 0
    for _ in range(3):
        clients = []
        for _ in range(20):
            try:
                c = Client(srv.port, timeout=3, rcvbuf=16 << 10)
                c.send(batch)
                clients.append(c)
            except (Hang, Closed):
                pass
        time.sleep(0.05)
        for c in clients:
            try:
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            except OSError:
                pass
            c.close()
            resets += 1
        time.sleep(0.1)
    up = srv.alive()
    fresh = up and served(srv.port, timeout=5, tag="hostile:reset:probe")
    text = "%d resets; server %s; fresh client %s" % (
        resets, "up" if up else "DIED", "served" if fresh else "NOT served")
    return result(up and fresh, text)


# (name, what, server options, function)
ROWS = [
    ("glob", "CONFIG GET with 200 '*' then 'x'; 10 new clients meanwhile", {}, row_glob),
    ("flood", "one client streams pipelined PINGs; PING latency on its worker", {"workers": 1}, row_flood),
    ("fds", "ulimit -n 64, 100 clients, then 50 close and 10 new", {"nofile": 64}, row_fds),
    ("expiry", "one key rewritten 500,000x with SET k v EX 100000", {"workers": 1}, row_expiry),
    ("unread", "50 clients pipeline GET of a 10 KB value, never read", {}, row_unread),
    ("bigreq", "one endless request: 1 M args of 16 MiB", {}, row_bigreq),
    ("slowloris", "50 clients send a PING a byte per 100 ms", {}, row_slowloris),
    ("halfclose", "pipeline then shutdown(SHUT_WR)", {}, row_halfclose),
    ("reset", "resets (SO_LINGER 0) while replies are owed", {}, row_reset),
]


def run_row(kind, binary, row, opts, logdir):
    name, _, server_opts, fn = row
    workers = server_opts.get("workers", opts.kv_workers)
    try:
        srv = Server(kind, binary, logdir, workers=workers, nofile=server_opts.get("nofile"))
    except RuntimeError as e:
        return result(False, "setup: %s" % str(e).splitlines()[0]), True
    started = time.monotonic()
    try:
        res = fn(srv, opts)
    except (Hang, Closed, OSError, ValueError) as e:
        res = result(False, "%s: %s" % (type(e).__name__, e))
    if not srv.alive():
        res = result(False, res["text"] + "; server DIED (exit %s)" % srv.proc.returncode)
    srv.stop()
    res["text"] += " [%.1f s]" % (time.monotonic() - started)
    return res, False


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--flood-client":
        flood_client(int(sys.argv[2]), float(sys.argv[3]))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kv", required=True, help="the kv example binary (release build)")
    ap.add_argument("--redis", help="redis-server, for the comparison column")
    ap.add_argument("--rows", default=",".join(r[0] for r in ROWS),
                    help="comma-separated rows to run (default: all)")
    ap.add_argument("--kv-workers", type=int, default=2,
                    help="kv workers for the rows that do not set their own (default 2)")
    ap.add_argument("--flood-seconds", type=float, default=3.0, help="how long the flood row probes")
    ap.add_argument("--flood-bound-ms", type=int, default=500, help="worst PING latency allowed under the flood")
    ap.add_argument("--expiry-writes", type=int, default=500000, help="rewrites in the expiry row")
    ap.add_argument("--expiry-bound-mb", type=int, default=16, help="RSS growth allowed in the expiry row")
    ap.add_argument("--unread-seconds", type=float, default=8.0,
                    help="how long the unread clients may send before they must be held back")
    ap.add_argument("--unread-bound-mb", type=int, default=200, help="RSS growth allowed in the unread row")
    ap.add_argument("--unread-abort-mb", type=int, default=400,
                    help="stop the unread row once RSS grew this much (spares the machine)")
    ap.add_argument("--query-limit-mb", type=int, default=1024,
                    help="the query-buffer limit the bigreq row expects (Redis's default: 1 GB)")
    ap.add_argument("--bigreq-seconds", type=float, default=30.0, help="time limit of the bigreq row")
    opts = ap.parse_args()
    wanted = opts.rows.split(",")
    unknown = [w for w in wanted if w not in [r[0] for r in ROWS]]
    if unknown:
        ap.error("unknown rows: %s" % ", ".join(unknown))
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    targets = [("kv", opts.kv)] + ([("redis", opts.redis)] if opts.redis else [])
    table = []
    setup_error = False
    with tempfile.TemporaryDirectory(prefix="hostile.") as logdir:
        for row in ROWS:
            if row[0] not in wanted:
                continue
            cells = {}
            for kind, binary in targets:
                res, setup_failed = run_row(kind, binary, row, opts, logdir)
                setup_error |= setup_failed and kind == "kv"
                cells[kind] = res
                print("%-9s %-6s %s  %s" % (row[0], kind, "PASS" if res["ok"] else "FAIL", res["text"]), flush=True)
            table.append((row, cells))
    print()
    header = "| row | hostile input | kv example |" + (" redis-server (informational) |" if opts.redis else "")
    print(header)
    print("|---|---|---|" + ("---|" if opts.redis else ""))
    for row, cells in table:
        line = "| %s | %s | %s %s |" % (row[0], row[1], "PASS" if cells["kv"]["ok"] else "**FAIL**", cells["kv"]["text"])
        if "redis" in cells:
            line += " %s %s |" % ("pass" if cells["redis"]["ok"] else "fail", cells["redis"]["text"])
        print(line)
    failed = [row[0] for row, cells in table if not cells["kv"]["ok"]]
    print()
    if setup_error:
        print("hostile: the kv example could not be started", file=sys.stderr)
        return 2
    if failed:
        print("hostile: kv rows failed: %s" % ", ".join(failed))
        return 1
    print("hostile: every kv row passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
