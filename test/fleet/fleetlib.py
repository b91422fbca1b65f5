"""A real Prometheus holding a known fleet's eviction records.

Starts Debian's prometheus on loopback with a temporary TSDB, the rules of
packaging/monitoring/ and, when asked, the console page, and pushes the
records of FLEET to it through its remote-write receiver, the way the agents
do: protobuf WriteRequest, snappy block format, samples with their own
timestamps. The protobuf and the snappy framing are written here by hand
(snappy with literal blocks only, which every decoder accepts), so the tests
need nothing beyond python3 and prometheus.

The fleet is laid out relative to the moment of the push (NOW): the rules
are evaluated by Prometheus at its wall clock, so the records must sit in
the recent past for them."""

import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MON = os.path.join(TOP, "packaging", "monitoring")
RULE_FILES = [os.path.join(MON, "spot-agent.rules.yml"), os.path.join(MON, "spot-fleet.rules.yml")]
CONSOLES = os.path.join(MON, "consoles")
PROMETHEUS = os.environ.get("PROMETHEUS", "prometheus")
TIMEOUT = float(os.environ.get("SPOT_TEST_TIMEOUT", "30"))

MIN = 60
HOUR = 3600
DAY = 86400


class TestFailure(Exception):
    pass


# --- the wire: protobuf and snappy, by hand ----------------------------------

def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num, wire, payload):
    key = _varint(num << 3 | wire)
    if wire == 2:
        return key + _varint(len(payload)) + payload
    return key + payload


def _label(name, value):
    return _field(1, 2, name.encode()) + _field(2, 2, value.encode())


def _sample(value, ts_ms):
    return _field(1, 1, struct.pack("<d", value)) + _field(2, 0, _varint(ts_ms))


def write_request(series):
    """series: [(labels dict with __name__, [(timestamp s, value), ...])]:
    a prometheus.WriteRequest, labels sorted by name, samples in time order."""
    out = bytearray()
    for labels, samples in series:
        ts = b"".join(_field(1, 2, _label(k, labels[k])) for k in sorted(labels))
        ts += b"".join(_field(2, 2, _sample(v, int(round(t * 1000)))) for t, v in sorted(samples))
        out += _field(1, 2, ts)
    return bytes(out)


def snappy_block(data):
    """Snappy block format: the length, then the data as literals."""
    out = bytearray(_varint(len(data)))
    for i in range(0, len(data), 65536):
        chunk = data[i:i + 65536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        elif n < 256:
            out += bytes([60 << 2, n])
        else:
            out += bytes([61 << 2]) + struct.pack("<H", n)
        out += chunk
    return bytes(out)


# --- the fleet ---------------------------------------------------------------

PLACES = {
    "we": {"provider": "azure", "region": "westeurope", "zone": "westeurope-2",
           "vm_size": "Standard_D4s_v5", "group": "vmss-batch"},
    "ne": {"provider": "azure", "region": "northeurope", "zone": "northeurope-1",
           "vm_size": "Standard_D8s_v5", "group": "vmss-render"},
    "aws": {"provider": "aws", "region": "eu-west-1", "zone": "eu-west-1b",
            "vm_size": "m5.xlarge", "group": "asg-ci"},
    "gcp": {"provider": "gcp", "region": "europe-west1", "zone": "europe-west1-b",
            "vm_size": "n2-standard-4"},   # no group: a lone Spot VM
}

HOOKS_OK = [("10-checkpoint", "ok", 6.0), ("20-deregister", "ok", 1.5)]

# One dict per eviction; ago = seconds before NOW of the detection; hooks run
# back to back from the first hook's start (the chain is their sum). Values
# are chosen so that every SLI has a round, hand-checkable answer: the tests
# state the numbers, they do not recompute them.
FLEET = [
    # westeurope, Standard_D4s_v5: a burst of five Preempts 10 to 50 minutes
    # ago; the checkpoint hook fails or times out on three of them.
    dict(place="we", instance="batch-we-001", type="Preempt", source="azure", ago=40 * MIN,
         notice=28, first_hook=0.5, hooks=HOOKS_OK, overrun=0,
         lost_work=120, checkpoint_bytes=4e8, jobs_requeued=2, approval=1),
    dict(place="we", instance="batch-we-002", type="Preempt", source="azure", ago=30 * MIN,
         notice=26, first_hook=0.5, hooks=[("10-checkpoint", "failed", 2.0), ("20-deregister", "ok", 1.0)],
         overrun=0, lost_work=900, checkpoint_bytes=0, jobs_requeued=3, approval=1),
    dict(place="we", instance="batch-we-003", type="Preempt", source="azure", ago=20 * MIN,
         notice=12, first_hook=1.5, hooks=[("10-checkpoint", "timeout", 10.0), ("20-deregister", "skipped", 0)],
         overrun=3, lost_work=1800, approval=2),
    dict(place="we", instance="batch-we-004", type="Preempt", source="azure", ago=10 * MIN,
         notice=30, first_hook=0.5, hooks=HOOKS_OK, overrun=0,
         lost_work=60, checkpoint_bytes=6e8, jobs_requeued=1, approval=1),
    dict(place="we", instance="batch-we-005", type="Preempt", source="azure", ago=50 * MIN,
         notice=20, first_hook=0.5, hooks=[("10-checkpoint", "failed", 3.0), ("20-deregister", "ok", 1.0)],
         overrun=0, lost_work=600, approval=1),
    # westeurope, 3 hours ago: an event cancelled 2 minutes after detection.
    dict(place="we", instance="batch-we-010", type="Preempt", source="azure", ago=3 * HOUR,
         notice=30, first_hook=0.5, hooks=HOOKS_OK, overrun=0, lost_work=0, approval=1,
         recovered=("cancelled", 2 * MIN)),
    # northeurope: a Terminate 8 hours ago whose VM never came back.
    dict(place="ne", instance="render-ne-007", type="Terminate", source="azure", ago=8 * HOUR,
         notice=600, first_hook=0.5, hooks=HOOKS_OK, overrun=0,
         lost_work=300, checkpoint_bytes=2e9, approval=4),
    # AWS: a spot interruption 5 hours ago, back at a boot 40 minutes later.
    dict(place="aws", instance="i-0abc1234def567890", type="Terminate", source="aws-spot", ago=5 * HOUR,
         notice=120, first_hook=1.0, hooks=HOOKS_OK, overrun=0,
         lost_work=240, jobs_requeued=4, approval=2, recovered=("boot", 40 * MIN)),
    # GCP: a preemption 2 days ago (outside every 1 d window, inside 7 d), no
    # acknowledgement (GCP has none), back after 2 hours.
    dict(place="gcp", instance="spot-gcp-42", type="Preempt", source="gcp-preempted", ago=2 * DAY,
         notice=30, first_hook=0.5, hooks=HOOKS_OK, overrun=0,
         lost_work=3600, approval=None, recovered=("boot", 2 * HOUR)),
]

# What the nodes' own /metrics showed (a Prometheus would scrape it; here it
# is pushed too): batch-we-004 was pending around its eviction and its
# record arrived; batch-we-099 was pending 15 to 8 minutes ago and its
# record never arrived (an agent that does not push).
NODE_PENDING = {"batch-we-004": (10 * MIN, 9 * MIN), "batch-we-099": (15 * MIN, 8 * MIN)}


def eviction_samples(ev, now):
    """[(labels, [(t, value)])] of one eviction, the schema's series at the
    moments they describe."""
    base = dict(job="spot-agent", instance=ev["instance"], type=ev["type"], **PLACES[ev["place"]])
    out = []

    def put(name, t, value, **extra):
        out.append(({"__name__": name, **base, **extra}, [(t, value)]))

    t0 = now - ev["ago"]
    put("spot_eviction_detected", t0, 1, source=ev["source"])
    put("spot_eviction_notice_seconds", t0, ev["notice"])
    t = t0 + ev["first_hook"]
    put("spot_eviction_first_hook_seconds", t, ev["first_hook"])
    for hook, result, dur in ev["hooks"]:
        t += dur
        put("spot_eviction_hook_duration_seconds", t, dur, hook=hook, result=result)
    end = t
    put("spot_eviction_chain_seconds", end, sum(d for _, _, d in ev["hooks"]))
    put("spot_eviction_chain_overrun_seconds", end, ev["overrun"])
    put("spot_eviction_hooks_failed", end, sum(r in ("failed", "timeout") for _, r, _ in ev["hooks"]))
    for key in ("lost_work", "checkpoint_bytes", "jobs_requeued"):
        if ev.get(key) is not None:
            put("spot_eviction_%s%s" % (key, "_seconds" if key == "lost_work" else ""), end, ev[key])
    if ev.get("approval") is not None:
        put("spot_eviction_approval_seconds", end + ev["approval"], ev["approval"])
    if ev.get("recovered"):
        reason, after = ev["recovered"]
        put("spot_eviction_recovered", t0 + after, 1, reason=reason)
        put("spot_eviction_time_to_recover_seconds", t0 + after, after, reason=reason)
    return out


def fleet_series(now):
    """Every series of FLEET, samples of one series merged (an instance
    evicted twice has one series with two points)."""
    merged = {}
    for ev in FLEET:
        for labels, samples in eviction_samples(ev, now):
            key = tuple(sorted(labels.items()))
            merged.setdefault(key, []).extend(samples)
    for instance, (start, end) in NODE_PENDING.items():
        key = (("__name__", "spot_agent_eviction_pending"), ("instance", instance), ("job", "spot-agent"))
        merged[key] = [(now - ago, 1) for ago in range(start, end - 1, -10)]
    # The oldest sample first: a fresh TSDB's head accepts samples down to
    # an hour before the first one it is given.
    return sorted(((dict(k), sorted(v)) for k, v in merged.items()), key=lambda s: s[1][0][0])


# --- Prometheus --------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    """prometheus on 127.0.0.1:<free port>, its TSDB and logs in a temporary
    directory that goes with it (kept with SPOT_TEST_KEEP=1)."""

    def __init__(self, rule_files=RULE_FILES, consoles=None, libraries=None, scrape=None,
                 eval_interval="1s", ooo_window=None):
        self.dir = tempfile.mkdtemp(prefix="spot-fleet-prom.")
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        cfg = os.path.join(self.dir, "prometheus.yml")
        with open(cfg, "w", encoding="utf-8") as f:
            f.write("global:\n  evaluation_interval: %s\n  scrape_interval: 1s\n" % eval_interval)
            f.write("rule_files:\n" + "".join("  - %s\n" % json.dumps(r) for r in rule_files))
            f.write("scrape_configs: %s\n" % json.dumps(scrape or []))
            if ooo_window:
                f.write("storage:\n  tsdb:\n    out_of_order_time_window: %s\n" % ooo_window)
        cmd = [PROMETHEUS, "--config.file=" + cfg, "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
               "--web.listen-address=127.0.0.1:%d" % self.port, "--web.enable-remote-write-receiver",
               "--log.level=warn"]
        if consoles:
            cmd += ["--web.console.templates=" + consoles,
                    "--web.console.libraries=" + (libraries or os.path.join(self.dir, "no-libraries"))]
            os.makedirs(os.path.join(self.dir, "no-libraries"), exist_ok=True)
        self.log_path = os.path.join(self.dir, "prometheus.log")
        self.log = open(self.log_path, "w", encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     cwd=self.dir)
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                if self.get("/-/ready").startswith(b"Prometheus Server is Ready"):
                    break
            except OSError:
                pass
            problem = None
            if self.proc.poll() is not None:
                problem = "prometheus exited (%s): %s" % (self.proc.returncode, self.tail())
            elif time.monotonic() > deadline:
                problem = "prometheus not ready after %ds: %s" % (TIMEOUT, self.tail())
            if problem:
                self.close()
                raise TestFailure(problem)
            time.sleep(0.1)

    def tail(self, n=20):
        self.log.flush()
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-n:])

    def get(self, path):
        with self.opener.open(self.url + path, timeout=TIMEOUT) as r:
            return r.read()

    def api(self, path, **params):
        body = json.loads(self.get(path + "?" + urllib.parse.urlencode(params)))
        if body.get("status") != "success":
            raise TestFailure("%s: %s" % (path, body))
        return body["data"]

    def query(self, expr, at=None):
        """An instant query: [(labels without __name__, value)]."""
        params = {"query": expr}
        if at is not None:
            params["time"] = "%.3f" % at
        data = self.api("/api/v1/query", **params)
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [({k: v for k, v in r["metric"].items() if k != "__name__"}, float(r["value"][1]))
                for r in data["result"]]

    def push(self, series):
        """One remote-write request; raises unless it is accepted (204)."""
        body = snappy_block(write_request(series))
        req = urllib.request.Request(self.url + "/api/v1/write", data=body, method="POST", headers={
            "Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
            "X-Prometheus-Remote-Write-Version": "0.1.0", "User-Agent": "spot-agent-test"})
        try:
            with self.opener.open(req, timeout=TIMEOUT) as r:
                status = r.status
        except urllib.error.HTTPError as e:
            raise TestFailure("remote write refused: %d %s" % (e.code, e.read().decode(errors="replace")))
        if status != 204:
            raise TestFailure("remote write: HTTP %d" % status)

    def wait_rules_after(self, t):
        """Waits until every rule group was evaluated (completely) after t."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            groups = self.api("/api/v1/rules")["groups"]
            done = groups and all(
                g["lastEvaluation"] and parse_rfc3339(g["lastEvaluation"]) > t for g in groups)
            if done:
                # The evaluation began after t; wait for it to be over.
                time.sleep(max(g["evaluationTime"] for g in groups) + 0.2)
                return groups
            if time.monotonic() > deadline:
                raise TestFailure("rules not evaluated after the push: %s" % json.dumps(groups)[:2000])
            time.sleep(0.2)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        if os.environ.get("SPOT_TEST_KEEP") == "1":
            print("kept %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def parse_rfc3339(s):
    """Prometheus' lastEvaluation (RFC 3339 with nanoseconds) as Unix seconds."""
    import datetime
    s = s.replace("Z", "+00:00")
    head, _, rest = s.partition(".")
    frac, tz = "0", ""
    if rest:
        i = next((k for k, c in enumerate(rest) if not c.isdigit()), len(rest))
        frac, tz = rest[:i], rest[i:]
    else:
        head, tz = s[:19], s[19:]
    dt = datetime.datetime.fromisoformat(head + (tz or "+00:00"))
    return dt.timestamp() + float("0." + frac)
