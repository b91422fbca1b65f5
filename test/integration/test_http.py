"""The local HTTP endpoint against the real binary: routes, methods, limits,
readiness during an eviction, health during an IMDS outage, metrics that
promtool accepts, and a flood of idle connections."""

import http.client
import json
import os
import shutil
import socket
import subprocess
import time

from harness import check, status_document, wait_for


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


def approvals_for(sim, eid):
    return [a for a in sim.approvals() if eid in a["event_ids"]]


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


def test_idle_connection_flood(ctx):
    sim = ctx.start_sim()
    ctx.recording_hook("10-hook")
    a = ctx.start_agent()
    a.wait_log(r"this VM is")
    socks = []
    try:
        for _ in range(300):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", ctx.http_port))
            socks.append(s)
        t0 = time.monotonic()
        eid = sim.add_event(type="Preempt", not_before_in=30)
        wait_for(lambda: approvals_for(sim, eid), what="approval under a connection flood")
        took = time.monotonic() - t0
        check(took < 10, "chain took %.1f s under the flood" % took)
        st = wait_for(lambda: request(ctx, "GET", "/healthz")[0], timeout=30, what="healthz under flood")
        check(st == 200, "healthz %d" % st)
    finally:
        for s in socks:
            s.close()
    check(a.proc.poll() is None, "agent died")
