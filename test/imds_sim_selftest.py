#!/usr/bin/python3
"""Self-test of test/imds-sim.

Run from anywhere: /usr/bin/python3 test/imds_sim_selftest.py
Starts the simulator on a free port and checks the Azure-facing rules, the
event lifecycle, fault injection, the request record and the control API.
The last line of output is "N passed, N failed"; the exit status is 1 when
anything failed.
"""

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
          isinstance(appr[0]["t"], float), appr)
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


def test_cli():
    sim = Sim("--vm-name", "cli-vm", "--rate-limit", "0", "--first-call-delay", "0.4",
              "--started-ttl", "0", "--no-auto-start")
    try:
        cfg = sim.ctl("GET", "config")
        check("CLI config", cfg["vm_name"] == "cli-vm" and cfg["rate_limit"] == 0 and
              cfg["started_ttl"] == 0 and cfg["auto_start"] is False and
              cfg["first_call_delay"] == 0.4, cfg)
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
                  test_faults, test_records, test_first_call):
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
