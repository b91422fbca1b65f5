"""The local HTTP endpoint against the real binary: routes, methods, limits,
exact paths, the public face on other addresses and its reload, readiness
during an eviction, health during an IMDS outage, metrics that promtool
accepts, a flood of idle and slow connections, and a listen address that
cannot be bound."""

import errno
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import threading
import time

import harness
from harness import AGENT, TOP, approvals_for, check, status_document, wait_for


def request(ctx, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", ctx.http_port, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    if method == "GET" and path == "/v1/status" and r.status == 200:
        status_document(data.decode())   # strict UTF-8 too
    return r.status, hdrs, data.decode(errors="replace")


def test_routes_and_methods(ctx):
    ctx.start_sim()
    a = ctx.start_agent()
    a.wait_log(r"this VM is")
    wait_for(lambda: request(ctx, "GET", "/healthz")[0] == 200, what="healthz 200")
    st, h, body = request(ctx, "GET", "/healthz")
    check(body == "ok\n", "healthz body %r" % body)
    st, h, body = request(ctx, "GET", "/readyz")
    check(st == 200 and body == "ready\n", "readyz %d %r" % (st, body))
    st, h, body = request(ctx, "GET", "/v1/status")
    check(st == 200 and h["content-type"].startswith("application/json"), "status type")
    doc = json.loads(body)
    for key in ("version", "provider", "vm_name", "uptime_s", "state", "poll", "event", "history"):
        check(key in doc, "status lacks %s" % key)
    check(doc["vm_name"] == "agent-vm0" and doc["state"] == "idle", "status %r" % doc)
    check(doc["poll"]["ok"] >= 1 and doc["poll"]["incarnation"] is not None, "poll stats")
    st, h, body = request(ctx, "GET", "/metrics")
    check(st == 200 and "version=0.0.4" in h["content-type"], "metrics type")
    check("spot_agent_imds_requests_total{result=\"ok\"}" in body, "metrics content")
    for path in ("/healthz", "/readyz", "/v1/status", "/metrics"):
        st, h, body = request(ctx, "HEAD", path)
        check(st == 200 and body == "", "HEAD %s: %d %r" % (path, st, body))
    st, h, body = request(ctx, "GET", "/nope")
    check(st == 404, "unknown path %d" % st)
    for m in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        st, h, body = request(ctx, m, "/healthz")
        check(st == 405 and "GET" in h.get("allow", ""), "%s -> %d" % (m, st))
    st, h, body = request(ctx, "POST", "/v1/status", body=b"x" * 100000,
                          headers={"Content-Type": "application/octet-stream"})
    check(st in (405, 413), "POST with a body -> %d" % st)
    st, h, body = request(ctx, "GET", "/healthz?" + "a" * 20000)
    check(st in (400, 414, 431), "20 KB URL -> %d" % st)
    st, h, body = request(ctx, "GET", "/healthz")
    check(st == 200, "healthz after abuse %d" % st)
    check(a.proc.poll() is None, "agent died")


def test_readyz_503_inside_first_hook(ctx):
    sim = ctx.start_sim()
    seen = os.path.join(ctx.out, "seen")
    a_args = ctx.base_args()
    port = ctx.http_port
    ctx.hook("10-probe", "curl -s -o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/readyz > %s"
             % (port, seen))
    a = ctx.start_agent(args=a_args)
    a.wait_log(r"this VM is")
    check(request(ctx, "GET", "/readyz")[0] == 200, "ready before")
    eid = sim.add_event(type="Preempt", not_before_in=30)
    wait_for(lambda: approvals_for(sim, eid), what="approval")
    check(open(seen).read() == "503", "hook saw readyz %r" % open(seen).read())
    st, h, body = request(ctx, "GET", "/readyz")
    check(st == 503 and eid in body, "readyz after %d %r" % (st, body))
    doc = json.loads(request(ctx, "GET", "/v1/status")[2])
    check(doc["state"] == "done" and doc["event"]["id"] == eid, "status %r" % doc["state"])
    # The event leaves the document: ready again.
    sim.remove_event(eid)
    wait_for(lambda: request(ctx, "GET", "/readyz")[0] == 200, what="ready after the event left")


def test_healthz_follows_imds_outage(ctx):
    sim = ctx.start_sim()
    a = ctx.start_agent()
    a.wait_log(r"this VM is")
    wait_for(lambda: request(ctx, "GET", "/healthz")[0] == 200, what="healthy")
    sim.fault(path="/metadata/scheduledevents", kind="status", status=500, count=-1)
    st, h, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(request(ctx, "GET", "/healthz")),
                           timeout=90, what="healthz 503", interval=0.5)
    check("\n" == body[-1] and body.count("\n") == 1 and "500" in body, "reason %r" % body)
    sim.clear_faults()
    wait_for(lambda: request(ctx, "GET", "/healthz")[0] == 200, timeout=30, what="healthz recovers")
    metrics = request(ctx, "GET", "/metrics")[2]
    check('spot_agent_imds_requests_total{result="http_error"}' in metrics, "error counter")


def test_metrics_pass_promtool(ctx):
    promtool = shutil.which("promtool")
    sim = ctx.start_sim()
    ctx.hook("10-ok", "true")
    ctx.hook("20-fail", "exit 1")
    a = ctx.start_agent()
    a.wait_log(r"this VM is")
    eid = sim.add_event(type="Preempt", not_before_in=30)
    wait_for(lambda: approvals_for(sim, eid), what="approval")
    body = request(ctx, "GET", "/metrics")[2]
    for name in ('spot_agent_hook_runs_total{hook="10-ok",result="ok"} 1',
                 'spot_agent_hook_runs_total{hook="20-fail",result="failed"} 1',
                 'spot_agent_events_total{type="Preempt"} 1',
                 'spot_agent_approvals_total{result="ok"} 1',
                 'spot_agent_eviction_pending 1'):
        check(name in body, "metrics lack %r" % name)
    check(eid not in body, "event id in metrics")
    check(promtool, "promtool not installed (Debian package prometheus)")
    r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True)
    check(r.returncode == 0, "promtool: %s %s" % (r.stdout, r.stderr))


def test_exact_paths(ctx):
    ctx.start_sim()
    a = ctx.start_agent()
    a.wait_log(r"this VM is")
    for path in ("/healthz%00.json", "/healthz%00", "/healthz/", "/healthz.json", "/%68ealthz",
                 "/v1/status/", "/metrics%00"):
        st, h, body = request(ctx, "GET", path)
        check(st == 404 and body == "not found\n", "%s -> %d %r" % (path, st, body))
    for path in ("/healthz?verbose=1", "/healthz?a=%00", "/healthz?"):
        st, h, body = request(ctx, "GET", path)
        check(st == 200 and body == "ok\n", "%s -> %d %r" % (path, st, body))


def write_conf(ctx, text):
    return ctx.config_file(text, "http.conf")


# An address of the agent's own network namespace that is not loopback:
# on lo there, but not in 127.0.0.0/8 (which is loopback wherever it is).
NETNS_ADDR = "192.0.2.10"
NETNS_PREFIX = ["unshare", "--net", "--", "sh", "-c",
                'ip link set lo up && ip addr add %s/32 dev lo && exec "$0" "$@"' % NETNS_ADDR]


def face_in_netns(pid, port, addrs, paths):
    """{addr: {path: status}} from inside the network namespace of pid."""
    code = """
import json, sys, urllib.error, urllib.request
out = {}
for a in sys.argv[2].split(","):
    out[a] = {}
    for p in sys.argv[3].split(","):
        try:
            with urllib.request.urlopen("http://%s:%s%s" % (a, sys.argv[1], p), timeout=10) as r:
                out[a][p] = r.status
        except urllib.error.HTTPError as e:
            out[a][p] = e.code
print(json.dumps(out))
"""
    r = subprocess.run(["nsenter", "--net=/proc/%d/ns/net" % pid, "--", harness.PYTHON, "-c", code,
                        str(port), ",".join(addrs), ",".join(paths)],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "nsenter: %s" % r.stderr)
    return json.loads(r.stdout)


def test_public_face_follows_the_connection(ctx):
    """On 0.0.0.0 the face is chosen per connection, from the address it
    arrived on: 127.0.0.1 gets everything; another local address (here one
    of the agent's own network namespace) only the probes, plus what
    expose-metrics and expose-status open, which a reload applies both
    ways. The client's address plays no part."""
    if subprocess.run(NETNS_PREFIX + ["true"], capture_output=True).returncode != 0:
        raise harness.TestFailure("cannot make a network namespace (unshare --net, ip): needs root")
    ctx.http_port = harness.free_port()
    conf = write_conf(ctx, "# nothing exposed\n")
    a = ctx.start_agent(args=ctx.base_args(config=conf, listen="0.0.0.0:%d" % ctx.http_port,
                                           imds_url="http://127.0.0.1:9"), prefix=NETNS_PREFIX)
    a.wait_log(r"http: 0\.0\.0\.0:%d is not a loopback address: a connection that arrives on a loopback "
               r"address gets every path, any other /healthz, /readyz; other paths answer 404" % ctx.http_port)
    paths = ("/healthz", "/readyz", "/metrics", "/v1/status", "/nope")
    addrs = ("127.0.0.1", NETNS_ADDR)

    def face():
        return face_in_netns(a.proc.pid, ctx.http_port, addrs, paths)

    full = {"/healthz": 200, "/readyz": 200, "/metrics": 200, "/v1/status": 200, "/nope": 404}
    closed = {"/healthz": 200, "/readyz": 200, "/metrics": 404, "/v1/status": 404, "/nope": 404}
    st = face()
    check(st == {"127.0.0.1": full, NETNS_ADDR: closed}, "nothing exposed %r" % st)

    for text, metrics, status in (("expose-metrics = yes\n", 200, 404),
                                  ("expose-metrics = no\nexpose-status = yes\n", 404, 200),
                                  ("expose-metrics = yes\nexpose-status = yes\n", 200, 200),
                                  ("expose-status = no\n", 404, 404)):
        n = len(a.lines)
        write_conf(ctx, text)
        a.signal(signal.SIGHUP)
        a.wait_log(r"config reloaded", start=n)
        st = face()
        want = dict(closed, **{"/metrics": metrics, "/v1/status": status})
        check(st == {"127.0.0.1": full, NETNS_ADDR: want}, "%r: %r" % (text, st))
    check(a.proc.poll() is None, "agent died")


def run_cli(args):
    return subprocess.run([AGENT] + args, capture_output=True, text=True, timeout=60)


def test_check_warns_about_a_public_listen(ctx):
    free_port = harness.free_port
    ctx.hook("10-ok", "true")
    base = ["check", "-c", ctx.config_file(""), "--hooks-dir", ctx.hooks, "--hooks-lib-dir", "none"]
    warning = re.compile(r"^(?:\S+Z )?spot-agent: warning: listen '([^']*)' is not a loopback address: "
                         r"a connection that arrives on a loopback address gets every path, any other "
                         r"only /healthz, /readyz(.*); other paths answer 404$", re.M)
    # check also binds the address: free ports on the wildcards.
    for listen, extra, shown in (("0.0.0.0:%d" % free_port(), [], ""),
                                 ("[::]:%d" % free_port(), ["--expose-metrics"], ", /metrics"),
                                 ("0.0.0.0:%d" % free_port(), ["--expose-metrics", "--expose-status"],
                                  ", /metrics, /v1/status")):
        r = run_cli(base + ["--listen", listen] + extra)
        check(r.returncode == 0, "check --listen %s: exit %d %s" % (listen, r.returncode, r.stderr))
        m = warning.findall(r.stderr)
        check(m == [(listen, shown)], "warning for %s: %r" % (listen, r.stderr))
        check("listen = %s\n" % listen in r.stdout, "effective listen %s" % listen)
    for listen in ("127.0.0.1:%d" % free_port(), "127.9.9.9:%d" % free_port(), "[::1]:%d" % free_port(), "none"):
        r = run_cli(base + ["--listen", listen])
        check(r.returncode == 0 and not warning.search(r.stderr),
              "check --listen %s: exit %d %r" % (listen, r.returncode, r.stderr))
        check("listen = %s\n" % listen in r.stdout, "effective listen %s" % listen)
    r = run_cli(base)
    check("expose-metrics = no\n" in r.stdout and "expose-status = no\n" in r.stdout, r.stdout)
    for bad in ("[::1:9470", "::1:9470", "[::1]"):
        r = run_cli(base + ["--listen", bad])
        check(r.returncode == 2 and r.stderr.count("\n") == 1, "bad %s: %r" % (bad, r.stderr))


def test_listen_forms_documented_and_served(ctx):
    """[IPV6]:PORT and ADDR:PORT: in --help and the man pages as such, and
    the daemon serves on both."""
    r = run_cli(["--help"])
    help_text = " ".join(r.stdout.split())
    check("ADDR:PORT or [IPV6]:PORT" in help_text, "--help: %r" % help_text)
    for opt in ("--expose-metrics", "--expose-status"):
        check(opt in r.stdout, "--help lacks %s" % opt)
    if shutil.which("mandoc"):
        for page in ("spot-agent.8", "spot-agent.conf.5"):
            text = subprocess.run(["mandoc", "-Tascii", os.path.join(TOP, "man", page)],
                                  capture_output=True, text=True).stdout
            text = re.sub(r".\x08", "", text)
            check("[ipv6]:port" in text and "[ipv6:port]" not in text, "%s listen form" % page)
            check("expose-metrics" in text and "expose-status" in text, "%s lacks expose-*" % page)
    ctx.start_sim()
    a = ctx.start_agent()
    a.wait_log(r"this VM is")
    check(request(ctx, "GET", "/healthz")[0] == 200, "ADDR:PORT")
    a.stop()
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
    except OSError:
        return  # no IPv6 loopback here
    port = harness.free_port()
    b = ctx.start_agent(args=ctx.base_args(listen="[::1]:%d" % port))
    b.wait_log(r"this VM is")
    c = http.client.HTTPConnection("::1", port, timeout=10)
    c.request("GET", "/v1/status")
    r6 = c.getresponse()
    check(r6.status == 200 and json.loads(r6.read())["state"] == "idle", "[::1] is loopback: status")
    c.close()
    check(not b.log_has(r"is not a loopback address"), "[::1] taken for public")


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    check(soft == resource.RLIM_INFINITY or soft >= need,
          "the test needs %d descriptors, the hard limit is %d" % (need, hard))


class Slowloris:
    """Connections that send a request head one byte at a time, a byte every
    300 ms, until the server ends them."""

    def __init__(self, port, n):
        self.socks = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            self.socks.append(s)
        self.ended = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        t0 = time.monotonic()
        while not self.stop.wait(0.3):
            for i, s in enumerate(self.socks):
                with self.lock:
                    if i in self.ended:
                        continue
                try:
                    s.sendall(b"a")
                    s.setblocking(False)
                    try:
                        gone = s.recv(1) == b""
                    except BlockingIOError:
                        gone = False
                    s.setblocking(True)
                except OSError:
                    gone = True
                if gone:
                    with self.lock:
                        self.ended[i] = time.monotonic() - t0

    def all_ended(self):
        with self.lock:
            return len(self.ended) == len(self.socks)

    def close(self):
        self.stop.set()
        self.thread.join(5)
        for s in self.socks:
            s.close()


def test_idle_connection_flood(ctx):
    """1000 idle and 20 slow connections from this host: the probes are
    answered, the hook chain keeps its pace, the slow ones are ended by the
    request deadline although they never go idle."""
    raise_nofile(1200)
    sim = ctx.start_sim()
    ctx.recording_hook("10-hook")
    a = ctx.start_agent()
    a.wait_log(r"this VM is")
    socks = []
    slow = None
    try:
        for _ in range(1000):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", ctx.http_port))
            socks.append(s)
        slow = Slowloris(ctx.http_port, 20)
        for path, body in (("/healthz", "ok\n"), ("/readyz", "ready\n")):
            st, h, got = request(ctx, "GET", path)
            check(st == 200 and got == body, "%s under the flood: %d %r" % (path, st, got))
        t0 = time.monotonic()
        eid = sim.add_event(type="Preempt", not_before_in=30)
        wait_for(lambda: approvals_for(sim, eid), what="approval under a connection flood")
        took = time.monotonic() - t0
        check(took < 10, "chain took %.1f s under the flood" % took)
        st, h, got = request(ctx, "GET", "/readyz")
        check(st == 503 and eid in got, "readyz during the eviction under the flood: %d %r" % (st, got))
        check(request(ctx, "GET", "/healthz")[0] == 200, "healthz during the eviction")
        wait_for(slow.all_ended, timeout=40, what="the request deadline to end the slow connections",
                 interval=0.2)
    finally:
        if slow:
            slow.close()
        for s in socks:
            s.close()
    check(a.proc.poll() is None, "agent died")


def expect_bind_refused(ctx, listen, name, wrap=()):
    r = subprocess.run(list(wrap) + [AGENT] + ctx.base_args(listen=listen), capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    out = r.stdout + r.stderr
    check(r.returncode == 2, "listen %s: exit %s, want 2:\n%s" % (listen, r.returncode, out))
    lines = [l for l in out.splitlines() if "cannot listen" in l]
    check(len(lines) == 1 and ("'%s'" % listen) in lines[0] and "(%s)" % name in lines[0],
          "listen %s: %r" % (listen, lines))
    check(" started" not in out, "started anyway:\n" + out)


def test_unbindable_listen_exits_2(ctx):
    ctx.start_sim()
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        expect_bind_refused(ctx, "127.0.0.1:%d" % busy.getsockname()[1], "EADDRINUSE")
    finally:
        busy.close()
    # An address of no interface here (TEST-NET-2), if the test's own bind
    # agrees.
    probe = socket.socket()
    try:
        probe.bind(("198.51.100.7", 0))
        foreign = False
    except OSError as e:
        foreign = e.errno == errno.EADDRNOTAVAIL
    probe.close()
    if foreign:
        expect_bind_refused(ctx, "198.51.100.7:9470", "EADDRNOTAVAIL")
    # A privileged port without the capability to bind it.
    if os.geteuid() != 0:
        expect_bind_refused(ctx, "127.0.0.1:1", "EACCES")
    elif shutil.which("setpriv"):
        expect_bind_refused(ctx, "127.0.0.1:1", "EACCES",
                            wrap=(shutil.which("setpriv"), "--inh-caps=-net_bind_service",
                                  "--bounding-set=-net_bind_service"))


def test_a_second_content_length_is_a_body_too(ctx):
    """'Content-Length: 0' and then 'Content-Length: 4' announce a body:
    refused (413) like any request body, not answered as /healthz."""
    ctx.start_sim()
    a = ctx.start_agent()
    a.wait_log(r"this VM is")
    for lengths in (("0", "4"), ("4", "0"), ("0", "0")):
        s = socket.create_connection(("127.0.0.1", ctx.http_port), timeout=10)
        try:
            head = "GET /healthz HTTP/1.1\r\nHost: x\r\n" + "".join(
                "Content-Length: %s\r\n" % n for n in lengths) + "\r\n"
            s.sendall(head.encode() + b"x" * max(int(n) for n in lengths))
            status = s.recv(64).split(b"\r\n")[0]
        finally:
            s.close()
        want = b" 413 " if "4" in lengths else b" 200 "
        check(want in status + b" ", "Content-Length %s: %r" % (" then ".join(lengths), status))


def metric_value(text, series):
    m = re.search(r"^%s (\S+)$" % re.escape(series), text, re.M)
    return m.group(1) if m else None


def test_refused_reload_is_visible_until_a_good_one(ctx):
    """A reload refused for a broken file keeps the agent running on the old
    config and says so: /v1/status config.reload_error (the first error
    line), spot_agent_config_reload_failed 1, /healthz still 200 with the
    reason in its text; a good reload clears all three."""
    ctx.start_sim()
    conf = ctx.config_file("poll-interval = 200\n", "live.conf")
    a = ctx.start_agent(args=ctx.base_args(config=conf, poll_interval=None))
    a.wait_log(r"this VM is")
    doc = json.loads(request(ctx, "GET", "/v1/status")[2])
    check(doc["config"] == {"reload_error": None}, "config at start %r" % doc["config"])
    check(metric_value(request(ctx, "GET", "/metrics")[2], "spot_agent_config_reload_failed") == "0",
          "gauge at start")

    with open(conf, "w") as f:
        f.write("poll-interval = 5\nbogus-key = 1\n")
    n = len(a.lines)
    a.signal(signal.SIGHUP)
    a.wait_log(r"reload refused", start=n)
    doc = json.loads(request(ctx, "GET", "/v1/status")[2])
    want = ("%s:1: poll-interval: value '5' is below the minimum 200 (Azure IMDS allows about 5 "
            "requests per second) (and 1 more error)" % conf)
    check(doc["config"]["reload_error"] == want, "reload_error %r" % doc["config"])
    check(metric_value(request(ctx, "GET", "/metrics")[2], "spot_agent_config_reload_failed") == "1",
          "gauge after the refusal")
    st, h, body = request(ctx, "GET", "/healthz")
    check(st == 200 and body == "ok, but the last config reload was refused: %s\n" % want,
          "healthz %d %r" % (st, body))
    check(a.proc.poll() is None, "the agent died")

    with open(conf, "w") as f:
        f.write("poll-interval = 300\n")
    n = len(a.lines)
    a.signal(signal.SIGHUP)
    a.wait_log(r"config reloaded", start=n)
    doc = json.loads(request(ctx, "GET", "/v1/status")[2])
    check(doc["config"] == {"reload_error": None}, "config after a good reload %r" % doc["config"])
    check(metric_value(request(ctx, "GET", "/metrics")[2], "spot_agent_config_reload_failed") == "0",
          "gauge after a good reload")
    check(request(ctx, "GET", "/healthz")[2] == "ok\n", "healthz after a good reload")


def test_events_not_in_events_are_counted_and_listed(ctx):
    """An event of a type left out of 'events' runs no hook, but is counted
    once (spot_agent_events_ignored_total{type}) and listed with its first
    sighting in /v1/status ignored_events, newest first."""
    sim = ctx.start_sim()
    ctx.recording_hook("10-hook")
    a = ctx.start_agent(events="Preempt,Terminate")
    a.wait_log(r"this VM is")
    t0 = time.time()
    first = sim.add_event(type="Reboot", not_before_in=120)
    a.wait_log(r"Reboot event for this VM is not in 'events', ignoring")
    second = sim.add_event(type="Redeploy", not_before_in=120)
    a.wait_log(r"Redeploy event for this VM is not in 'events', ignoring")
    n = len(sim.polls())
    wait_for(lambda: len(sim.polls()) >= n + 3, what="more polls")
    doc = json.loads(request(ctx, "GET", "/v1/status")[2])
    got = [(e["id"].lower(), e["type"]) for e in doc["ignored_events"]]
    check(got == [(second.lower(), "Redeploy"), (first.lower(), "Reboot")], "ignored_events %r" % got)
    seen = doc["ignored_events"][1]["first_seen_usec"] / 1e6
    check(t0 - 1 <= seen <= time.time() + 1, "first_seen %r" % doc["ignored_events"][1])
    text = request(ctx, "GET", "/metrics")[2]
    check(metric_value(text, 'spot_agent_events_ignored_total{type="Reboot"}') == "1", "Reboot counted")
    check(metric_value(text, 'spot_agent_events_ignored_total{type="Redeploy"}') == "1", "Redeploy counted")
    check(metric_value(text, 'spot_agent_events_ignored_total{type="Preempt"}') == "0", "Preempt")
    check(ctx.recorded() == [], "a hook ran for an ignored event: %r" % ctx.recorded())
    check(doc["state"] == "idle", "state %r" % doc["state"])
