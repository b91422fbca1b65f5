"""The eviction's record leaves the VM: remote-write into a real Prometheus
(Debian's, started here on loopback with its remote-write receiver), with
each sample at the moment it describes; a receiver that is down during the
eviction gets the record exactly once after the agent restarts; a slow
receiver never moves a hook start or the approval; the optional
Pushgateway (Debian's, on loopback too) holds one group per instance while
the eviction is in hand and loses it at the recover step; and in JSON log
mode each eviction message carries its catalogued MESSAGE_ID."""

import http.server
import json
import os
import re
import shutil
import signal
import socketserver
import subprocess
import threading
import time
import urllib.parse
import urllib.request

from harness import (TIMEOUT, TestFailure, approvals_for, check, free_port, gate_wait, read_state_body,
                     touch, wait_for)
from test_after import rec_hook, recover_dir

VM = "agent-vm0"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PUSHGATEWAY = shutil.which("prometheus-pushgateway") or "/usr/bin/prometheus-pushgateway"

# evidence/journal.h
MESSAGE_IDS = {
    "notice": "01cf9bdfd9c241ec834a25a34773804f",
    "hook_failed": "fb3e2c091742475e9ecdc418288629bb",
    "hook_timeout": "a48d8c6d31494cbe8853e2d86155edd2",
    "overrun": "6dc18641d20e40f4afdad9864afe6706",
    "approved": "7969b69144d54da8900bd99e7d7a7e93",
    "cancelled": "7caf0620ed9d4654b26fd63c0f287c4c",
    "recovered": "d84f798d1c284285867a798ab4afc250",
}


class LoopbackDaemon:
    """One of Debian's Prometheus programs on a loopback port, its output
    in the test's directory, ready when /-/ready says so; stopped at the
    test's cleanup."""

    def __init__(self, ctx, program, package, port, argv):
        if not os.access(program, os.X_OK):
            raise TestFailure("%s is not installed (Debian: apt-get install %s; .ci/run installs it)"
                              % (package, package))
        self.port = port
        self.url = "http://127.0.0.1:%d" % port
        self.log = open(os.path.join(ctx.dir, "%s-%d.log" % (package, port)), "w")
        self.proc = subprocess.Popen([program] + argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        ctx.defer(self.stop)
        wait_for(self._ready, timeout=60, what="%s ready" % package, interval=0.1)

    def _ready(self):
        if self.proc.poll() is not None:
            raise TestFailure("%s exited (%s), see %s" % (self.proc.args[0], self.proc.returncode,
                                                          self.log.name))
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Prometheus(LoopbackDaemon):
    """A real Prometheus with its remote-write receiver, its data in the
    test's directory."""

    def __init__(self, ctx, port=None):
        port = port or free_port()
        self.dir = os.path.join(ctx.dir, "prometheus-%d" % port)
        os.makedirs(self.dir, exist_ok=True)
        cfg = os.path.join(self.dir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n")
        super().__init__(ctx, PROMETHEUS, "prometheus", port,
                         ["--config.file=" + cfg, "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
                          "--web.listen-address=127.0.0.1:%d" % port, "--web.enable-remote-write-receiver",
                          "--log.level=warn"])

    def query(self, q, at=None):
        params = {"query": q, "time": "%.3f" % (at if at is not None else time.time())}
        with urllib.request.urlopen(self.url + "/api/v1/query?" + urllib.parse.urlencode(params),
                                    timeout=10) as r:
            doc = json.loads(r.read().decode())
        check(doc["status"] == "success", "query %r: %r" % (q, doc))
        return doc["data"]["result"]

    def samples(self, name, window="1h"):
        """Every raw sample of the series named name: [(labels, [(t, v)])]."""
        out = []
        for s in self.query("%s[%s]" % (name, window)):
            out.append((s["metric"], [(float(t), float(v)) for t, v in s["values"]]))
        return out


class Pushgateway(LoopbackDaemon):
    """A real Pushgateway, nothing persisted: Debian's build persists to
    /var/lib/prometheus/pushgateway.data unless told otherwise, which
    would hand one test's groups to the next."""

    def __init__(self, ctx):
        port = free_port()
        super().__init__(ctx, PUSHGATEWAY, "prometheus-pushgateway", port,
                         ["--web.listen-address=127.0.0.1:%d" % port, "--persistence.file=",
                          "--log.level=warn"])

    def group(self, job, instance):
        """The series the gateway serves for the group job/instance, from its
        own /metrics: {name: [(labels, value)]}, push_time_seconds and the
        gateway's own metrics left out."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$', line)
            if not m or m.group(1) in ("push_time_seconds", "push_failure_time_seconds"):
                continue
            labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2)))
            if labels.get("job") == job and labels.get("instance") == instance:
                out.setdefault(m.group(1), []).append((labels, float(m.group(3))))
        return out


def record_of(ctx, eid):
    st = ctx.saved_state()
    for r in st["body"]["records"]:
        if r["event"]["id"].lower() == eid.lower():
            return r
    raise TestFailure("no record of %s in state.json: %r" % (eid, [(r["id"], r["event"] and r["event"]["id"]) for r in st["body"]["records"]]))


def queued_batches(ctx):
    """The remote-write batches waiting in state.json."""
    path = os.path.join(ctx.state, "state.json")
    if not os.path.exists(path):
        return 0
    body, _ = read_state_body(path)
    return len((body.get("extra") or {}).get("batches") or [])


def one(series, what):
    check(len(series) == 1, "%s: %d series, want 1: %r" % (what, len(series), series))
    labels, values = series[0]
    check(len(values) == 1, "%s: %d samples, want 1: %r" % (what, len(values), values))
    return labels, values[0][0], values[0][1]


def close(a, b, tol, what):
    check(abs(a - b) <= tol, "%s: %r, want %r (within %r)" % (what, a, b, tol))


def test_remote_write_into_prometheus(ctx):
    prom = Prometheus(ctx)
    sim = ctx.start_sim()
    ctx.hook("10-checkpoint", 'sleep 0.3\necho "lost_work_seconds=42" >> "$SPOT_REPORT"\n'
             'echo "checkpoint_bytes=1000" >> "$SPOT_REPORT"')
    ctx.hook("20-deregister", "echo jobs_requeued=2 > \"$SPOT_REPORT\"\nexit 3")
    a = ctx.start_agent(remote_write_url=prom.url + "/api/v1/write", remote_write_label="team=ml")
    a.wait_log(r"this VM is 'agent-vm0'")
    eid = sim.add_event(type="Preempt", not_before_in=30)
    wait_for(lambda: approvals_for(sim, eid), what="approval")
    a.wait_log(r"event approved")
    rec = record_of(ctx, eid)
    detected = rec["detected_usec"] / 1e6
    nb = rec["not_before_usec"] / 1e6
    h1, h2 = rec["hooks"]
    h1_end = (h1["started_usec"] + h1["duration_usec"]) / 1e6
    h2_end = (h2["started_usec"] + h2["duration_usec"]) / 1e6

    wait_for(lambda: prom.samples("spot_eviction_approval_seconds"), what="the approval's sample",
             interval=0.2)
    labels, t, v = one(prom.samples("spot_eviction_detected"), "detected")
    check(v == 1, "detected = %r" % v)
    close(t, detected, 0.0015, "detected's timestamp")
    for k, want in (("job", "spot-agent"), ("instance", VM), ("provider", "azure"), ("type", "Preempt"),
                    ("source", "Platform"), ("team", "ml")):
        check(labels.get(k) == want, "detected's label %s = %r, want %r (%r)" % (k, labels.get(k), want,
                                                                                 labels))
    check("group" not in labels and not any(eid.lower() in str(x).lower() for x in labels.values()),
          "labels %r" % labels)
    _, t, v = one(prom.samples("spot_eviction_notice_seconds"), "notice")
    close(t, detected, 0.0015, "notice's timestamp")
    close(v, nb - detected, 0.002, "notice seconds")
    _, t, v = one(prom.samples("spot_eviction_first_hook_seconds"), "first hook")
    close(t, h1["started_usec"] / 1e6, 0.0015, "first hook's timestamp")
    close(v, (h1["started_usec"] - rec["detected_usec"]) / 1e6, 0.002, "first hook seconds")

    durations = {s[0]["hook"]: s for s in prom.samples("spot_eviction_hook_duration_seconds")}
    check(set(durations) == {"10-checkpoint", "20-deregister"}, "hooks %r" % durations)
    l1, v1 = durations["10-checkpoint"]
    l2, v2 = durations["20-deregister"]
    check(l1["result"] == "ok" and l2["result"] == "failed", "results %r %r" % (l1, l2))
    close(v1[0][0], h1_end, 0.0015, "hook 1's timestamp")
    close(v1[0][1], h1["duration_usec"] / 1e6, 0.002, "hook 1's duration")
    close(v2[0][0], h2_end, 0.0015, "hook 2's timestamp")

    _, t_chain, v = one(prom.samples("spot_eviction_chain_seconds"), "chain")
    check(t_chain >= h2_end - 0.001 and t_chain < h2_end + 2, "chain end %r after hook end %r" % (t_chain, h2_end))
    close(v, t_chain - detected, 0.002, "chain seconds")
    _, t, v = one(prom.samples("spot_eviction_chain_overrun_seconds"), "overrun")
    check(v == 0 and t == t_chain, "overrun %r at %r" % (v, t))
    _, t, v = one(prom.samples("spot_eviction_hooks_failed"), "hooks failed")
    check(v == 1 and t == t_chain, "hooks failed %r" % v)
    _, t, v = one(prom.samples("spot_eviction_lost_work_seconds"), "lost work")
    check(v == 42 and t == t_chain, "lost work %r" % v)
    _, _, v = one(prom.samples("spot_eviction_checkpoint_bytes"), "checkpoint bytes")
    check(v == 1000, "checkpoint bytes %r" % v)
    _, _, v = one(prom.samples("spot_eviction_jobs_requeued"), "jobs requeued")
    check(v == 2, "jobs requeued %r" % v)
    _, t, v = one(prom.samples("spot_eviction_approval_seconds"), "approval")
    close(t, rec["approval"]["approved_at_usec"] / 1e6, 0.0015, "approval's timestamp")
    close(v, t - t_chain, 0.002, "approval seconds")
    check(not prom.samples("spot_eviction_recovered"), "recovered without a recovery")
    check(not a.log_has(r"remote-write .*(failed|refused)"), "a send failed:\n" + a.output())
    # The queue is empty again: nothing waits for the next start.
    wait_for(lambda: queued_batches(ctx) == 0, what="the queue emptied in state.json")


def test_receiver_down_then_record_once_after_restart(ctx):
    port = free_port()
    sim = ctx.start_sim()
    ctx.recording_hook("10-hook")
    url = "http://127.0.0.1:%d/api/v1/write" % port
    a = ctx.start_agent(remote_write_url=url)
    a.wait_log(r"this VM is 'agent-vm0'")
    eid = sim.add_event(type="Preempt", not_before_in=30)
    wait_for(lambda: approvals_for(sim, eid), what="approval")
    a.wait_log(r"remote-write to '%s' failed \(.*\), retrying in" % url)
    a.wait_log(r"event approved")
    wait_for(lambda: queued_batches(ctx) == 3, what="three batches queued (detection, chain, approval)")
    a.signal(signal.SIGTERM)
    check(a.wait_exit() == 0, "agent exit")
    detected = record_of(ctx, eid)["detected_usec"] / 1e6

    prom = Prometheus(ctx, port)
    b = ctx.start_agent(remote_write_url=url)
    b.wait_log(r"3 remote-write batches left by the previous run")
    wait_for(lambda: prom.samples("spot_eviction_approval_seconds"), what="the queued record", interval=0.2)
    wait_for(lambda: queued_batches(ctx) == 0, what="the queue emptied in state.json")
    res = prom.query("count_over_time(spot_eviction_detected[1h])")
    check(len(res) == 1 and res[0]["value"][1] == "1", "count_over_time = %r" % res)
    _, t, _ = one(prom.samples("spot_eviction_detected"), "detected")
    close(t, detected, 0.0015, "detected's timestamp after the restart")
    check(len(ctx.recorded()) == 2, "hooks ran again: %r" % ctx.recorded())
    # A third start sends nothing more.
    b.signal(signal.SIGTERM)
    check(b.wait_exit() == 0, "second agent exit")
    c = ctx.start_agent(remote_write_url=url)
    n = len(sim.polls())
    wait_for(lambda: len(sim.polls()) >= n + 5, what="more polls")
    check(not c.log_has(r"left by the previous run"), "a queue came back")
    res = prom.query("count_over_time(spot_eviction_detected[1h])")
    check(res[0]["value"][1] == "1", "count_over_time after a third start = %r" % res)


class SlowReceiver:
    """A receiver that waits before it answers (204) each request."""

    def __init__(self, ctx, delay):
        outer = self
        self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(n)
                outer.requests.append((time.time(), dict(self.headers)))
                time.sleep(delay)
                try:
                    self.send_response(204)
                    self.end_headers()
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/api/v1/write" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        ctx.defer(self.server.shutdown)


def timings(ctx, sim, a, hook_out):
    """Detection -> first hook start and last hook end -> approval, in s."""
    eid = sim.add_event(type="Preempt", not_before_in=30)
    wait_for(lambda: approvals_for(sim, eid), what="approval")
    a.wait_log(r"event approved")
    rec = record_of(ctx, eid)
    stamps = [int(l) / 1e9 for l in open(hook_out).read().split()]
    approval = approvals_for(sim, eid)[0]["t"]
    last_end = (rec["hooks"][-1]["started_usec"] + rec["hooks"][-1]["duration_usec"]) / 1e6
    return stamps[0] - rec["detected_usec"] / 1e6, approval - last_end


def test_slow_receiver_moves_no_hook_and_no_approval(ctx):
    slow = SlowReceiver(ctx, 5)
    sim = ctx.start_sim()
    stamps = os.path.join(ctx.out, "stamps")
    ctx.hook("10-first", "date +%%s%%N >> %s" % stamps)
    ctx.hook("20-second", "sleep 0.2")
    ctx.hook("30-third", "true")
    results = {}
    for mode in ("plain", "slow"):
        if os.path.exists(stamps):
            os.unlink(stamps)
        over = {"remote_write_url": slow.url} if mode == "slow" else {}
        a = ctx.start_agent(**over)
        a.wait_log(r"this VM is 'agent-vm0'")
        results[mode] = timings(ctx, sim, a, stamps)
        a.signal(signal.SIGTERM)
        a.wait_exit()
        # Each mode is a machine's first eviction: with the first one's
        # record or its event kept, the second notice would join it.
        shutil.rmtree(ctx.state)
        sim.call("POST", "/__sim/reset")
    check(len(slow.requests) >= 1, "the slow receiver got no request")
    check(slow.requests[0][1].get("Content-Encoding") == "snappy" and
          slow.requests[0][1].get("X-Prometheus-Remote-Write-Version") == "0.1.0" and
          slow.requests[0][1].get("Content-Type") == "application/x-protobuf",
          "headers %r" % slow.requests[0][1])
    (first_plain, appr_plain), (first_slow, appr_slow) = results["plain"], results["slow"]
    print("detection to first hook: %.1f ms plain, %.1f ms with a slow receiver; "
          "last hook end to approval: %.1f ms plain, %.1f ms slow"
          % (first_plain * 1e3, first_slow * 1e3, appr_plain * 1e3, appr_slow * 1e3))
    # A send that held up the loop would cost at least its 2 s timeout (the
    # receiver answers after 5 s); 1 s leaves room for a loaded machine.
    check(first_slow < first_plain + 1.0, "first hook: %.3f s with a slow receiver, %.3f s without"
          % (first_slow, first_plain))
    check(appr_slow < appr_plain + 1.0, "approval: %.3f s with a slow receiver, %.3f s without"
          % (appr_slow, appr_plain))


def test_pushgateway_group_while_in_hand_deleted_at_recover(ctx):
    """push-url: the group job=spot-agent/instance=<VM> appears at
    detection, is replaced with the chain's and the approval's values, and
    is deleted when the recover step starts (a Freeze that ended), so the
    gateway keeps nothing of a VM that lives on. No event id is a label."""
    gw = Pushgateway(ctx)
    sim = ctx.start_sim()
    gate, rgate = os.path.join(ctx.out, "gate"), os.path.join(ctx.out, "rgate")
    rd = recover_dir(ctx)
    ctx.hook("10-checkpoint", gate_wait(gate) + '\necho "lost_work_seconds=7" >> "$SPOT_REPORT"')
    rec_hook(ctx, "10-back", gate_wait(rgate), directory=rd)
    a = ctx.start_agent(events="+Freeze", push_url=gw.url)
    a.wait_log(r"this VM is '%s'" % VM)
    eid = sim.add_event(type="Freeze", not_before_in=30)

    # Detection: pushed while the first hook still runs.
    wait_for(lambda: "spot_eviction_detected" in gw.group("spot-agent", VM), what="the detection's group",
             interval=0.1)
    g = gw.group("spot-agent", VM)
    check("spot_eviction_approval_seconds" not in g, "approval pushed before the chain ran: %r" % g)
    (labels, v), = g["spot_eviction_detected"]
    check(v == 1 and labels.get("type") == "Freeze" and labels.get("provider") == "azure",
          "detected %r %r" % (labels, v))

    # The chain and the approval replace the group.
    touch(gate)
    wait_for(lambda: approvals_for(sim, eid), what="approval")
    wait_for(lambda: "spot_eviction_approval_seconds" in gw.group("spot-agent", VM),
             what="the approval's group", interval=0.1)
    g = gw.group("spot-agent", VM)
    for name in ("spot_eviction_detected", "spot_eviction_notice_seconds", "spot_eviction_first_hook_seconds",
                 "spot_eviction_hook_duration_seconds", "spot_eviction_chain_seconds",
                 "spot_eviction_hooks_failed"):
        check(name in g, "%s missing from the group: %r" % (name, sorted(g)))
    (_, lost), = g["spot_eviction_lost_work_seconds"]
    check(lost == 7, "lost work %r" % lost)
    (hl, _), = g["spot_eviction_hook_duration_seconds"]
    check(hl.get("hook") == "10-checkpoint" and hl.get("result") == "ok", "hook labels %r" % hl)
    for name, series in g.items():
        for labels, _ in series:
            check(not any(eid.lower() in str(x).lower() for x in labels.values()),
                  "%s carries the event id: %r" % (name, labels))

    # The Freeze is over: the recover step deletes the group, once.
    sim.remove_event(eid)
    a.wait_log(r"recovered after Freeze")
    wait_for(lambda: not gw.group("spot-agent", VM), what="the group deleted", interval=0.1)
    touch(rgate)
    a.wait_log(r"recover chain done: 1 ok")
    check(not gw.group("spot-agent", VM), "the group came back: %r" % gw.group("spot-agent", VM))
    check(not a.log_has(r"pushgateway.*(failed|refused)"), "a push failed:\n" + a.output())


def json_records(a):
    out = []
    for line in a.output().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def test_journal_records_carry_message_ids(ctx):
    sim = ctx.start_sim()
    ctx.hook("10-fail", "exit 3")
    ctx.hook("20-hang", "trap '' TERM\nsleep 100")
    a = ctx.start_agent(log_format="json")
    a.wait_log(r'"message":"imds: this VM is')
    eid = sim.add_event(type="Preempt", not_before_in=6)
    a.wait_log(r'"message":"event approved')
    # A second event, once the first is over, called off while its hook runs.
    a.wait_log(r'"message":"readiness: /readyz answers 200 again')
    ctx.hook("10-fail", "sleep 2")
    ctx.hook("20-hang", "true")
    # A cancelled eviction recovers once its NotBefore has passed.
    eid2 = sim.add_event(type="Preempt", not_before_in=15)
    a.wait_log(r'"event_id":"%s","hook":"10-fail","message":"hook .10-fail. started' % eid2)
    sim.remove_event(eid2)
    a.wait_log(r'"event_id":"%s",.*"message_id":"%s"' % (eid2, MESSAGE_IDS["recovered"]), timeout=TIMEOUT + 15)
    recs = json_records(a)

    def find(mid, event, hook=None):
        got = [r for r in recs if r.get("message_id") == mid and r.get("event_id") == event
               and (hook is None or r.get("hook") == hook)]
        check(len(got) == 1, "%d records with MESSAGE_ID %s for %s: %r" % (len(got), mid, event, got))
        r = got[0]
        check(r.get("spot_event_type") == "Preempt" and r.get("spot_provider") == "azure"
              and r.get("spot_deadline_usec", "").isdigit(), "fields of %r" % r)
        return r

    r = find(MESSAGE_IDS["notice"], eid)
    check(r["message"].startswith("eviction notice: Preempt") and r.get("spot_not_before_usec", "").isdigit(),
          "notice %r" % r)
    r = find(MESSAGE_IDS["hook_failed"], eid, "10-fail")
    check(r.get("spot_exit_status") == "3" and r.get("spot_duration_usec", "").isdigit(), "failed %r" % r)
    r = find(MESSAGE_IDS["hook_timeout"], eid, "20-hang")
    check(r.get("spot_budget_usec", "").isdigit(), "timeout %r" % r)
    r = find(MESSAGE_IDS["overrun"], eid)
    check(r.get("spot_overrun_usec", "").isdigit(), "overrun %r" % r)
    find(MESSAGE_IDS["approved"], eid)
    find(MESSAGE_IDS["notice"], eid2)
    find(MESSAGE_IDS["cancelled"], eid2)
    r = find(MESSAGE_IDS["recovered"], eid2)
    check(r.get("spot_recover_reason") == "cancelled", "recovered %r" % r)
    # Every id of evidence/journal.h but the OS shutdown's was seen, and
    # other records carry none.
    seen = {r["message_id"] for r in recs if "message_id" in r}
    check(seen == set(MESSAGE_IDS.values()), "ids seen %r" % seen)
