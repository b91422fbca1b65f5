#!/usr/bin/python3
"""Self-test of test/imds-sim.

Run from anywhere: /usr/bin/python3 test/imds_sim_selftest.py
Starts the simulator on a free port and checks the Azure-facing rules, the
event lifecycle, fault injection, the request record and the control API,
then the AWS EC2 IMDS side (IMDSv2 tokens, spot, rebalance and lifecycle
items), the GCP side (Metadata-Flavor, ETags, hanging GETs) and what the
engine tests lean on (a moving spot time, approval statuses).
The last line of output is "N passed, N failed"; the exit status is 1 when
anything failed.
"""

import datetime
import hashlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SIM_PATH = os.path.join(HERE, "imds-sim")
SE = "/metadata/scheduledevents?api-version=2020-07-01"
COMPUTE = "/metadata/instance/compute?api-version=2021-02-01"
ERR_METADATA = {"error": "Bad request. Required metadata header not specified"}
NEWEST = ["2025-04-07", "2024-07-17", "2024-03-15"]
GUID_UPPER = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")
GUID_LOWER = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
RFC1123 = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
                     r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                     r"\d{4} \d\d:\d\d:\d\d GMT$")
ISO8601 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
GCP_MISSING = ("Your client does not have permission to get URL "
               "/computeMetadata/v1/instance/name from this server. "
               "Missing Metadata-Flavor:Google header.")
KEY_ORDER = ["EventId", "EventStatus", "EventType", "ResourceType", "Resources",
             "NotBefore", "Description", "EventSource", "DurationInSeconds"]

passed = 0
failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL: %s %s" % (name, detail))


class Sim:
    def __init__(self, *args):
        self.dir = tempfile.mkdtemp(prefix="imds-sim-test.")
        self.port_file = os.path.join(self.dir, "port")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", SIM_PATH, "--port", "0",
             "--port-file", self.port_file, "--quiet"] + list(args))
        deadline = time.monotonic() + 10
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("simulator did not start")
            time.sleep(0.02)
        with open(self.port_file) as f:
            self.port = int(f.read())

    def conn(self, timeout=5):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, headers=None, body=None, conn=None, timeout=5):
        own = conn is None
        c = conn or self.conn(timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, r, data
        finally:
            if own:
                c.close()

    def md(self, path, method="GET", body=None, headers=None, conn=None, timeout=5):
        h = {"Metadata": "true"}
        h.update(headers or {})
        return self.request(method, path, h, body, conn, timeout)

    def doc(self, path=SE, conn=None):
        status, _, data = self.md(path, conn=conn)
        if status != 200:
            raise AssertionError("GET %s -> %d %r" % (path, status, data))
        return json.loads(data)

    def ctl(self, method, path, obj=None, expect=200):
        body = json.dumps(obj).encode() if obj is not None else None
        status, _, data = self.request(method, "/__sim/" + path, body=body)
        if expect is not None and status != expect:
            raise AssertionError("%s /__sim/%s -> %d %r" % (method, path, status, data))
        return json.loads(data) if data else None

    def fresh(self, **config):
        """Reset, then turn the rate limit off unless asked otherwise."""
        self.ctl("POST", "reset")
        cfg = {"rate_limit": 0}
        cfg.update(config)
        self.ctl("POST", "config", cfg)

    def approve(self, ids, ctype=None):
        body = json.dumps({"StartRequests": [{"EventId": i} for i in ids]}).encode()
        headers = {"Content-Type": ctype} if ctype else {}
        return self.md(SE, "POST", body, headers)

    def token(self, ttl=60):
        status, r, data = self.request("PUT", "/latest/api/token", {TTL_HEADER: str(ttl)})
        if status != 200:
            raise AssertionError("token PUT -> %d %r" % (status, data))
        return data.decode()

    def aws(self, item, token=None, method="GET", headers=None):
        h = {TOKEN_HEADER: token} if token is not None else {}
        h.update(headers or {})
        return self.request(method, "/latest/meta-data/" + item, h)

    def gcp(self, path, headers=None, timeout=5):
        h = {"Metadata-Flavor": "Google"}
        h.update(headers or {})
        return self.request("GET", "/computeMetadata/v1/" + path, h, timeout=timeout)

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = None
        try:
            os.unlink(self.port_file)
        except OSError:
            pass
        os.rmdir(self.dir)
        return rc


def wait_until(fn, timeout=5.0, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


def test_headers(sim):
    sim.fresh()
    status, r, data = sim.request("GET", SE)
    check("no Metadata header -> 400", status == 400, status)
    check("no Metadata header body", json.loads(data) == ERR_METADATA, data)
    check("error is JSON", r.getheader("Content-Type", "").startswith("application/json"))
    status, _, _ = sim.request("GET", SE, {"Metadata": "false"})
    check("Metadata: false -> 400", status == 400, status)
    status, _, _ = sim.md(SE, headers={"X-Forwarded-For": "10.0.0.1"})
    check("X-Forwarded-For -> 400", status == 400, status)
    status, _, _ = sim.md(SE + "&api-version=2020-07-01")
    check("duplicate query name -> 400", status == 400, status)
    status, _, data = sim.md("/metadata/scheduledevents")
    body = json.loads(data)
    check("no api-version -> 400", status == 400, status)
    check("api-version 400 lists newest-versions",
          body.get("newest-versions") == NEWEST and "api-version" in body.get("error", ""), data)
    status, _, _ = sim.md("/metadata/scheduledevents?api-version=2021-02-01")
    check("instance-only version on scheduledevents -> 400", status == 400, status)
    status, _, _ = sim.md("/metadata/instance/compute?api-version=2020-07-01")
    check("2020-07-01 on compute -> 400", status == 400, status)
    for v in ("2017-03-01", "2017-08-01", "2017-11-01", "2019-01-01", "2019-04-01",
              "2019-08-01", "2020-07-01"):
        status, _, _ = sim.md("/metadata/scheduledevents?api-version=" + v)
        check("scheduledevents version %s -> 200" % v, status == 200, status)
    status, r, data = sim.md(COMPUTE)
    compute = json.loads(data)
    check("compute 200 JSON", status == 200 and
          r.getheader("Content-Type", "").startswith("application/json"), status)
    check("compute fields", compute.get("name") == "agent-vm0" and
          compute.get("priority") == "Spot" and compute.get("evictionPolicy") == "delete" and
          compute.get("vmScaleSetName") == "" and compute.get("vmId") and
          compute.get("location") and compute.get("zone") and compute.get("vmSize") and
          compute.get("resourceId", "").endswith("/virtualMachines/agent-vm0"), compute)
    check("compute primitives are strings",
          all(isinstance(v, str) for k, v in compute.items() if k != "tagsList"), compute)
    old = sim.doc("/metadata/instance/compute?api-version=2019-03-11")
    check("priority absent before 2020-12-01", "priority" not in old and "name" in old, old)
    inst = sim.doc("/metadata/instance?api-version=2025-04-07")
    check("instance document", inst.get("network") == {"interface": []} and
          inst.get("compute", {}).get("name") == "agent-vm0", inst)
    status, r, data = sim.md("/metadata/instance/compute/name?api-version=2021-02-01&format=text")
    check("leaf format=text", status == 200 and data == b"agent-vm0" and
          r.getheader("Content-Type", "").startswith("text/plain"), (status, data))
    status, _, _ = sim.md("/metadata/instance/compute/name?api-version=2021-02-01")
    check("leaf without format=text -> 400", status == 400, status)
    status, _, _ = sim.md("/metadata/instance/compute/nosuch?api-version=2021-02-01&format=text")
    check("unknown key -> 404", status == 404, status)
    status, _, _ = sim.md("/metadata/nosuch?api-version=2021-02-01")
    check("unknown path -> 404", status == 404, status)
    status, _, _ = sim.md(SE, "PUT", b"{}")
    check("PUT scheduledevents -> 405", status == 405, status)
    status, _, _ = sim.md(COMPUTE, "POST", b"{}")
    check("POST compute -> 405", status == 405, status)
    status, _, data = sim.md("/metadata/versions")
    versions = json.loads(data).get("apiVersions", [])
    check("versions", status == 200 and "2021-02-01" in versions and
          "2020-07-01" not in versions and len(versions) == 35, data)
    sim.ctl("POST", "config", {"vm_name": "other-vm"})
    check("vm_name config", sim.doc(COMPUTE)["name"] == "other-vm")
    ev = sim.ctl("POST", "events", {"not_before_in": 600})
    check("default resources follow vm_name",
          sim.doc()["Events"][0]["Resources"] == ["other-vm"] and ev["id"])


def test_rate(sim):
    sim.ctl("POST", "reset")
    check("default rate limit 5", sim.ctl("GET", "config")["rate_limit"] == 5)
    c = sim.conn()
    statuses = [sim.md(SE, conn=c)[0] for _ in range(8)]
    recs = sim.ctl("GET", "requests")
    monos = [r["mono"] for r in recs]
    expected = []
    for i, m in enumerate(monos):
        in_window = sum(1 for x in monos[:i + 1] if x > m - 1.0)
        expected.append(429 if in_window > 5 else 200)
    check("429 exactly above 5 per sliding second", statuses == expected, (statuses, expected))
    if monos[-1] - monos[0] < 1.0:
        check("burst of 8 gets three 429", statuses.count(429) == 3, statuses)
    status, _, _ = sim.request("GET", "/__sim/state")
    check("control exempt from rate limit", status == 200, status)
    delay = monos[-1] + 1.05 - time.monotonic()
    if delay > 0:
        time.sleep(delay)      # the behaviour under test is the 1 s window
    check("window slides", sim.md(SE, conn=c)[0] == 200)
    c.close()
    sim.ctl("POST", "config", {"rate_limit": 0})
    c = sim.conn()
    check("rate limit off", all(sim.md(SE, conn=c)[0] == 200 for _ in range(12)))
    c.close()


def test_lifecycle(sim):
    sim.fresh(started_ttl=0.6)
    inc0 = sim.doc()["DocumentIncarnation"]
    check("incarnation starts >= 1", inc0 >= 1, inc0)
    ev = sim.ctl("POST", "events", {"type": "Preempt", "not_before_in": 600})
    eid = ev["id"]
    check("create bumps incarnation", ev["incarnation"] == inc0 + 1, ev)
    d = sim.doc()
    e = d["Events"][0]
    check("scheduled doc", d["DocumentIncarnation"] == inc0 + 1 and len(d["Events"]) == 1 and
          e["EventStatus"] == "Scheduled" and e["EventType"] == "Preempt" and
          e["Resources"] == ["agent-vm0"] and e["ResourceType"] == "VirtualMachine" and
          e["EventSource"] == "Platform" and e["DurationInSeconds"] == -1 and
          e["Description"] == "", d)
    check("upper-case GUID", GUID_UPPER.match(e["EventId"]) and e["EventId"] == eid, e)
    check("RFC 1123 NotBefore", RFC1123.match(e["NotBefore"]), e["NotBefore"])
    check("key order as captured", list(e.keys()) == KEY_ORDER, list(e.keys()))
    check("document key order", list(d.keys()) == ["DocumentIncarnation", "Events"])
    check("stable incarnation", sim.doc()["DocumentIncarnation"] == inc0 + 1)
    status, _, data = sim.approve([eid.lower()], "application/x-www-form-urlencoded")
    check("approve (lower-case id, form content type) -> 200 {}",
          status == 200 and json.loads(data) == {}, (status, data))
    d = sim.doc()
    e = d["Events"][0]
    check("started", e["EventStatus"] == "Started" and e["NotBefore"] == "" and
          e["EventId"] == eid and d["DocumentIncarnation"] == inc0 + 2, d)
    d = wait_until(lambda: (lambda x: x if not x["Events"] else None)(sim.doc()))
    check("removed after started_ttl", d and d["DocumentIncarnation"] == inc0 + 3, d)
    status, _, _ = sim.approve([eid])
    check("approve finished id -> 200", status == 200, status)
    status, _, _ = sim.approve(["00000000-0000-0000-0000-000000000000"])
    check("approve unknown id -> 400", status == 400, status)
    for bad in (b"{not json", b"[]", b'{"StartRequests":[]}', b'{"StartRequests":[{"Id":"x"}]}',
                b'{"StartRequests":"x"}', b""):
        status, _, _ = sim.md(SE, "POST", bad)
        check("malformed approval %r -> 400" % bad, status == 400, status)
    appr = sim.ctl("GET", "approvals")
    check("approval record", len(appr) == 2 and appr[0]["event_ids"] == [eid.lower()] and
          isinstance(appr[0]["t"], float) and isinstance(appr[0]["mono"], float), appr)
    check("approval record statuses (as found: Scheduled, then gone)",
          len(appr) == 2 and appr[0]["statuses"] == ["Scheduled"] and
          appr[1]["statuses"] == ["gone"], appr)
    check("no change from approvals of finished events",
          sim.doc()["DocumentIncarnation"] == inc0 + 3)

    # auto-start at NotBefore; ISO 8601 and lower-case id on request
    ev = sim.ctl("POST", "events", {"not_before_in": 1.0, "time_format": "iso8601",
                                    "id_case": "lower", "type": "Reboot", "source": "User"})
    e = sim.doc()["Events"][0]
    check("iso8601 + lower id", ISO8601.match(e["NotBefore"]) and
          GUID_LOWER.match(e["EventId"]) and e["EventStatus"] == "Scheduled", e)
    started = wait_until(lambda: sim.doc()["Events"][0]["EventStatus"] == "Started", 5)
    e = sim.doc()["Events"]
    check("auto-start at NotBefore", started and e and e[0]["EventId"] == ev["id"], e)
    inc = sim.doc()["DocumentIncarnation"]
    sim.ctl("POST", "config", {"started_ttl": 0})
    r = sim.ctl("DELETE", "events/" + ev["id"].upper())
    d = sim.doc()
    check("delete via control", d["Events"] == [] and d["DocumentIncarnation"] == inc + 1 and
          r["incarnation"] == inc + 1, (d, r))
    sim.ctl("DELETE", "events/" + ev["id"], expect=404)

    # force start, unknown type, extra fields
    ev = sim.ctl("POST", "events", {"type": "Spotless", "not_before_in": 600,
                                    "extra": {"Future": {"x": 1}}, "id": "fixed-id-1"})
    e = sim.doc()["Events"][0]
    check("unknown type and extra field", e["EventType"] == "Spotless" and
          e["Future"] == {"x": 1} and e["EventId"] == "fixed-id-1", e)
    sim.ctl("POST", "events", {"id": "FIXED-ID-1"}, expect=409)
    sim.ctl("POST", "events/fixed-id-1/start")
    e = sim.doc()["Events"][0]
    check("force start", e["EventStatus"] == "Started" and e["NotBefore"] == "", e)
    sim.ctl("POST", "events", {"bogus": 1}, expect=400)
    sim.ctl("POST", "events", {"not_before_in": "soon"}, expect=400)

    # auto-start off keeps a late event Scheduled; turning it on starts it
    sim.fresh(auto_start=False)
    ev = sim.ctl("POST", "events", {"not_before_in": -5, "type": "Freeze", "duration": 5})
    e = sim.doc()["Events"][0]
    check("late Scheduled with auto_start off", e["EventStatus"] == "Scheduled" and
          e["NotBefore"] != "" and e["DurationInSeconds"] == 5, e)
    sim.ctl("POST", "config", {"auto_start": True})
    e = sim.doc()["Events"][0]
    check("auto_start on starts it", e["EventStatus"] == "Started", e)
    ev = sim.ctl("POST", "events", {"status": "Started", "type": "Reboot"})
    d = sim.doc()
    check("created Started", [x["EventStatus"] for x in d["Events"]] == ["Started", "Started"] and
          d["Events"][1]["NotBefore"] == "", d)
    raw = sim.ctl("POST", "events", {"not_before": "whenever", "id": "raw-1"})
    e = [x for x in sim.doc()["Events"] if x["EventId"] == "raw-1"]
    check("raw NotBefore served verbatim", e and e[0]["NotBefore"] == "whenever" and
          e[0]["EventStatus"] == "Scheduled", (raw, e))

    before = sim.doc()["DocumentIncarnation"]
    r = sim.ctl("POST", "reset")
    d = sim.doc()
    check("reset clears, incarnation monotonic", d["Events"] == [] and
          d["DocumentIncarnation"] >= before and r["incarnation"] == d["DocumentIncarnation"], d)
    check("reset restores config", sim.ctl("GET", "config")["started_ttl"] == 5.0)


def test_engine_support(sim):
    """What the eviction-engine regression tests and the kill -9 torture
    rely on: a moving AWS spot time, approval statuses, many events listed
    in creation order, a fault that never runs out."""
    sim.fresh(started_ttl=0)
    tok = sim.token(300)
    r = sim.ctl("POST", "aws/spot", {"notice_in": 120, "moving_time": True})
    check("moving spot view", r["spot"]["moving_time"] is True and
          r["spot"]["action"] == "terminate", r)

    def served():
        """(time before, served time as Unix seconds, time after)."""
        before = time.time()
        st, _, data = sim.aws("spot/instance-action", tok)
        return before, parse_z(json.loads(data)["time"]) if st == 200 else None, time.time()

    def now_plus_120(answer):
        before, when, after = answer
        return when is not None and int(before) + 120 <= when <= int(after) + 120

    first = served()
    # The time moves with the clock: wait for the next whole second.
    wait_until(lambda: int(time.time()) > int(first[2]), 3, 0.01)
    second = served()
    check("moving spot time is now + notice_in at each answer",
          now_plus_120(first) and now_plus_120(second) and second[1] > first[1],
          (first, second))
    st, _, data = sim.aws("spot/termination-time", tok)
    check("termination-time moves with it", st == 200 and
          abs(parse_z(data.decode()) - (time.time() + 120)) <= 1, data)
    sim.ctl("POST", "aws/spot", {"time": "2026-11-27T08:22:00Z", "moving_time": True}, expect=400)
    sim.ctl("POST", "aws/spot", {"moving_time": "yes"}, expect=400)
    r = sim.ctl("POST", "aws/spot", {"notice_in": 120})
    check("fixed spot time by default", r["spot"]["moving_time"] is False, r)
    first = served()
    wait_until(lambda: int(time.time()) > int(first[2]), 3, 0.01)
    check("fixed spot time stays", served()[1] == first[1])
    sim.ctl("DELETE", "aws/spot")

    eid = sim.ctl("POST", "events", {"type": "Preempt", "not_before_in": 600})["id"]
    sim.ctl("POST", "events/%s/start" % eid)
    sim.approve([eid])
    sim.ctl("DELETE", "events/" + eid)
    other = sim.ctl("POST", "events", {"type": "Terminate", "not_before_in": 600})["id"]
    sim.approve([eid, other])
    appr = sim.ctl("GET", "approvals")
    check("approval statuses: Started, then gone and Scheduled",
          [a["statuses"] for a in appr] == [["Started"], ["gone", "Scheduled"]] and
          appr[0]["mono"] <= appr[1]["mono"], appr)

    sim.fresh()
    ids = [sim.ctl("POST", "events", {"type": "Freeze", "resources": ["other-vm-%d" % i]})["id"]
           for i in range(40)]
    mine = sim.ctl("POST", "events", {"type": "Preempt"})["id"]
    d = sim.doc()
    check("41 events listed in creation order, ours last",
          [e["EventId"] for e in d["Events"]] == ids + [mine] and
          d["Events"][-1]["Resources"] == ["agent-vm0"], len(d["Events"]))

    sim.ctl("POST", "faults", {"path": "/metadata/instance", "count": -1})
    got = [sim.md(COMPUTE)[0] for _ in range(12)]
    check("compute fault that never runs out, Scheduled Events untouched",
          got == [500] * 12 and sim.md(SE)[0] == 200, got)
    sim.ctl("DELETE", "faults")
    check("compute answers once cleared", sim.md(COMPUTE)[0] == 200)


def test_versions(sim):
    sim.fresh()
    sim.ctl("POST", "events", {"description": "Host server is undergoing maintenance.",
                               "source": "User", "duration": 9, "type": "Reboot",
                               "not_before_in": 900})
    expect = {"2017-08-01": KEY_ORDER[:6], "2017-11-01": KEY_ORDER[:6],
              "2019-01-01": KEY_ORDER[:6], "2019-04-01": KEY_ORDER[:7],
              "2019-08-01": KEY_ORDER[:8], "2020-07-01": KEY_ORDER}
    for v, keys in expect.items():
        e = sim.doc("/metadata/scheduledevents?api-version=" + v)["Events"][0]
        check("fields at %s" % v, list(e.keys()) == keys, list(e.keys()))
    e = sim.doc()["Events"][0]
    check("field values", e["Description"] == "Host server is undergoing maintenance." and
          e["EventSource"] == "User" and e["DurationInSeconds"] == 9, e)
    state = sim.ctl("GET", "state")
    check("state mirrors the document", state["events"] == sim.doc()["Events"] and
          state["incarnation"] == sim.doc()["DocumentIncarnation"] and
          state["vm_name"] == "agent-vm0", state)


def test_faults(sim):
    sim.fresh()
    sim.ctl("POST", "faults", {"path": "/metadata/scheduledevents", "kind": "status",
                               "status": 500, "body": '{"error":"boom"}'})
    status, _, data = sim.md(SE)
    check("status fault", status == 500 and data == b'{"error":"boom"}', (status, data))
    check("fault consumed", sim.md(SE)[0] == 200)

    sim.ctl("POST", "faults", {"method": "POST", "status": 503})
    check("method filter skips GET", sim.md(SE)[0] == 200)
    check("method filter hits POST", sim.approve(["x"])[0] == 503)

    sim.ctl("POST", "faults", {"path": "/metadata/instance", "status": 410})
    check("path filter skips other paths", sim.md(SE)[0] == 200)
    check("path filter hits prefix", sim.md(COMPUTE)[0] == 410)

    sim.ctl("POST", "faults", {"status": 429, "count": 2})
    sim.ctl("POST", "faults", {"status": 500})
    got = [sim.md(SE)[0] for _ in range(4)]
    check("count and queue order", got == [429, 429, 500, 200], got)

    sim.ctl("POST", "faults", {"status": 500, "count": -1})
    got = [sim.md(SE)[0] for _ in range(3)]
    check("count -1 persists", got == [500, 500, 500], got)
    check("faults listed", len(sim.ctl("GET", "faults")) == 1)
    sim.ctl("DELETE", "faults")
    check("faults cleared", sim.md(SE)[0] == 200)
    check("faults spare control", sim.ctl("GET", "faults") == [])

    sim.ctl("POST", "faults", {"kind": "stall", "seconds": 0.6})
    result = {}

    def stalled():
        t0 = time.monotonic()
        result["status"] = sim.md(SE)[0]
        result["done"] = time.monotonic()
        result["elapsed"] = result["done"] - t0

    th = threading.Thread(target=stalled)
    th.start()
    wait_until(lambda: any(r["fault"] == "stall" for r in sim.ctl("GET", "requests")), 3, 0.01)
    sim.ctl("GET", "state")
    other = sim.md(SE)[0]
    quick_done = time.monotonic()
    th.join(5)
    check("stall answers normally after the wait", result.get("status") == 200 and
          result.get("elapsed", 0) >= 0.6, result)
    check("stall blocks neither control nor other connections",
          other == 200 and quick_done < result.get("done", 0), (quick_done, result))

    sim.ctl("POST", "faults", {"kind": "garbage"})
    status, _, data = sim.md(SE)
    try:
        json.loads(data)
        parsed = True
    except ValueError:
        parsed = False
    check("garbage fault", status == 200 and data and not parsed, (status, data[:40]))

    sim.ctl("POST", "faults", {"kind": "oversized", "bytes": 200000})
    status, _, data = sim.md(SE)
    check("oversized fault", status == 200 and len(data) == 200000 and
          isinstance(json.loads(data), dict), (status, len(data)))

    sim.ctl("POST", "faults", {"kind": "drop"})
    try:
        sim.md(SE)
        dropped = False
    except (http.client.HTTPException, ConnectionError):
        dropped = True
    check("drop fault closes without answer", dropped)
    rec = sim.ctl("GET", "requests")[-1]
    check("drop recorded as status 0", rec["status"] == 0 and rec["fault"] == "drop", rec)

    sim.ctl("POST", "faults", {"kind": "truncate"})
    try:
        sim.md(SE)
        truncated = False
    except http.client.IncompleteRead:
        truncated = True
    check("truncate fault gives a short body", truncated)
    check("service fine after faults", sim.md(SE)[0] == 200)
    sim.ctl("POST", "faults", {"kind": "nonsense"}, expect=400)


def test_records(sim):
    sim.fresh()
    sim.ctl("DELETE", "requests")
    a = sim.conn()
    sim.md(SE, conn=a)
    sim.md(COMPUTE, conn=a)
    a.close()
    sim.approve(["nope"])
    sim.request("GET", SE)
    recs = sim.ctl("GET", "requests")
    check("four records", len(recs) == 4, len(recs))
    if len(recs) != 4:
        return
    check("same connection, same conn id", recs[0]["conn"] == recs[1]["conn"])
    check("new connection, new conn id", recs[2]["conn"] not in (recs[0]["conn"], recs[3]["conn"]))
    r = recs[0]
    check("record fields", r["method"] == "GET" and r["path"] == "/metadata/scheduledevents" and
          r["query"] == {"api-version": ["2020-07-01"]} and r["headers"].get("metadata") == "true" and
          r["status"] == 200 and r["body"] == "" and abs(r["t"] - time.time()) < 60, r)
    check("names lower-cased", all(k == k.lower() for k in r["headers"]), r["headers"])
    check("arrival order", [x["mono"] for x in recs] == sorted(x["mono"] for x in recs))
    check("POST body and status recorded", recs[2]["method"] == "POST" and
          "nope" in recs[2]["body"] and recs[2]["status"] == 400, recs[2])
    check("rejected request recorded", recs[3]["status"] == 400)
    check("since filter", len(sim.ctl("GET", "requests?since=%d" % recs[1]["seq"])) == 2)
    sim.ctl("DELETE", "requests")
    check("records cleared", sim.ctl("GET", "requests") == [])


def test_first_call(sim):
    sim.fresh(first_call_delay=0.8)
    result = {}

    def first():
        t0 = time.monotonic()
        result["status"] = sim.md(SE)[0]
        result["done"] = time.monotonic()
        result["elapsed"] = result["done"] - t0

    th = threading.Thread(target=first)
    th.start()
    wait_until(lambda: sim.ctl("GET", "requests"), 3, 0.01)
    sim.ctl("GET", "state")
    compute_status = sim.md(COMPUTE)[0]
    quick_done = time.monotonic()
    th.join(5)
    check("first call delayed", result.get("status") == 200 and
          result.get("elapsed", 0) >= 0.8, result)
    check("delay holds up nothing else", compute_status == 200 and
          quick_done < result.get("done", 0), (quick_done, result))
    t0 = time.monotonic()
    sim.md(SE)
    check("later calls not delayed", time.monotonic() - t0 < 0.5)
    sim.ctl("POST", "config", {"first_call_delay": 0})


def parse_z(text):
    try:
        d = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError):
        return None
    return d.replace(tzinfo=datetime.timezone.utc).timestamp()


def test_aws_tokens(sim):
    sim.fresh()
    status, r, data = sim.request("PUT", "/latest/api/token", {TTL_HEADER: "60"})
    tok = data.decode()
    check("token PUT -> 200 text", status == 200 and len(tok) >= 32 and
          r.getheader("Content-Type", "").startswith("text/plain"), (status, data))
    check("token PUT echoes the TTL", r.getheader(TTL_HEADER) == "60", r.getheaders())
    check("tokens are random", sim.token() != tok)
    check("no Metadata header needed", status == 200)
    for bad in (None, "0", "21601", "abc", "", "-5", "1.5"):
        h = {TTL_HEADER: bad} if bad is not None else {}
        st = sim.request("PUT", "/latest/api/token", h)[0]
        check("token TTL %r -> 400" % bad, st == 400, st)
    st, r, _ = sim.request("PUT", "/latest/api/token", {TTL_HEADER: "21600"})
    check("TTL 21600 -> 200", st == 200 and r.getheader(TTL_HEADER) == "21600", st)
    st = sim.request("PUT", "/latest/api/token",
                     {TTL_HEADER: "60", "X-Forwarded-For": "10.0.0.1"})[0]
    check("token PUT with X-Forwarded-For -> 403", st == 403, st)
    st = sim.request("PUT", "/2021-03-23/api/token", {TTL_HEADER: "60"})[0]
    check("token PUT to a versioned path -> 403", st == 403, st)
    st, r, _ = sim.request("GET", "/latest/api/token", {TTL_HEADER: "60"})
    check("GET on api/token -> 405", st == 405 and r.getheader("Allow") == "PUT", st)

    st, r, data = sim.aws("instance-id")
    check("GET without token -> 401", st == 401 and b"401" in data and
          r.getheader("Content-Type", "").startswith("text/html"), (st, data))
    check("GET with a bad token -> 401", sim.aws("instance-id", "bogus")[0] == 401)
    st, r, data = sim.aws("instance-id", tok)
    check("instance-id with token", st == 200 and data == b"i-0123456789abcdef0" and
          r.getheader("Content-Type", "").startswith("text/plain"), (st, data))
    left = r.getheader(TTL_HEADER)
    check("GET answer carries the TTL left", left is not None and left.isdigit() and
          1 <= int(left) <= 60, left)
    st, _, data = sim.aws("instance-id", tok, headers={"Metadata": "false",
                                                       "X-Forwarded-For": "10.0.0.1"})
    check("Azure header rules not applied to AWS", st == 200, st)
    st, _, data = sim.request("GET", "/2021-03-23/meta-data/instance-id", {TOKEN_HEADER: tok})
    check("versioned GET served", st == 200 and data == b"i-0123456789abcdef0", (st, data))
    check("PUT on meta-data -> 405", sim.aws("instance-id", tok, "PUT")[0] == 405)
    check("unknown item -> 404", sim.aws("no-such-item", tok)[0] == 404)

    r = sim.ctl("POST", "aws/expire-tokens")
    check("expire-tokens reports", r["expired"] >= 2 and r["tokens"] == 0, r)
    check("expired token -> 401", sim.aws("instance-id", tok)[0] == 401)
    tok = sim.token()
    check("new token after expiry", sim.aws("instance-id", tok)[0] == 200)

    short = sim.token(1)
    check("short token valid at first", sim.aws("instance-id", short)[0] == 200)
    check("short token expires after its TTL",
          wait_until(lambda: sim.aws("instance-id", short)[0] == 401, 5))
    check("long token still valid", sim.aws("instance-id", tok)[0] == 200)

    sim.ctl("POST", "config", {"aws_v1_allowed": True, "aws_instance_id": "i-0fedcba987654321f"})
    st, r, data = sim.aws("instance-id")
    check("aws_v1_allowed serves without token", st == 200 and
          data == b"i-0fedcba987654321f" and r.getheader(TTL_HEADER) is None, (st, data))
    check("aws_v1_allowed still rejects a bad token", sim.aws("instance-id", "bogus")[0] == 401)
    sim.ctl("POST", "config", {"aws_v1_allowed": "yes"}, expect=400)
    sim.ctl("POST", "config", {"aws_instance_id": ""}, expect=400)
    sim.ctl("POST", "reset")
    check("reset drops tokens", sim.aws("instance-id", tok)[0] == 401)
    cfg = sim.ctl("GET", "config")
    check("reset restores AWS config", cfg["aws_v1_allowed"] is False and
          cfg["aws_instance_id"] == "i-0123456789abcdef0", cfg)


def test_aws_items(sim):
    sim.fresh()
    tok = sim.token(300)
    st, _, data = sim.aws("instance-life-cycle", tok)
    check("instance-life-cycle spot", st == 200 and data == b"spot", (st, data))
    st, _, data = sim.aws("", tok)
    listing = data.decode().split("\n")
    check("meta-data listing", st == 200 and "instance-id" in listing and
          "autoscaling/" in listing and "spot/" not in listing, listing)
    for item in ("spot/instance-action", "spot/termination-time", "spot",
                 "events/recommendations/rebalance"):
        check("%s 404 until set" % item, sim.aws(item, tok)[0] == 404)

    t0 = time.time()
    r = sim.ctl("POST", "aws/spot", {"action": "terminate", "notice_in": 120})
    st, r2, data = sim.aws("spot/instance-action", tok)
    when = r["spot"]["time"]
    check("spot instance-action JSON", st == 200 and
          data.decode() == '{"action":"terminate","time":"%s"}' % when and
          json.loads(data) == {"action": "terminate", "time": when}, (st, data))
    ts = parse_z(when)
    check("spot time is now + notice, RFC 3339 Z", ISO8601.match(when) and ts is not None and
          t0 + 118 <= ts <= time.time() + 121, (when, t0))
    st, _, data = sim.aws("spot/termination-time", tok)
    check("termination-time text", st == 200 and data.decode() == when, (st, data))
    st, _, data = sim.aws("", tok)
    check("spot/ listed once set", "spot/" in data.decode().split("\n"), data)
    st, _, data = sim.aws("spot", tok)
    check("spot/ directory", data.decode().split("\n") ==
          ["instance-action", "termination-time"], data)
    for action in ("stop", "hibernate"):
        sim.ctl("POST", "aws/spot", {"action": action, "notice_in": 0})
        st, _, data = sim.aws("spot/instance-action", tok)
        check("spot action %s" % action, st == 200 and json.loads(data)["action"] == action, data)
    sim.ctl("POST", "aws/spot", {"action": "explode"}, expect=400)
    sim.ctl("POST", "aws/spot", {"notice_in": "soon"}, expect=400)
    sim.ctl("POST", "aws/spot", {"colour": 1}, expect=400)
    sim.ctl("DELETE", "aws/spot")
    check("spot cleared -> 404", sim.aws("spot/instance-action", tok)[0] == 404)

    t0 = time.time()
    sim.ctl("POST", "aws/rebalance", {"notice_in": 0})
    st, _, data = sim.aws("events/recommendations/rebalance", tok)
    doc = json.loads(data) if st == 200 else {}
    ts = parse_z(doc.get("noticeTime"))
    check("rebalance JSON", st == 200 and list(doc) == ["noticeTime"] and ts is not None and
          t0 - 1 <= ts <= time.time() + 1, (st, data))
    sim.ctl("DELETE", "aws/rebalance")
    check("rebalance cleared -> 404", sim.aws("events/recommendations/rebalance", tok)[0] == 404)

    st, r, data = sim.aws("autoscaling/target-lifecycle-state", tok)
    check("lifecycle InService", st == 200 and data == b"InService" and
          r.getheader("Content-Type", "").startswith("text/plain"), (st, data))
    sim.ctl("POST", "aws/lifecycle", {"state": "Terminated"})
    st, _, data = sim.aws("autoscaling/target-lifecycle-state", tok)
    check("lifecycle Terminated", st == 200 and data == b"Terminated", (st, data))
    sim.ctl("POST", "aws/lifecycle", {"state": None})
    check("lifecycle null -> 404", sim.aws("autoscaling/target-lifecycle-state", tok)[0] == 404)
    sim.ctl("POST", "aws/lifecycle", {}, expect=400)
    sim.ctl("POST", "aws/lifecycle", {"state": "a\nb"}, expect=400)

    sim.ctl("POST", "aws/spot", {})
    sim.ctl("POST", "aws/rebalance", {})
    st = sim.ctl("GET", "state")["aws"]
    check("state shows AWS", st["spot"]["action"] == "terminate" and
          st["rebalance"] is not None and st["lifecycle"] is None and st["tokens"] == 1, st)
    sim.ctl("POST", "reset")
    tok = sim.token()
    check("reset clears spot", sim.aws("spot/instance-action", tok)[0] == 404)
    check("reset clears rebalance", sim.aws("events/recommendations/rebalance", tok)[0] == 404)
    check("reset restores lifecycle",
          sim.aws("autoscaling/target-lifecycle-state", tok)[2] == b"InService")
    sim.ctl("GET", "aws/nosuch", expect=404)
    sim.ctl("GET", "aws/spot", expect=405)


def gcp_ok(name, resp, body=None):
    st, r, data = resp
    check(name + ": 200", st == 200, (st, data))
    if body is not None:
        check(name + ": body", data == body, data)
    check(name + ": Metadata-Flavor", r.getheader("Metadata-Flavor") == "Google",
          r.getheaders())
    check(name + ": ETag", r.getheader("ETag") == hashlib.md5(data).hexdigest()[-16:],
          (r.getheader("ETag"), data))
    return r.getheader("ETag")


def test_gcp_basic(sim):
    sim.fresh()
    st, r, data = sim.request("GET", "/computeMetadata/v1/instance/name")
    check("GCP without Metadata-Flavor -> 403", st == 403 and GCP_MISSING in data.decode(),
          (st, data))
    check("GCP 403 carries Metadata-Flavor", r.getheader("Metadata-Flavor") == "Google")
    st = sim.request("GET", "/computeMetadata/v1/instance/name", {"Metadata": "true"})[0]
    check("Azure header is no GCP header -> 403", st == 403, st)
    st = sim.gcp("instance/name", {"X-Forwarded-For": "10.0.0.1"})[0]
    check("GCP with X-Forwarded-For -> 403", st == 403, st)
    st, r, data = sim.request("GET", "/")
    check("GET / detection", st == 200 and r.getheader("Metadata-Flavor") == "Google", st)

    resp = sim.gcp("instance/name")
    e1 = gcp_ok("name", resp, b"gce-vm0")
    check("value Content-Type", resp[1].getheader("Content-Type") == "application/text")
    e2 = gcp_ok("name again", sim.gcp("instance/name"), b"gce-vm0")
    check("ETag stable for the same value", e1 == e2 and len(e1 or "") == 16, (e1, e2))
    st, _, data = sim.gcp("instance/id")
    check("instance/id is a number", st == 200 and data.decode().isdigit(), data)
    gcp_ok("preempted", sim.gcp("instance/preempted"), b"FALSE")
    gcp_ok("maintenance-event", sim.gcp("instance/maintenance-event"), b"NONE")
    gcp_ok("scheduling/preemptible", sim.gcp("instance/scheduling/preemptible"), b"TRUE")
    st, r, data = sim.gcp("instance/")
    check("directory listing", st == 200 and "preempted" in data.decode().splitlines() and
          "scheduling/" in data.decode().splitlines(), data)
    st, r, data = sim.gcp("instance/?recursive=true")
    doc = json.loads(data) if st == 200 else {}
    check("recursive JSON", doc.get("maintenanceEvent") == "NONE" and
          doc.get("name") == "gce-vm0" and doc.get("scheduling", {}).get("preemptible") == "TRUE",
          data)
    st, _, data = sim.gcp("instance/name?alt=json")
    check("alt=json leaf", st == 200 and json.loads(data) == "gce-vm0", data)
    st, r, _ = sim.gcp("instance/nosuch")
    check("unknown key -> 404", st == 404 and r.getheader("Metadata-Flavor") == "Google", st)
    check("unknown key wait -> 404", sim.gcp("instance/nosuch?wait_for_change=true")[0] == 404)
    check("non-recursive wait on a directory -> 400",
          sim.gcp("instance/?wait_for_change=true&timeout_sec=1")[0] == 400)
    check("bad timeout_sec -> 400",
          sim.gcp("instance/name?wait_for_change=true&timeout_sec=abc")[0] == 400)
    st = sim.request("POST", "/computeMetadata/v1/instance/name",
                     {"Metadata-Flavor": "Google"}, b"x")[0]
    check("POST on GCP -> 405", st == 405, st)

    sim.ctl("POST", "gcp/preempt")
    e3 = gcp_ok("preempted TRUE", sim.gcp("instance/preempted"), b"TRUE")
    sim.ctl("POST", "gcp/maintenance", {"value": "TERMINATE_ON_HOST_MAINTENANCE"})
    gcp_ok("maintenance set", sim.gcp("instance/maintenance-event"),
           b"TERMINATE_ON_HOST_MAINTENANCE")
    sim.ctl("POST", "gcp/maintenance", {"value": 5}, expect=400)
    sim.ctl("POST", "gcp/preempt", {"x": 1}, expect=400)
    sim.ctl("POST", "config", {"gcp_name": "other-gce"})
    check("gcp_name config", sim.gcp("instance/name")[2] == b"other-gce")
    g = sim.ctl("GET", "state")["gcp"]
    check("state shows GCP", g == {"name": "other-gce", "preempted": "TRUE",
                                   "maintenance_event": "TERMINATE_ON_HOST_MAINTENANCE",
                                   "waiters": 0}, g)
    sim.ctl("POST", "reset")
    gcp_ok("reset: preempted FALSE", sim.gcp("instance/preempted"), b"FALSE")
    gcp_ok("reset: maintenance NONE", sim.gcp("instance/maintenance-event"), b"NONE")
    gcp_ok("reset: name", sim.gcp("instance/name"), b"gce-vm0")
    sim.ctl("POST", "gcp/preempt")
    sim.ctl("DELETE", "gcp/preempt")
    e4 = gcp_ok("DELETE preempt -> FALSE", sim.gcp("instance/preempted"), b"FALSE")
    check("ETag follows the value", e4 != e3 and e4 == sim.gcp("instance/preempted")[1]
          .getheader("ETag"), (e3, e4))


def hanging(sim, path, result, timeout=40):
    t0 = time.monotonic()
    try:
        st, r, data = sim.gcp(path, timeout=timeout)
        result.update(status=st, body=data, etag=r.getheader("ETag"))
    except Exception as e:       # reported through the result
        result["error"] = repr(e)
    result["elapsed"] = time.monotonic() - t0
    result["done"] = time.monotonic()


def waiters(sim):
    return sim.ctl("GET", "gcp")["waiters"]


def test_gcp_hanging(sim):
    sim.fresh()
    st, r, _ = sim.gcp("instance/preempted")
    etag_false = r.getheader("ETag")

    t0 = time.monotonic()
    st, _, data = sim.gcp("instance/preempted?wait_for_change=true&last_etag=0&timeout_sec=30")
    check("old etag answers at once", st == 200 and data == b"FALSE" and
          time.monotonic() - t0 < 10, (st, data))

    t0 = time.monotonic()
    st, r, data = sim.gcp("instance/preempted?wait_for_change=true&timeout_sec=1")
    el = time.monotonic() - t0
    check("timeout_sec=1 times out with the value", st == 200 and data == b"FALSE" and
          1.0 <= el < 10 and r.getheader("ETag") == etag_false, (st, data, el))

    result = {}
    th = threading.Thread(target=hanging, args=(sim, "instance/preempted?wait_for_change=true"
                                                "&last_etag=%s&timeout_sec=30" % etag_false,
                                                result))
    th.start()
    blocked = wait_until(lambda: waiters(sim) == 1, 10, 0.01)
    check("hanging GET blocks", blocked and th.is_alive(), result)
    recs = [x for x in sim.ctl("GET", "requests") if "wait_for_change" in x["query"]]
    check("pending hanging GET recorded as not done", recs and recs[-1]["done"] is False and
          recs[-1]["status"] == 0, recs[-1:])
    other = sim.gcp("instance/name")[0]
    other_done = time.monotonic()
    sim.ctl("GET", "state")
    check("a blocked GET blocks neither requests nor control", other == 200 and
          th.is_alive(), other)
    sim.ctl("POST", "gcp/preempt")
    th.join(35)
    check("hanging GET returns on change", result.get("status") == 200 and
          result.get("body") == b"TRUE" and result.get("etag") != etag_false and
          result.get("elapsed", 99) < 30 and other_done < result.get("done", 0), result)
    check("waiters back to 0", waiters(sim) == 0)
    recs = [x for x in sim.ctl("GET", "requests") if "wait_for_change" in x["query"]]
    check("hanging GET record completed", recs[-1]["done"] is True and
          recs[-1]["status"] == 200, recs[-1])

    # an unrelated change does not answer a wait on another key
    st, r, _ = sim.gcp("instance/maintenance-event")
    etag_none = r.getheader("ETag")
    result = {}
    th = threading.Thread(target=hanging, args=(
        sim, "instance/maintenance-event?wait_for_change=true&last_etag=%s&timeout_sec=30"
        % etag_none, result))
    th.start()
    wait_until(lambda: waiters(sim) == 1, 10, 0.01)
    sim.ctl("DELETE", "gcp/preempt")
    sim.ctl("POST", "gcp/maintenance", {"value": "MIGRATE_ON_HOST_MAINTENANCE"})
    th.join(35)
    check("wait answers its own key only", result.get("status") == 200 and
          result.get("body") == b"MIGRATE_ON_HOST_MAINTENANCE", result)

    # a wait with no last_etag blocks too, and reset wakes it
    result = {}
    th = threading.Thread(target=hanging, args=(
        sim, "instance/maintenance-event?wait_for_change=true&timeout_sec=30", result))
    th.start()
    wait_until(lambda: waiters(sim) == 1, 10, 0.01)
    check("no last_etag blocks", th.is_alive())
    sim.ctl("POST", "reset")
    sim.ctl("POST", "config", {"rate_limit": 0})
    th.join(35)
    check("reset wakes a wait", result.get("status") == 200 and result.get("body") == b"NONE",
          result)

    # recursive waits on a directory
    st, r, _ = sim.gcp("instance/?recursive=true")
    etag_dir = r.getheader("ETag")
    result = {}
    th = threading.Thread(target=hanging, args=(
        sim, "instance/?recursive=true&wait_for_change=true&last_etag=%s&timeout_sec=30"
        % etag_dir, result))
    th.start()
    wait_until(lambda: waiters(sim) == 1, 10, 0.01)
    sim.ctl("POST", "gcp/preempt")
    th.join(35)
    body = json.loads(result.get("body") or b"{}")
    check("recursive wait returns on change", result.get("status") == 200 and
          body.get("preempted") == "TRUE", result)


def test_cloud_records(sim):
    sim.fresh()
    sim.ctl("DELETE", "requests")
    tok = sim.token()
    sim.aws("instance-id", tok)
    sim.gcp("instance/name?alt=text")
    sim.request("GET", "/")
    recs = sim.ctl("GET", "requests")
    check("AWS/GCP records", [(x["method"], x["path"], x["status"]) for x in recs] == [
        ("PUT", "/latest/api/token", 200), ("GET", "/latest/meta-data/instance-id", 200),
        ("GET", "/computeMetadata/v1/instance/name", 200), ("GET", "/", 200)], recs)
    if len(recs) == 4:
        check("AWS record headers lower-cased",
              recs[0]["headers"].get(TTL_HEADER.lower()) == "60" and
              recs[1]["headers"].get(TOKEN_HEADER.lower()) == tok and
              all(k == k.lower() for x in recs for k in x["headers"]), recs[:2])
        check("GCP record query", recs[2]["query"] == {"alt": ["text"]} and
              recs[2]["headers"].get("metadata-flavor") == "Google" and
              recs[2]["done"] is True and isinstance(recs[2]["conn"], int), recs[2])

    sim.ctl("POST", "faults", {"status": 500})     # default path /metadata
    check("default fault path spares AWS", sim.aws("instance-id", tok)[0] == 200)
    check("default fault path spares GCP", sim.gcp("instance/name")[0] == 200)
    sim.ctl("DELETE", "faults")
    sim.ctl("POST", "faults", {"path": "/latest/meta-data/spot", "status": 500})
    check("AWS fault spares other items", sim.aws("instance-id", tok)[0] == 200)
    check("AWS fault hits its prefix", sim.aws("spot/instance-action", tok)[0] == 500)
    check("AWS fault consumed", sim.aws("spot/instance-action", tok)[0] == 404)
    sim.ctl("POST", "faults", {"path": "/computeMetadata/v1/instance/preempted",
                               "status": 503, "body": "maintenance"})
    st, _, data = sim.gcp("instance/preempted")
    check("GCP fault", st == 503 and data == b"maintenance", (st, data))
    check("GCP fault consumed", sim.gcp("instance/preempted")[0] == 200)
    rec = sim.ctl("GET", "requests")[-2]
    check("fault recorded on GCP", rec["fault"] == "status" and rec["status"] == 503, rec)
    sim.ctl("POST", "faults", {"path": "/latest/api/token", "kind": "drop"})
    try:
        sim.token()
        dropped = False
    except (http.client.HTTPException, ConnectionError):
        dropped = True
    check("drop fault on the token PUT", dropped)

    sim.ctl("POST", "config", {"rate_limit": 2})
    c = sim.conn()
    statuses = [sim.md(SE, conn=c)[0],
                sim.request("PUT", "/latest/api/token", {TTL_HEADER: "60"}, conn=c)[0],
                sim.request("GET", "/computeMetadata/v1/instance/name",
                            {"Metadata-Flavor": "Google"}, conn=c)[0]]
    c.close()
    allrecs = sim.ctl("GET", "requests")     # the records are the whole window
    monos = [x["mono"] for x in allrecs]
    expected = [429 if sum(1 for x in monos if m - 1.0 < x <= m) > 2 else None
                for m in monos[-3:]]
    check("one rate limit for all clouds",
          all(e is None or s == e for s, e in zip(statuses, expected)) and
          all(s != 429 for s, e in zip(statuses, expected) if e is None), (statuses, expected))
    if monos[-1] - monos[-3] < 1.0:
        check("third request in a second -> 429 whatever the cloud", statuses[2] == 429,
              statuses)
        check("GCP 429 recorded", allrecs[-1]["status"] == 429, allrecs[-1])
    sim.ctl("POST", "config", {"rate_limit": 0})


def test_cli():
    sim = Sim("--vm-name", "cli-vm", "--rate-limit", "0", "--first-call-delay", "0.4",
              "--started-ttl", "0", "--no-auto-start", "--aws-instance-id", "i-0aaaabbbbccccdddd",
              "--aws-v1-allowed", "--aws-life-cycle", "on-demand", "--gcp-name", "cli-gce")
    try:
        cfg = sim.ctl("GET", "config")
        check("CLI config", cfg["vm_name"] == "cli-vm" and cfg["rate_limit"] == 0 and
              cfg["started_ttl"] == 0 and cfg["auto_start"] is False and
              cfg["first_call_delay"] == 0.4, cfg)
        check("CLI cloud config", cfg["aws_instance_id"] == "i-0aaaabbbbccccdddd" and
              cfg["aws_v1_allowed"] is True and cfg["aws_life_cycle"] == "on-demand" and
              cfg["gcp_name"] == "cli-gce", cfg)
        check("CLI AWS (IMDSv1 allowed)",
              sim.aws("instance-id")[2] == b"i-0aaaabbbbccccdddd" and
              sim.aws("instance-life-cycle")[2] == b"on-demand")
        check("CLI GCP name", sim.gcp("instance/name")[2] == b"cli-gce")
        t0 = time.monotonic()
        d = sim.doc()
        check("CLI first-call delay", time.monotonic() - t0 >= 0.4 and
              d == {"DocumentIncarnation": 1, "Events": []}, d)
        check("CLI vm name", sim.doc(COMPUTE)["name"] == "cli-vm")
    finally:
        t0 = time.monotonic()
        rc = sim.stop(signal.SIGINT)
        check("SIGINT exits 0 promptly", rc == 0 and time.monotonic() - t0 < 3, rc)


def main():
    start = time.monotonic()
    sim = Sim()
    try:
        for t in (test_headers, test_rate, test_lifecycle, test_versions,
                  test_faults, test_records, test_first_call, test_aws_tokens,
                  test_aws_items, test_gcp_basic, test_gcp_hanging, test_cloud_records,
                  test_engine_support):
            try:
                t(sim)
            except Exception:
                check(t.__name__, False, traceback.format_exc())
        try:
            test_cli()
        except Exception:
            check("test_cli", False, traceback.format_exc())
    finally:
        t0 = time.monotonic()
        rc = sim.stop()
        check("SIGTERM exits 0 promptly", rc == 0 and time.monotonic() - t0 < 3, rc)
    print("elapsed %.1f s" % (time.monotonic() - start))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
