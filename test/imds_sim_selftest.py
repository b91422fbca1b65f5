#!/usr/bin/python3
"""Self-test of test/imds-sim.

Run from anywhere: /usr/bin/python3 test/imds_sim_selftest.py
Starts the simulator on a free port and checks the Azure-facing rules, the
event lifecycle, fault injection, the request record and the control API,
then the AWS EC2 IMDS side (IMDSv2 tokens, spot, rebalance and lifecycle
items, identity, tags, role credentials, maintenance events), the Auto
Scaling API (SigV4 checked with an independent signer here and with curl's
--aws-sigv4 when curl is there, lifecycle waits, heartbeats, timeouts), the
GCP side (Metadata-Flavor, ETags, hanging GETs) and what the engine tests
lean on (a moving spot time, approval statuses, fault recipes, Azure events
moved or re-created).
The last line of output is "N passed, N failed"; the exit status is 1 when
anything failed.
"""

import datetime
import email.utils
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import xml.etree.ElementTree as ET

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
    r = sim.ctl("POST", "aws/spot", {"notice_in": 120, "moving_time": True, "jitter": 0})
    check("moving spot view", r["spot"]["moving_time"] is True and
          r["spot"]["action"] == "terminate" and r["spot"]["jitter"] == 0, r)

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
    sim.ctl("POST", "aws/spot", {"notice_in": 120, "jitter": 1}, expect=400)
    sim.ctl("POST", "aws/spot", {"moving_time": True, "jitter": 61}, expect=400)
    r = sim.ctl("POST", "aws/spot", {"notice_in": 120, "moving_time": True})
    check("moving spot time jitters by 1 s by default", r["spot"]["jitter"] == 1, r)
    lefts = []
    for _ in range(40):
        before, when, after = served()
        if when is not None:
            lefts.append((when - int(before), when - int(after)))
    check("jittered spot time stays within now + 120 +- 1 s", len(lefts) == 40 and
          all(119 <= a and b <= 121 for a, b in lefts), lefts)
    check("jittered spot time wobbles", len({a for a, _ in lefts}) > 1, lefts)
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


# -- AWS: identity, tags, credentials, maintenance -----------------------------

MAINT_TIME = re.compile(r"^[1-9][0-9]? (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                        r"\d{4} \d\d:\d\d:\d\d GMT$")


def parse_maint(text):
    return datetime.datetime.strptime(text, "%d %b %Y %H:%M:%S GMT").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def aws_json(sim, item, tok):
    st, _, data = sim.aws(item, tok)
    if st != 200:
        raise AssertionError("GET %s -> %d %r" % (item, st, data))
    return json.loads(data)


def test_aws_identity(sim):
    sim.fresh()
    tok = sim.token(300)
    st, _, data = sim.request("GET", "/latest/", {TOKEN_HEADER: tok})
    check("/latest lists dynamic and meta-data", st == 200 and data == b"dynamic\nmeta-data",
          (st, data))
    st, _, data = sim.request("GET", "/latest/dynamic", {TOKEN_HEADER: tok})
    check("dynamic/ listing", st == 200 and data == b"instance-identity/", (st, data))
    st, _, data = sim.request("GET", "/latest/dynamic/instance-identity/", {TOKEN_HEADER: tok})
    check("instance-identity/ listing", st == 200 and data == b"document", (st, data))
    path = "/latest/dynamic/instance-identity/document"
    check("identity document needs a token", sim.request("GET", path)[0] == 401)
    check("identity document: bad token -> 401",
          sim.request("GET", path, {TOKEN_HEADER: "bogus"})[0] == 401)
    st, r, data = sim.request("GET", path, {TOKEN_HEADER: tok})
    doc = json.loads(data) if st == 200 else {}
    check("identity document", st == 200 and doc.get("region") == "eu-west-1" and
          doc.get("instanceId") == "i-0123456789abcdef0" and
          doc.get("instanceType") == "m5.large" and
          doc.get("availabilityZone") == "eu-west-1a" and
          doc.get("accountId") == "123456789012" and
          doc.get("imageId") == "ami-0abcdef1234567890" and
          doc.get("architecture") == "x86_64" and doc.get("version") == "2017-09-30" and
          "kernelId" in doc and doc["kernelId"] is None and
          parse_z(doc.get("pendingTime")) is not None and
          parse_z(doc["pendingTime"]) <= time.time(), doc)
    check("identity document written as EC2 does", data.startswith(b'{\n  "accountId" : "') and
          r.getheader("Content-Type", "").startswith("text/plain"), data[:40])
    check("identity agrees with placement",
          sim.aws("placement/region", tok)[2] == b"eu-west-1" and
          sim.aws("placement/availability-zone", tok)[2] == b"eu-west-1a")
    st, _, data = sim.request("GET", "/2021-03-23/dynamic/instance-identity/document",
                              {TOKEN_HEADER: tok})
    check("versioned identity path", st == 200 and json.loads(data)["region"] == "eu-west-1", st)

    sim.ctl("POST", "config", {"aws_region": "us-east-2", "aws_instance_id": "i-0aaa"})
    doc = json.loads(sim.request("GET", path, {TOKEN_HEADER: tok})[2])
    check("region config moves placement and identity together",
          doc["region"] == "us-east-2" and doc["availabilityZone"] == "us-east-2a" and
          doc["instanceId"] == "i-0aaa" and
          sim.aws("placement/region", tok)[2] == b"us-east-2" and
          sim.aws("placement/availability-zone", tok)[2] == b"us-east-2a", doc)
    sim.ctl("POST", "config", {"aws_region": "Not A Region"}, expect=400)
    sim.ctl("POST", "config", {"aws_region": "eu-west-1", "aws_instance_id": "i-0123456789abcdef0"})

    st, _, data = sim.aws("", tok)
    check("meta-data lists iam/, tags/, events/",
          all(x in data.decode().split("\n") for x in ("iam/", "tags/", "events/")), data)
    st, _, data = sim.aws("tags/instance/", tok)
    check("tags listing", st == 200 and data == b"Name\naws:autoscaling:groupName", (st, data))
    st, r, data = sim.aws("tags/instance/aws:autoscaling:groupName", tok)
    check("group name tag", st == 200 and data == b"spot-asg" and
          r.getheader("Content-Type", "").startswith("text/plain"), (st, data))
    check("tags/ lists instance/", sim.aws("tags", tok)[2] == b"instance/")
    sim.ctl("POST", "config", {"aws_asg_name": "other-asg",
                               "aws_tags": {"team": "batch", "Name": None}})
    check("tags follow aws_asg_name and aws_tags",
          sim.aws("tags/instance/aws:autoscaling:groupName", tok)[2] == b"other-asg" and
          sim.aws("tags/instance/team", tok)[2] == b"batch" and
          sim.aws("tags/instance/Name", tok)[0] == 404 and
          sim.aws("tags/instance", tok)[2] == b"aws:autoscaling:groupName\nteam")
    sim.ctl("POST", "config", {"aws_asg_name": None, "aws_tags": {}})
    check("no group: no group tag",
          sim.aws("tags/instance/aws:autoscaling:groupName", tok)[0] == 404 and
          sim.aws("tags/instance", tok)[2] == b"Name")
    sim.ctl("POST", "config", {"aws_metadata_tags": False})
    check("metadata tags off: tags/ -> 404",
          [sim.aws(i, tok)[0] for i in ("tags", "tags/", "tags/instance/",
                                        "tags/instance/Name")] == [404] * 4)
    check("metadata tags off: not listed", "tags/" not in sim.aws("", tok)[2].decode())
    for bad in ({"aws_metadata_tags": "no"}, {"aws_tags": {"a/b": "x"}},
                {"aws_tags": {"k": "a\nb"}}, {"aws_tags": []}, {"aws_asg_name": ""}):
        sim.ctl("POST", "config", bad, expect=400)
    view = sim.ctl("GET", "aws")
    check("view: tags null when off", view["tags"] is None and view["region"] == "eu-west-1")
    sim.ctl("POST", "reset")
    tok = sim.token()
    check("reset restores tags and group",
          sim.aws("tags/instance/aws:autoscaling:groupName", tok)[2] == b"spot-asg")


def test_aws_credentials(sim):
    sim.fresh()
    tok = sim.token(300)
    st, _, data = sim.aws("iam/", tok)
    check("iam/ listing", st == 200 and data == b"info\nsecurity-credentials/", (st, data))
    st, _, data = sim.aws("iam/security-credentials/", tok)
    check("role listed", st == 200 and data == b"spot-agent-role", (st, data))
    check("credentials need a token",
          sim.aws("iam/security-credentials/spot-agent-role")[0] == 401)
    st, r, data = sim.aws("iam/security-credentials/spot-agent-role", tok)
    c = json.loads(data) if st == 200 else {}
    check("credentials JSON keys in EC2's order", list(c) ==
          ["Code", "LastUpdated", "Type", "AccessKeyId", "SecretAccessKey", "Token",
           "Expiration"], c)
    check("credentials written as EC2 does", data.startswith(b'{\n  "Code" : "Success",\n'),
          data[:40])
    check("credentials values", c.get("Code") == "Success" and c.get("Type") == "AWS-HMAC" and
          re.fullmatch(r"ASIA[A-Z2-7]{16}", c.get("AccessKeyId", "")) and
          len(c.get("SecretAccessKey", "")) == 40 and len(c.get("Token", "")) > 400 and
          ISO8601.match(c.get("LastUpdated", "")) and ISO8601.match(c.get("Expiration", "")), c)
    check("credentials live an hour",
          parse_z(c["Expiration"]) - parse_z(c["LastUpdated"]) == 3600 and
          abs(parse_z(c["LastUpdated"]) - time.time()) < 60, c)
    view = sim.ctl("GET", "aws")
    check("view shows the current credentials",
          view["credentials"]["AccessKeyId"] == c["AccessKeyId"] and
          view["credentials"]["Token"] == c["Token"] and view["credentials"]["valid"] == 1 and
          view["role"] == "spot-agent-role", view["credentials"])
    info = aws_json(sim, "iam/info", tok)
    check("iam/info", info.get("Code") == "Success" and info.get("InstanceProfileArn") ==
          "arn:aws:iam::123456789012:instance-profile/spot-agent-role" and
          "InstanceProfileId" in info, info)
    check("same credentials on the next read",
          aws_json(sim, "iam/security-credentials/spot-agent-role", tok) == c)

    r = sim.ctl("POST", "aws/credentials/rotate", {})
    c2 = aws_json(sim, "iam/security-credentials/spot-agent-role", tok)
    check("rotate issues a new set", c2["AccessKeyId"] != c["AccessKeyId"] and
          c2["Token"] != c["Token"] and r["credentials"]["AccessKeyId"] == c2["AccessKeyId"] and
          r["credentials"]["valid"] == 2, r["credentials"])
    r = sim.ctl("POST", "aws/credentials/rotate", {"expire_old": True, "lifetime": 900})
    c3 = aws_json(sim, "iam/security-credentials/spot-agent-role", tok)
    check("rotate with expire_old and lifetime", r["credentials"]["valid"] == 1 and
          parse_z(c3["Expiration"]) - parse_z(c3["LastUpdated"]) == 900 and
          sim.ctl("GET", "config")["aws_credentials_lifetime"] == 900, r["credentials"])
    for bad in ({"expire_old": 1}, {"lifetime": 0}, {"lifetime": "1"}, {"colour": 1}):
        sim.ctl("POST", "aws/credentials/rotate", bad, expect=400)
    for bad in ({"aws_credentials_lifetime": 0}, {"aws_credentials_overlap": -1},
                {"aws_role": "a/b"}):
        sim.ctl("POST", "config", bad, expect=400)

    sim.ctl("POST", "config", {"aws_role": "other-role"})
    check("role name follows aws_role",
          sim.aws("iam/security-credentials/", tok)[2] == b"other-role" and
          sim.aws("iam/security-credentials/other-role", tok)[0] == 200 and
          sim.aws("iam/security-credentials/spot-agent-role", tok)[0] == 404)
    sim.ctl("POST", "config", {"aws_role": None})
    check("no role: iam/ -> 404", [sim.aws(i, tok)[0] for i in (
        "iam", "iam/", "iam/info", "iam/security-credentials/",
        "iam/security-credentials/other-role")] == [404] * 5)
    check("no role: not listed", "iam/" not in sim.aws("", tok)[2].decode())
    sim.ctl("POST", "reset")
    tok = sim.token()
    c4 = aws_json(sim, "iam/security-credentials/spot-agent-role", tok)
    check("reset: fresh credentials, role back", c4["AccessKeyId"] not in (
        c["AccessKeyId"], c2["AccessKeyId"], c3["AccessKeyId"]) and
        parse_z(c4["Expiration"]) - parse_z(c4["LastUpdated"]) == 3600, c4)


def test_aws_maintenance(sim):
    sim.fresh()
    tok = sim.token(300)
    st, r, data = sim.aws("events/maintenance/scheduled", tok)
    check("no maintenance: []", st == 200 and data == b"[]" and
          r.getheader("Content-Type", "").startswith("text/plain"), (st, data))
    check("no history: []", sim.aws("events/maintenance/history", tok)[2] == b"[]")
    check("events/ lists maintenance/", sim.aws("events", tok)[2] == b"maintenance/")
    check("events/maintenance/ listing",
          sim.aws("events/maintenance", tok)[2] == b"history\nscheduled")
    t0 = time.time()
    ev = sim.ctl("POST", "aws/maintenance", {"code": "system-reboot", "not_before_in": 600,
                                             "duration": 3600, "description": "reboot me"})
    got = aws_json(sim, "events/maintenance/scheduled", tok)
    e = got[0] if len(got) == 1 else {}
    check("one active event", len(got) == 1 and list(e) == [
        "NotBefore", "Code", "Description", "EventId", "NotAfter", "State"] and
        e["Code"] == "system-reboot" and e["Description"] == "reboot me" and
        e["State"] == "active" and e["EventId"] == ev["EventId"] and
        re.fullmatch(r"instance-event-[0-9a-f]{17}", e["EventId"]), got)
    check("maintenance time format", MAINT_TIME.match(e.get("NotBefore", "")) and
          MAINT_TIME.match(e.get("NotAfter", "")), e)
    nb = parse_maint(e["NotBefore"])
    check("NotBefore is now + 600, NotAfter + 3600", int(t0) + 599 <= nb <= time.time() + 601 and
          parse_maint(e["NotAfter"]) - nb == 3600, (e, t0))
    check("control answer is the event", {k: ev[k] for k in e} == e and "changed" in ev, ev)
    check("active event not in history",
          sim.aws("events/maintenance/history", tok)[2] == b"[]")

    for code in ("instance-reboot", "system-maintenance", "instance-retirement",
                 "instance-stop"):
        x = sim.ctl("POST", "aws/maintenance", {"code": code, "id": "instance-event-" + code})
        check("code %s accepted" % code, x["Code"] == code and x["Description"] and
              x["EventId"] == "instance-event-" + code, x)
    for bad in ({"code": "reboot"}, {"code": "instance-reboot", "colour": 1},
                {"not_before_in": "soon"}, {"state": "done"}, {"duration": -1},
                {"not_before": "x", "not_before_in": 5}):
        sim.ctl("POST", "aws/maintenance", bad, expect=400)
    sim.ctl("POST", "aws/maintenance", {"id": "instance-event-instance-stop"}, expect=409)
    check("five events scheduled", len(aws_json(sim, "events/maintenance/scheduled", tok)) == 5)

    sim.ctl("POST", "aws/maintenance/" + ev["EventId"], {"state": "completed"})
    sched = aws_json(sim, "events/maintenance/scheduled", tok)
    hist = aws_json(sim, "events/maintenance/history", tok)
    check("completed event leaves scheduled (linger 0)",
          ev["EventId"] not in [x["EventId"] for x in sched] and len(sched) == 4, sched)
    check("completed event in history", len(hist) == 1 and hist[0]["EventId"] == ev["EventId"] and
          hist[0]["State"] == "completed", hist)
    sim.ctl("POST", "config", {"aws_maintenance_linger": 1.0})
    sim.ctl("POST", "aws/maintenance/instance-event-instance-stop", {"state": "canceled"})
    sched = aws_json(sim, "events/maintenance/scheduled", tok)
    check("canceled event lingers in scheduled",
          {x["EventId"]: x["State"] for x in sched}.get("instance-event-instance-stop") ==
          "canceled", sched)
    check("canceled event in history at once", [x["State"] for x in aws_json(
        sim, "events/maintenance/history", tok)] == ["completed", "canceled"])
    check("it leaves scheduled after the linger", wait_until(lambda: len(aws_json(
        sim, "events/maintenance/scheduled", tok)) == 3, 5))
    sim.ctl("POST", "aws/maintenance/nosuch", {"state": "completed"}, expect=404)
    sim.ctl("POST", "aws/maintenance/" + ev["EventId"], {"state": "gone"}, expect=400)
    sim.ctl("POST", "aws/maintenance/" + ev["EventId"], {}, expect=400)
    x = sim.ctl("POST", "aws/maintenance/instance-event-instance-reboot",
                {"not_before_in": -60, "duration": None})
    check("maintenance moved into the past, no NotAfter",
          parse_maint(x["NotBefore"]) <= time.time() - 59 and "NotAfter" not in x and
          x["State"] == "active", x)
    x = sim.ctl("POST", "aws/maintenance", {"not_before": "soon", "not_after": "later",
                                            "id": "raw"})
    check("raw times served verbatim", [e for e in aws_json(
        sim, "events/maintenance/scheduled", tok) if e["EventId"] == "raw"] == [
        {"NotBefore": "soon", "Code": "system-reboot", "Description": "scheduled reboot",
         "EventId": "raw", "NotAfter": "later", "State": "active"}])
    view = sim.ctl("GET", "aws")
    check("view lists every maintenance event", len(view["maintenance"]) == 6 and
          len(sim.ctl("GET", "aws/maintenance")) == 6, view["maintenance"])
    r = sim.ctl("DELETE", "aws/maintenance")
    check("DELETE clears scheduled and history", r["maintenance"] == [] and
          sim.aws("events/maintenance/scheduled", tok)[2] == b"[]" and
          sim.aws("events/maintenance/history", tok)[2] == b"[]")
    sim.ctl("POST", "aws/maintenance", {})
    sim.ctl("POST", "reset")
    tok = sim.token()
    check("reset clears maintenance", sim.aws("events/maintenance/scheduled", tok)[2] == b"[]")


# -- AWS Auto Scaling Query API ------------------------------------------------

ASG_NS = "{http://autoscaling.amazonaws.com/doc/2011-01-01/}"
IID = "i-0123456789abcdef0"


def sign_v4(method, host, path, query, headers, body, key, secret, region, service, when):
    """An independent SigV4 signer: returns the Authorization value; headers
    (lower-case names) must hold every header to sign."""
    amz = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when))
    headers["x-amz-date"] = amz
    headers["host"] = host
    names = sorted(headers)
    pairs = sorted((urllib.parse.quote(k, safe="-_.~"), urllib.parse.quote(v, safe="-_.~"))
                   for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True))
    creq = "\n".join([method, path, "&".join("%s=%s" % p for p in pairs),
                      "".join("%s:%s\n" % (n, headers[n].strip()) for n in names),
                      ";".join(names), hashlib.sha256(body).hexdigest()])
    scope = "%s/%s/%s/aws4_request" % (amz[:8], region, service)
    sts = "AWS4-HMAC-SHA256\n%s\n%s\n%s" % (amz, scope, hashlib.sha256(creq.encode()).hexdigest())
    k = ("AWS4" + secret).encode()
    for part in (amz[:8], region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    return "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        key, scope, ";".join(names), sig)


def creds(sim):
    return sim.ctl("GET", "aws")["credentials"]


def asg_form(action, **params):
    p = [("Action", action), ("Version", "2011-01-01")]
    p += [(k, v) for k, v in params.items() if v is not None]
    return urllib.parse.urlencode(p)


def complete_form(result="CONTINUE", **kw):
    params = {"AutoScalingGroupName": "spot-asg", "LifecycleHookName": "spot-drain",
              "InstanceId": IID, "LifecycleActionResult": result}
    params.update(kw)
    return asg_form("CompleteLifecycleAction", **params)


def heartbeat_form(**kw):
    params = {"AutoScalingGroupName": "spot-asg", "LifecycleHookName": "spot-drain",
              "InstanceId": IID}
    params.update(kw)
    return asg_form("RecordLifecycleActionHeartbeat", **params)


def asg_call(sim, form, c=None, method="POST", path="/__aws/autoscaling/", query="",
             region="eu-west-1", service="autoscaling", when=None, secret=None, key=None,
             token="same", sign=True, tamper=None, drop=(), auth=None, timeout=5):
    """(status, root element or None, body text) of a signed call."""
    c = c or creds(sim)
    body = form.encode() if method == "POST" else b""
    if method == "GET":
        query = form
    headers = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}
    if method == "GET":
        del headers["content-type"]
    tok = c["Token"] if token == "same" else token
    if tok is not None:
        headers["x-amz-security-token"] = tok
    host = "127.0.0.1:%d" % sim.port
    if sign:
        headers["authorization"] = sign_v4(
            method, host, path, query, headers, body, key or c["AccessKeyId"],
            secret or c["SecretAccessKey"], region, service,
            time.time() if when is None else when)
    if auth is not None:
        headers["authorization"] = auth
    if tamper is not None:
        body = tamper
    for name in drop:
        headers.pop(name, None)
    headers["host"] = host
    st, r, data = sim.request(method, path + ("?" + query if query else ""), headers, body,
                              timeout=timeout)
    text = data.decode()
    try:
        root = ET.fromstring(data) if data else None
    except ET.ParseError:
        root = None
    return st, root, text, r


def asg_code(root):
    el = root.find(ASG_NS + "Error/" + ASG_NS + "Code") if root is not None else None
    return el.text if el is not None else None


def asg_message(root):
    el = root.find(ASG_NS + "Error/" + ASG_NS + "Message") if root is not None else None
    return el.text if el is not None else ""


def asg_state(sim):
    return sim.ctl("GET", "aws/autoscaling")


def test_asg_sigv4(sim):
    sim.fresh()
    sim.ctl("POST", "aws/lifecycle", {"state": "Terminated", "wait": True})
    st, root, text, r = asg_call(sim, heartbeat_form())
    check("signed heartbeat accepted", st == 200 and root is not None and
          root.tag == ASG_NS + "RecordLifecycleActionHeartbeatResponse" and
          root.find(ASG_NS + "RecordLifecycleActionHeartbeatResult") is not None and
          r.getheader("Content-Type", "").startswith("text/xml"), (st, text))
    rid = root.find(ASG_NS + "ResponseMetadata/" + ASG_NS + "RequestId") if root is not None \
        else None
    check("RequestId in body and header", rid is not None and re.fullmatch(
        r"[0-9a-f-]{36}", rid.text) and r.getheader("x-amzn-RequestId") == rid.text, text)
    call = asg_state(sim)["calls"][-1]
    check("call recorded with a verified signature", call["action"] ==
          "RecordLifecycleActionHeartbeat" and call["signature_ok"] is True and
          call["status"] == 200 and call["code"] is None and call["done"] and
          call["params"]["InstanceId"] == IID and call["request_id"] == rid.text, call)

    def refused(name, status, code, message=None, **kw):
        st, root, text, _ = asg_call(sim, heartbeat_form(), **kw)
        ok = st == status and asg_code(root) == code and \
            (message is None or message in asg_message(root))
        typ = root.find(ASG_NS + "Error/" + ASG_NS + "Type") if root is not None else None
        check(name, ok and typ is not None and typ.text == "Sender" and
              root.tag == ASG_NS + "ErrorResponse", (st, text[:600]))
        call = asg_state(sim)["calls"][-1]
        check(name + ": recorded", call["status"] == status and call["code"] == code and
              call["signature_ok"] is None, call)

    c = creds(sim)
    refused("wrong secret -> SignatureDoesNotMatch", 403, "SignatureDoesNotMatch",
            "The request signature we calculated does not match", secret="x" * 40)
    refused("body changed after signing -> SignatureDoesNotMatch", 403,
            "SignatureDoesNotMatch", "Canonical String", tamper=heartbeat_form(
                InstanceId="i-0fffffffffffffff0").encode())
    refused("unknown key -> InvalidClientTokenId", 403, "InvalidClientTokenId",
            "The security token included in the request is invalid.",
            key="ASIAAAAAAAAAAAAAAAAA")
    refused("no token -> InvalidClientTokenId", 403, "InvalidClientTokenId", token=None)
    refused("unknown token -> InvalidClientTokenId", 403, "InvalidClientTokenId",
            token="IQoJnot-issued")
    refused("no Authorization -> MissingAuthenticationToken", 403,
            "MissingAuthenticationToken", "Request is missing Authentication Token",
            sign=False)
    refused("Signature missing -> IncompleteSignature", 400, "IncompleteSignature",
            "Authorization header requires 'Signature' parameter.",
            auth="AWS4-HMAC-SHA256 Credential=%s/20261207/eu-west-1/autoscaling/aws4_request, "
                 "SignedHeaders=host;x-amz-date" % c["AccessKeyId"])
    refused("other algorithm -> IncompleteSignature", 400, "IncompleteSignature",
            auth="AWS3 Credential=x")
    refused("no X-Amz-Date -> IncompleteSignature", 400, "IncompleteSignature",
            "'X-Amz-Date' or a 'Date' header", drop=("x-amz-date",))
    refused("wrong region -> SignatureDoesNotMatch", 403, "SignatureDoesNotMatch",
            "Credential should be scoped to a valid region, not 'us-east-1'",
            region="us-east-1")
    refused("wrong service -> SignatureDoesNotMatch", 403, "SignatureDoesNotMatch",
            "correct service", service="ec2")
    refused("date 6 min old -> Signature expired", 403, "SignatureDoesNotMatch",
            "Signature expired: ", when=time.time() - 360)
    refused("date 6 min ahead -> not yet current", 403, "SignatureDoesNotMatch",
            "Signature not yet current: ", when=time.time() + 360)
    st = asg_call(sim, heartbeat_form(), when=time.time() - 200)[0]
    check("date 200 s off still accepted", st == 200, st)

    # The query string is part of the signature, sorted as AWS sorts it.
    st = asg_call(sim, heartbeat_form(), query="b=2&a=1")[0]
    check("signed query accepted", st == 200, st)
    hb = heartbeat_form()
    st, root, text, _ = asg_call(sim, hb, method="GET")
    check("GET with the parameters in the query", st == 200, (st, text[:300]))

    # Credentials of an older set stay valid until they expire.
    old = creds(sim)
    sim.ctl("POST", "aws/credentials/rotate", {})
    new = creds(sim)
    check("old set still accepted after a rotation", asg_call(sim, hb, c=old)[0] == 200)
    check("new set accepted", asg_call(sim, hb, c=new)[0] == 200)
    refused("key of one set, token of another -> InvalidClientTokenId", 403,
            "InvalidClientTokenId", c=new, token=old["Token"], key=new["AccessKeyId"])
    sim.ctl("POST", "aws/credentials/rotate", {"expire_old": True})
    newest = creds(sim)
    refused("expired set -> ExpiredToken", 403, "ExpiredToken",
            "The security token included in the request is expired", c=old)
    refused("set expired by rotation -> ExpiredToken", 403, "ExpiredToken", c=new)
    check("newest set accepted", asg_call(sim, hb, c=newest)[0] == 200)

    # Natural rotation: lifetime 4 s, overlap 2 s.
    sim.ctl("POST", "config", {"aws_credentials_overlap": 2})
    sim.ctl("POST", "aws/credentials/rotate", {"lifetime": 4, "expire_old": True})
    first = creds(sim)
    check("a new set appears overlap seconds before the old expires", wait_until(
        lambda: creds(sim)["AccessKeyId"] != first["AccessKeyId"], 5))
    second = creds(sim)
    check("the new set is issued at old Expiration - overlap",
          parse_z(second["LastUpdated"]) == parse_z(first["Expiration"]) - 2 and
          parse_z(second["Expiration"]) == parse_z(second["LastUpdated"]) + 4, (first, second))
    st_old = asg_call(sim, hb, c=first)[0]
    if time.time() < parse_z(first["Expiration"]):
        check("during the overlap both sets are valid", st_old == 200 and
              asg_call(sim, hb, c=second)[0] == 200, st_old)
    wait_until(lambda: time.time() > parse_z(first["Expiration"]) + 1.1, 5)
    refused("the old set expires on its own -> ExpiredToken", 403, "ExpiredToken", c=first)

    if not curl_ok():
        print("note: no curl with --aws-sigv4 and signed user headers; curl cases skipped")
        return
    sim.fresh()
    sim.ctl("POST", "aws/lifecycle", {"state": "Terminated", "wait": True})
    c = creds(sim)
    st, text = curl_asg(sim, c, heartbeat_form())
    check("curl --aws-sigv4: heartbeat accepted", st == 200 and
          "<RecordLifecycleActionHeartbeatResponse" in text, (st, text[:600]))
    st, text = curl_asg(sim, c, heartbeat_form(), ctype=None)
    check("curl --aws-sigv4 with its own Content-Type: accepted", st == 200, (st, text[:600]))
    st, text = curl_asg(sim, c, heartbeat_form(), secret="x" * 40)
    check("curl: wrong secret -> 403 SignatureDoesNotMatch", st == 403 and
          "<Code>SignatureDoesNotMatch</Code>" in text, (st, text[:300]))
    st, text = curl_asg(sim, c, heartbeat_form(), token="IQoJnot-issued")
    check("curl: wrong token -> 403 InvalidClientTokenId", st == 403 and
          "<Code>InvalidClientTokenId</Code>" in text, (st, text[:300]))
    st, text = curl_asg(sim, c, heartbeat_form(), region="us-east-1")
    check("curl: wrong region -> 403 SignatureDoesNotMatch", st == 403 and
          "valid region" in text, (st, text[:300]))
    st, text = curl_asg(sim, c, heartbeat_form(), token=None)
    check("curl: no token -> 403 InvalidClientTokenId", st == 403 and
          "<Code>InvalidClientTokenId</Code>" in text, (st, text[:300]))
    st, text = curl_asg(sim, c, complete_form(), path="/__aws/autoscaling")
    check("curl: complete on /__aws/autoscaling", st == 200 and
          "<CompleteLifecycleActionResponse" in text and
          asg_state(sim)["state"] == "Terminating:Proceed", (st, text[:300]))
    sim.ctl("POST", "aws/credentials/rotate", {"expire_old": True})
    st, text = curl_asg(sim, c, heartbeat_form())
    check("curl: expired set -> 403 ExpiredToken", st == 403 and
          "<Code>ExpiredToken</Code>" in text, (st, text[:300]))
    calls = asg_state(sim)["calls"]
    check("curl calls recorded", len(calls) == 8 and
          [x["signature_ok"] for x in calls] == [True, True, None, None, None, None, True, None],
          [(x["status"], x["code"], x["signature_ok"]) for x in calls])


def curl_ok():
    if not shutil.which("curl"):
        return False
    try:
        out = subprocess.run(["curl", "--version"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    m = re.match(r"curl (\d+)\.(\d+)", out)
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= (7, 81)


def curl_asg(sim, c, form, secret=None, token="same", region="eu-west-1",
             path="/__aws/autoscaling/", ctype="application/x-www-form-urlencoded; charset=utf-8"):
    tok = c["Token"] if token == "same" else token
    cmd = ["curl", "-s", "-S", "--max-time", "10", "-w", "\n%{http_code}",
           "--aws-sigv4", "aws:amz:%s:autoscaling" % region,
           "--user", "%s:%s" % (c["AccessKeyId"], secret or c["SecretAccessKey"])]
    if tok is not None:
        cmd += ["-H", "X-Amz-Security-Token: " + tok]
    if ctype is not None:
        cmd += ["-H", "Content-Type: " + ctype]
    cmd += ["--data-binary", form, "http://127.0.0.1:%d%s" % (sim.port, path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout
    text, _, code = out.rpartition("\n")
    return int(code) if code.isdigit() else 0, text


def test_asg_lifecycle(sim):
    sim.fresh()
    st, root, text, _ = asg_call(sim, complete_form())
    check("complete while not waiting -> 400 ValidationError", st == 400 and
          asg_code(root) == "ValidationError" and asg_message(root) ==
          "No active Lifecycle Action found with instance ID " + IID, (st, text))
    st, root, text, _ = asg_call(sim, heartbeat_form())
    check("heartbeat while not waiting -> 400 ValidationError", st == 400 and
          "No active Lifecycle Action found" in asg_message(root), (st, text))
    st, root, text, _ = asg_call(sim, asg_form("DescribeAutoScalingInstances",
                                               **{"InstanceIds.member.1": IID}))
    m = root.find("%sDescribeAutoScalingInstancesResult/%sAutoScalingInstances/%smember" %
                  (ASG_NS, ASG_NS, ASG_NS)) if root is not None else None

    def field(el, name):
        x = el.find(ASG_NS + name) if el is not None else None
        return x.text if x is not None else None
    check("describe: the instance in the group", st == 200 and
          field(m, "InstanceId") == IID and field(m, "AutoScalingGroupName") == "spot-asg" and
          field(m, "AvailabilityZone") == "eu-west-1a" and
          field(m, "LifecycleState") == "InService" and
          field(m, "HealthStatus") == "HEALTHY", (st, text))
    st, root, text, _ = asg_call(sim, asg_form("DescribeAutoScalingInstances",
                                               **{"InstanceIds.member.1": "i-0other"}))
    check("describe: another instance -> empty list", st == 200 and
          "<AutoScalingInstances/>" in text, text)
    st, root, text, _ = asg_call(sim, asg_form("DescribeAutoScalingInstances"))
    check("describe without ids lists the instance", st == 200 and IID in text, text)

    t0 = time.time()
    view = sim.ctl("POST", "aws/lifecycle", {"state": "Terminated", "wait": True})
    a = view["autoscaling"]["action"]
    tok = sim.token()
    check("wait: IMDS item Terminated, LifecycleState Terminating:Wait",
          sim.aws("autoscaling/target-lifecycle-state", tok)[2] == b"Terminated" and
          view["autoscaling"]["state"] == "Terminating:Wait" and a["hook"] == "spot-drain" and
          a["heartbeat_timeout"] == 300 and a["default_result"] == "ABANDON" and
          abs(a["deadline"] - (a["started"] + 300)) < 0.5 and
          abs(a["global_deadline"] - (a["started"] + 30000)) < 0.5 and
          t0 - 1 <= a["started"] <= time.time() + 1, view["autoscaling"])
    st, root, text, _ = asg_call(sim, asg_form("DescribeAutoScalingInstances"))
    check("describe shows Terminating:Wait",
          "<LifecycleState>Terminating:Wait</LifecycleState>" in text, text)

    for name, form, message in (
            ("unknown hook", complete_form(LifecycleHookName="nope"),
             "No Lifecycle Hook found with name 'nope' for group 'spot-asg'"),
            ("unknown group", complete_form(AutoScalingGroupName="other"),
             "AutoScalingGroup name not found - AutoScalingGroup 'other' not found"),
            ("bad result", complete_form(result="MAYBE"),
             "LifecycleActionResult must be CONTINUE or ABANDON"),
            ("missing hook and result", complete_form(LifecycleHookName=None, result=None),
             "2 validation errors detected: Value null at 'lifecycleHookName'"),
            ("another instance", complete_form(InstanceId="i-0other"),
             "No active Lifecycle Action found with instance ID i-0other"),
            ("wrong token", complete_form(InstanceId=None, LifecycleActionToken="t-1"),
             "No active Lifecycle Action found with token t-1"),
            ("neither id nor token", complete_form(InstanceId=None),
             "Either LifecycleActionToken or InstanceId must be specified")):
        st, root, text, _ = asg_call(sim, form)
        check("%s -> 400 ValidationError" % name, st == 400 and
              asg_code(root) == "ValidationError" and message in asg_message(root),
              (st, text))
    for name, form, code, message in (
            ("no Action", "Version=2011-01-01", "MissingAction", None),
            ("unknown Action", asg_form("DescribeAutoScalingGroups"), "InvalidAction",
             "Could not find operation DescribeAutoScalingGroups for version 2011-01-01"),
            ("no Version", "Action=CompleteLifecycleAction", "InvalidAction",
             "for version NO_VERSION_SPECIFIED")):
        st, root, text, _ = asg_call(sim, form)
        check("%s -> 400 %s" % (name, code), st == 400 and asg_code(root) == code and
              (message is None or message in asg_message(root)), (st, text))
    check("still waiting after the refusals",
          asg_state(sim)["state"] == "Terminating:Wait")

    before = asg_state(sim)["action"]["deadline"]
    time.sleep(0.3)
    t_hb = time.time()
    st = asg_call(sim, heartbeat_form())[0]
    a = asg_state(sim)["action"]
    check("heartbeat extends the deadline to now + heartbeat timeout", st == 200 and
          a["heartbeats"] == 1 and a["deadline"] > before + 0.2 and
          t_hb + 299.5 <= a["deadline"] <= time.time() + 300.5, (before, a))
    st = asg_call(sim, heartbeat_form(InstanceId=None,
                                      LifecycleActionToken=a["token"]))[0]
    check("heartbeat by LifecycleActionToken", st == 200 and
          asg_state(sim)["action"]["heartbeats"] == 2, st)
    st, root, text, _ = asg_call(sim, complete_form())
    v = asg_state(sim)
    check("complete -> 200, Terminating:Proceed", st == 200 and
          root.tag == ASG_NS + "CompleteLifecycleActionResponse" and
          root.find(ASG_NS + "CompleteLifecycleActionResult") is not None and
          v["state"] == "Terminating:Proceed" and v["action"] is None and
          v["outcome"]["how"] == "completed" and v["outcome"]["result"] == "CONTINUE", (st, v))
    st, root, text, _ = asg_call(sim, complete_form())
    check("second complete -> no active action", st == 400 and
          "No active Lifecycle Action found" in asg_message(root), text)
    calls = v["calls"]
    check("every call recorded in order", len(calls) >= 15 and
          [x["seq"] for x in calls] == sorted(x["seq"] for x in calls) and
          [x["mono"] for x in calls] == sorted(x["mono"] for x in calls) and
          calls[-1]["action"] == "CompleteLifecycleAction" and
          calls[-1]["params"]["LifecycleActionResult"] == "CONTINUE" and
          calls[-1]["status"] == 200, calls[-3:])
    r = sim.ctl("DELETE", "aws/autoscaling/calls")
    check("calls cleared", r["calls"] == [] and asg_state(sim)["calls"] == [])

    # A wait that times out goes to the hook's default result.
    sim.ctl("POST", "config", {"aws_lifecycle_hooks": [
        {"name": "spot-drain", "heartbeat_timeout": 0.5},
        {"name": "second", "heartbeat_timeout": 60, "default_result": "CONTINUE"}]})
    m0 = time.monotonic()
    sim.ctl("POST", "aws/lifecycle", {"state": "Terminated", "wait": True})
    m1 = time.monotonic()
    check("the wait times out", wait_until(
        lambda: asg_state(sim)["state"] == "Terminating:Proceed", 5))
    v = asg_state(sim)
    to = v["calls"][-1] if v["calls"] else {}
    check("timeout recorded at the deadline with the default result",
          to.get("action") == "timeout" and to.get("result") == "ABANDON" and
          m0 + 0.5 <= to.get("mono", 0) <= m1 + 0.5 and
          to["params"]["LifecycleHookName"] == "spot-drain" and
          v["outcome"]["how"] == "timeout" and v["outcome"]["result"] == "ABANDON", v)
    st, root, _, _ = asg_call(sim, complete_form())
    check("complete after the timeout -> no active action", st == 400, st)
    sim.ctl("POST", "aws/lifecycle", {"state": "Terminated", "wait": True, "hook": "second"})
    st, root, text, _ = asg_call(sim, complete_form())
    check("complete for the other hook -> no active action", st == 400 and
          "No active Lifecycle Action" in asg_message(root), text)
    st = asg_call(sim, complete_form(LifecycleHookName="second", result="ABANDON"))[0]
    check("complete the named hook", st == 200 and
          asg_state(sim)["outcome"]["result"] == "ABANDON", st)
    for bad in ({"state": "Standby", "wait": True}, {"state": "Terminated", "wait": "yes"},
                {"state": "Terminated", "hook": "second"},
                {"state": "Terminated", "wait": True, "hook": "nope"}, {"wait": True}):
        sim.ctl("POST", "aws/lifecycle", bad, expect=400)
    for bad in ([{"name": "a", "default_result": "MAYBE"}], [{"name": "a"}, {"name": "a"}],
                [{"heartbeat_timeout": 5}], [{"name": "a", "heartbeat_timeout": 0}], "a"):
        sim.ctl("POST", "config", {"aws_lifecycle_hooks": bad}, expect=400)
    sim.ctl("POST", "config", {"aws_lifecycle_hooks": []})
    sim.ctl("POST", "aws/lifecycle", {"state": "Terminated", "wait": True}, expect=409)
    sim.ctl("POST", "config", {"aws_asg_name": None,
                               "aws_lifecycle_hooks": [{"name": "spot-drain"}]})
    sim.ctl("POST", "aws/lifecycle", {"state": "Terminated", "wait": True}, expect=409)
    st, _, text, _ = asg_call(sim, asg_form("DescribeAutoScalingInstances"))
    check("not in a group: describe lists nothing", st == 200 and
          "<AutoScalingInstances/>" in text, text)
    sim.ctl("POST", "config", {"aws_asg_name": "spot-asg"})
    sim.ctl("POST", "aws/lifecycle", {"state": "Terminated", "wait": True})
    check("a hook without heartbeat_timeout waits 3600 s",
          asg_state(sim)["action"]["heartbeat_timeout"] == 3600)
    sim.ctl("POST", "aws/lifecycle", {"state": "InService"})
    v = asg_state(sim)
    check("a state without wait drops the action", v["action"] is None and
          v["state"] == "InService", v)

    # Warm-pool and other states are served verbatim.
    tok = sim.token()
    for state in ("Warmed:Terminated", "Warmed:Stopped", "Warmed:Hibernated",
                  "Warmed:Running", "Detached", "Standby", "InService"):
        sim.ctl("POST", "aws/lifecycle", {"state": state})
        st, _, data = sim.aws("autoscaling/target-lifecycle-state", tok)
        _, _, text, _ = asg_call(sim, asg_form("DescribeAutoScalingInstances"))
        check("state %s served verbatim" % state, st == 200 and data == state.encode() and
              "<LifecycleState>%s</LifecycleState>" % state in text, (st, data))

    # Faults on the Auto Scaling API.
    sim.ctl("POST", "faults", {"path": "/__aws/autoscaling", "status": 503, "count": 1})
    sim.ctl("POST", "faults", {"path": "/__aws/autoscaling", "status": 500, "count": 1})
    st1, root1, text1, r1 = asg_call(sim, heartbeat_form())
    st2, root2, text2, _ = asg_call(sim, heartbeat_form())
    check("503 fault: AWS XML error", st1 == 503 and asg_code(root1) == "ServiceUnavailable" and
          r1.getheader("Content-Type", "").startswith("text/xml") and
          root1.find(ASG_NS + "Error/" + ASG_NS + "Type").text == "Receiver", (st1, text1))
    check("500 fault: InternalFailure", st2 == 500 and asg_code(root2) == "InternalFailure",
          (st2, text2))
    sim.ctl("POST", "faults", {"path": "/__aws/autoscaling", "status": 400, "count": 1})
    st, root, text, _ = asg_call(sim, heartbeat_form())
    check("400 fault: Throttling", st == 400 and asg_code(root) == "Throttling", text)
    sim.ctl("POST", "faults", {"path": "/__aws/autoscaling", "status": 500,
                               "body": "plain", "content_type": "text/plain"})
    st, _, text, r = asg_call(sim, heartbeat_form())
    check("fault body as given", st == 500 and text == "plain" and
          r.getheader("Content-Type") == "text/plain", (st, text))
    calls = asg_state(sim)["calls"][-4:]
    check("faulted calls recorded", [(x["status"], x["fault"]) for x in calls] ==
          [(503, "status"), (500, "status"), (400, "status"), (500, "status")], calls)
    sim.ctl("POST", "faults", {"path": "/__aws/autoscaling", "kind": "stall", "seconds": 0.5})
    t0 = time.monotonic()
    st, _, text, _ = asg_call(sim, asg_form("DescribeAutoScalingInstances"))
    check("stall fault, then the normal answer", st == 200 and time.monotonic() - t0 >= 0.5,
          st)
    sim.ctl("POST", "faults", {"path": "/latest", "status": 500, "count": -1})
    check("an IMDS fault spares the Auto Scaling API",
          asg_call(sim, asg_form("DescribeAutoScalingInstances"))[0] == 200)
    sim.ctl("DELETE", "faults")
    sim.ctl("DELETE", "requests")
    asg_call(sim, asg_form("DescribeAutoScalingInstances"))
    check("Auto Scaling calls are not metadata requests", sim.ctl("GET", "requests") == [])

    st = sim.ctl("GET", "state")["aws"]
    check("state has the AWS additions", st["autoscaling"]["group"] == "spot-asg" and
          isinstance(st["autoscaling"]["calls"], int) and "credentials" in st and
          "maintenance" in st and st["tags"] is not None, st["autoscaling"])
    sim.ctl("POST", "aws/lifecycle", {"state": "Terminated", "wait": True})
    sim.ctl("POST", "reset")
    v = asg_state(sim)
    cfg = sim.ctl("GET", "config")
    check("reset: InService, no action, no calls, default hooks", v["state"] == "InService" and
          v["action"] is None and v["calls"] == [] and v["outcome"] is None and
          cfg["aws_lifecycle_hooks"] == [{"name": "spot-drain", "heartbeat_timeout": 300,
                                          "default_result": "ABANDON"}] and
          cfg["aws_asg_name"] == "spot-asg" and cfg["aws_role"] == "spot-agent-role" and
          cfg["aws_credentials_lifetime"] == 3600 and cfg["aws_metadata_tags"] is True, (v, cfg))
    sim.ctl("GET", "aws/autoscaling/nosuch", expect=404)
    sim.ctl("POST", "aws/autoscaling", {}, expect=405)
    st, _, _ = sim.request("GET", "/__aws/other")
    check("other /__aws paths -> 404", st == 404, st)


# -- recipes the agent's tests use ---------------------------------------------

def test_fault_recipes(sim):
    sim.fresh()
    for status in (403, 404, 405):
        sim.ctl("POST", "faults", {"method": "PUT", "path": "/latest/api/token",
                                   "status": status, "count": -1})
        st = sim.request("PUT", "/latest/api/token", {TTL_HEADER: "60"})[0]
        check("token PUT refused with %d" % status, st == status, st)
        sim.ctl("POST", "config", {"aws_v1_allowed": True})
        st, _, data = sim.aws("instance-id")
        check("refused PUT, IMDSv1 allowed: GET served (%d)" % status,
              st == 200 and data == b"i-0123456789abcdef0", (st, data))
        sim.ctl("POST", "config", {"aws_v1_allowed": False})
        check("refused PUT, IMDSv2 only: GET -> 401 (%d)" % status,
              sim.aws("instance-id")[0] == 401)
        sim.ctl("DELETE", "faults")
    sim.ctl("POST", "faults", {"method": "PUT", "path": "/latest/api/token",
                               "kind": "stall", "seconds": 2})
    t0 = time.monotonic()
    try:
        sim.request("PUT", "/latest/api/token", {TTL_HEADER: "60"}, timeout=0.5)
        timed_out = False
    except (socket.timeout, TimeoutError):
        timed_out = True
    check("stalled token PUT outlasts the client's wait",
          timed_out and time.monotonic() - t0 < 1.5, time.monotonic() - t0)
    check("GETs are not stalled by a PUT fault",
          sim.aws("instance-id", sim.token())[0] == 200)

    tok = sim.token(300)
    sim.ctl("POST", "aws/spot", {"notice_in": 120})
    sim.ctl("POST", "aws/maintenance", {})
    sim.ctl("POST", "faults", {"path": "/latest/meta-data/events/maintenance",
                               "status": 500, "count": -1})
    sim.ctl("POST", "faults", {"path": "/latest/meta-data/iam", "kind": "stall",
                               "seconds": 2, "count": -1})
    check("optional item fails", sim.aws("events/maintenance/scheduled", tok)[0] == 500)
    try:
        sim.request("GET", "/latest/meta-data/iam/security-credentials/spot-agent-role",
                    {TOKEN_HEADER: tok}, timeout=0.5)
        stalled = False
    except (socket.timeout, TimeoutError):
        stalled = True
    check("optional item stalls", stalled)
    st, _, data = sim.aws("spot/instance-action", tok)
    check("spot/instance-action answers meanwhile", st == 200 and
          json.loads(data)["action"] == "terminate", (st, data))
    sim.ctl("DELETE", "faults")


def test_azure_move(sim):
    sim.fresh(started_ttl=0)
    eid = sim.ctl("POST", "events", {"type": "Preempt", "not_before_in": 30})["id"]
    inc = sim.doc()["DocumentIncarnation"]
    t0 = time.time()
    r = sim.ctl("POST", "events/" + eid, {"not_before_in": 300})
    e = sim.doc()["Events"][0]
    nb = email.utils.parsedate_to_datetime(e["NotBefore"]).timestamp()
    check("NotBefore moved later, same id, Scheduled", r["id"] == eid and
          e["EventId"] == eid and e["EventStatus"] == "Scheduled" and
          RFC1123.match(e["NotBefore"]) and int(t0) + 299 <= nb <= time.time() + 301, e)
    check("a move grows the incarnation", sim.doc()["DocumentIncarnation"] == inc + 1 ==
          r["incarnation"])
    sim.ctl("POST", "events/" + eid, {"not_before_in": 10})
    e = sim.doc()["Events"][0]
    nb = email.utils.parsedate_to_datetime(e["NotBefore"]).timestamp()
    check("NotBefore moved earlier", nb <= time.time() + 11 and e["EventStatus"] == "Scheduled", e)
    sim.ctl("POST", "config", {"auto_start": False})
    sim.ctl("POST", "events/" + eid, {"not_before_in": -30})
    e = sim.doc()["Events"][0]
    nb = email.utils.parsedate_to_datetime(e["NotBefore"]).timestamp()
    check("moved into the past, auto_start off: still Scheduled",
          e["EventStatus"] == "Scheduled" and nb <= time.time() - 29, e)
    sim.ctl("DELETE", "events/" + eid)
    sim.ctl("POST", "config", {"auto_start": True})
    eid = sim.ctl("POST", "events", {"type": "Preempt", "not_before_in": 30})["id"]
    check("a fresh event is Scheduled", sim.doc()["Events"][0]["EventStatus"] == "Scheduled")
    sim.ctl("POST", "events/" + eid, {"not_before_in": -30})
    d = sim.doc()
    check("moved into the past, auto_start on: Started at the move",
          d["Events"][0]["EventStatus"] == "Started" and d["Events"][0]["NotBefore"] == "", d)
    sim.ctl("POST", "events/" + eid, {"not_before_in": 60}, expect=409)
    sim.ctl("POST", "events/nosuch", {"not_before_in": 60}, expect=404)
    iso = sim.ctl("POST", "events", {"time_format": "iso8601", "not_before_in": 60})["id"]
    sim.ctl("POST", "events/" + iso, {"not_before_in": 120, "description": "moved"})
    e = [x for x in sim.doc()["Events"] if x["EventId"] == iso][0]
    check("a move keeps the time format", ISO8601.match(e["NotBefore"]) and
          e["Description"] == "moved", e)
    sim.ctl("POST", "events/" + iso, {"not_before": "whenever"})
    e = [x for x in sim.doc()["Events"] if x["EventId"] == iso][0]
    check("raw NotBefore", e["NotBefore"] == "whenever" and e["EventStatus"] == "Scheduled", e)
    for bad in ({}, {"colour": 1}, {"not_before_in": "soon"},
                {"not_before": "x", "not_before_in": 5}, {"duration": "x"}):
        sim.ctl("POST", "events/" + iso, bad, expect=400)

    # Deleted, then re-created later under the same EventId.
    sim.fresh()
    eid = sim.ctl("POST", "events", {"type": "Preempt", "not_before_in": 30})["id"]
    first = sim.doc()
    sim.ctl("DELETE", "events/" + eid)
    gone = sim.doc()
    r = sim.ctl("POST", "events", {"id": eid, "type": "Preempt", "not_before_in": 60})
    again = sim.doc()
    check("deleted and re-created with the same EventId",
          gone["Events"] == [] and r["id"] == eid and
          [e["EventId"] for e in again["Events"]] == [eid] and
          again["Events"][0]["EventStatus"] == "Scheduled" and
          again["Events"][0]["NotBefore"] != first["Events"][0]["NotBefore"] and
          first["DocumentIncarnation"] < gone["DocumentIncarnation"] <
          again["DocumentIncarnation"], (first, gone, again))


def test_cli():
    sim = Sim("--vm-name", "cli-vm", "--rate-limit", "0", "--first-call-delay", "0.4",
              "--started-ttl", "0", "--no-auto-start", "--aws-instance-id", "i-0aaaabbbbccccdddd",
              "--aws-v1-allowed", "--aws-life-cycle", "on-demand", "--gcp-name", "cli-gce",
              "--aws-region", "ap-south-1")
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
        doc = json.loads(sim.request("GET", "/latest/dynamic/instance-identity/document")[2])
        check("CLI AWS region", cfg["aws_region"] == "ap-south-1" and
              sim.aws("placement/region")[2] == b"ap-south-1" and
              doc["region"] == "ap-south-1" and doc["availabilityZone"] == "ap-south-1a", doc)
        sim.ctl("POST", "config", {"aws_region": "eu-west-1"})
        sim.ctl("POST", "reset")
        check("reset restores the CLI region", sim.ctl("GET", "config")["aws_region"] ==
              "ap-south-1")
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
                  test_engine_support, test_aws_identity, test_aws_credentials,
                  test_aws_maintenance, test_asg_sigv4, test_asg_lifecycle,
                  test_fault_recipes, test_azure_move):
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
