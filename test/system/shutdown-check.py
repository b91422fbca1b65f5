#!/usr/bin/python3
"""shutdown-check.py - the checks of one shutdown scenario of
test/system/run.sh, made once its container has powered off, and its times.

Reads what the container left behind:
    REC/hooks       "NAME start|end UNIXTIME" lines, appended by the hooks
    REC/env-NAME    each hook's environment (env output)
    JOURNAL         the container's journal, journalctl -o json
All times are Unix times of the one kernel clock the host and the container
share. Prints "ok   ..." lines; a failed check prints "FAIL ..." on stderr
and exits 1.

USAGE
    shutdown-check.py --scenario eviction-shutdown|os-shutdown|gcp-shutdown
        --rec DIR --journal FILE --poweroff T --off T --boot-tag HEX8
        [--event-id ID] [--preempt T]
"""

import argparse
import json
import sys

HOOKS = ("10-first", "20-sleep", "30-last")
LOGIND_DELAY = 30     # InhibitDelayMaxSec of the package's drop-in
MARGIN = 2            # the agent's default margin
DECIDE_MAX = 3.0      # PrepareForShutdown to the first hook of a Shutdown:
                      # the agent waits at most 1.5 s for a notice

MSG_TOLD = "shutdown: the OS is shutting down"
MSG_COVERED = "shutdown: it joins the eviction in hand"
MSG_OWN = "shutdown: no eviction notice explains it, running the hooks for "
MSG_RELEASE = "shutdown: nothing left in hand, letting it go on"
MSG_APPROVED = "event approved (StartRequests sent)"
UNIT = "spot-agent.service"


def fail(msg):
    print("FAIL " + msg, file=sys.stderr)
    sys.exit(1)


def ok(msg):
    print("ok   " + msg)


def read_record(rec):
    try:
        with open(rec + "/hooks") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        fail("no hook ran: nothing in %s/hooks" % rec)
    seq = []
    for line in lines:
        fields = line.split()
        if len(fields) != 3 or fields[1] not in ("start", "end"):
            fail("bad line in the hooks' record: %r" % line)
        seq.append((fields[0], fields[1], float(fields[2])))
    return seq


def read_env(rec, name):
    env = {}
    with open("%s/env-%s" % (rec, name), errors="replace") as f:
        for line in f:
            key, sep, value = line.rstrip("\n").partition("=")
            if sep:
                env[key] = value
    return env


class Journal:
    def __init__(self, path):
        self.entries = []
        with open(path, errors="replace") as f:
            for line in f:
                e = json.loads(line)
                msg = e.get("MESSAGE")
                if not isinstance(msg, str):   # binary: a list of bytes
                    continue
                self.entries.append({
                    "t": int(e["__REALTIME_TIMESTAMP"]) / 1e6,
                    "ident": e.get("SYSLOG_IDENTIFIER", ""),
                    "unit": e.get("_SYSTEMD_UNIT", ""),
                    "about": e.get("UNIT", ""),
                    "msg": msg,
                })
        self.entries.sort(key=lambda e: e["t"])

    def find(self, pred, after=0.0):
        """All entries at or after `after` for which pred(entry) holds."""
        return [e for e in self.entries if e["t"] >= after and pred(e)]

    def first(self, pred, what, after=0.0):
        found = self.find(pred, after)
        if not found:
            fail("not in the journal: " + what)
        return found[0]

    def agent(self, text):
        """The agent's own lines that start with text."""
        return lambda e: e["unit"] == UNIT and e["ident"] != "systemd" and e["msg"].startswith(text)

    @staticmethod
    def logind(text):
        return lambda e: e["ident"] == "systemd-logind" and text in e["msg"]

    @staticmethod
    def pid1(text):
        return lambda e: e["ident"] == "systemd" and e["msg"].startswith(text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", required=True,
                    choices=("eviction-shutdown", "os-shutdown", "gcp-shutdown"))
    ap.add_argument("--rec", required=True)
    ap.add_argument("--journal", required=True)
    ap.add_argument("--poweroff", type=float, required=True)
    ap.add_argument("--off", type=float, required=True)
    ap.add_argument("--boot-tag", required=True)
    ap.add_argument("--event-id")
    ap.add_argument("--preempt", type=float)
    a = ap.parse_args()
    if a.scenario == "gcp-shutdown" and a.preempt is None:
        ap.error("gcp-shutdown needs --preempt")
    sc = a.scenario
    t0 = a.poweroff

    # -- the hooks: each once, in order, none cut short -----------------------
    seq = read_record(a.rec)
    expected = [(h, k) for h in HOOKS for k in ("start", "end")]
    if [(n, k) for n, k, _ in seq] != expected:
        fail("the hooks ran as %s, expected each once, in order: %s" %
             (" ".join("%s:%s" % (n, k) for n, k, _ in seq),
              " ".join("%s:%s" % p for p in expected)))
    times = {(n, k): t for n, k, t in seq}
    first_start = times[(HOOKS[0], "start")]
    last_end = times[(HOOKS[-1], "end")]
    ok("%s: hooks ran once each, in order, none cut short: %s" % (sc, " ".join(HOOKS)))

    # -- the event they ran for -------------------------------------------------
    envs = {h: read_env(a.rec, h) for h in HOOKS}
    ids = {e.get("SPOT_EVENT_ID") for e in envs.values()}
    if len(ids) != 1:
        fail("the hooks ran for more than one event: %s" % sorted(ids))
    env = envs[HOOKS[0]]
    ev_id, ev_type, ev_source = env.get("SPOT_EVENT_ID", ""), env.get("SPOT_EVENT_TYPE"), env.get("SPOT_EVENT_SOURCE")
    if env.get("SPOT_DRILL") != "0":
        fail("SPOT_DRILL=%r, expected 0" % env.get("SPOT_DRILL"))
    if sc == "os-shutdown":
        want_id = "os-shutdown-" + a.boot_tag
        if (ev_type, ev_source, ev_id) != ("Shutdown", "OS", want_id):
            fail("the hooks ran for %s %s (source %s), expected Shutdown %s (source OS)" %
                 (ev_type, ev_id, ev_source, want_id))
        deadline = float(env.get("SPOT_DEADLINE") or 0)
        budget = LOGIND_DELAY - MARGIN
        if not budget - 2 <= deadline - t0 <= budget + 1:
            fail("SPOT_DEADLINE is %.1f s after the poweroff, expected about %d s (logind's %d s - margin %d s)" %
                 (deadline - t0, budget, LOGIND_DELAY, MARGIN))
        ok("%s: hooks' environment: SPOT_EVENT_TYPE=Shutdown SPOT_EVENT_SOURCE=OS SPOT_EVENT_ID=%s, "
           "SPOT_DEADLINE %.0f s after the poweroff" % (sc, ev_id, deadline - t0))
    else:
        if ev_type != "Preempt" or ev_source == "OS":
            fail("the hooks ran for %s %s (source %s), expected the Preempt" % (ev_type, ev_id, ev_source))
        if sc == "eviction-shutdown" and ev_id.lower() != (a.event_id or "").lower():
            fail("the hooks ran for %s, expected the Preempt %s" % (ev_id, a.event_id))
        if sc == "gcp-shutdown" and (env.get("SPOT_PROVIDER") != "gcp" or not ev_id.startswith("gcp-preempted-")
                                     or "-%s" % a.boot_tag not in ev_id):
            fail("the hooks ran for %s (provider %s), expected this boot's GCP preemption "
                 "(gcp-preempted-...-%s...)" % (ev_id, env.get("SPOT_PROVIDER"), a.boot_tag))
        ok("%s: hooks' environment: SPOT_EVENT_TYPE=Preempt SPOT_EVENT_SOURCE=%s SPOT_EVENT_ID=%s SPOT_PROVIDER=%s" %
           (sc, ev_source, ev_id, env.get("SPOT_PROVIDER")))

    # -- the journal: logind waited for the agent, then systemd stopped it ------
    j = Journal(a.journal)
    t_req = j.first(j.logind("The system will power off now"), "logind: The system will power off now!", t0)["t"]
    t_down = j.first(j.logind("System is powering down"), "logind: System is powering down.", t0)["t"]
    late = j.find(j.logind("inhibitor timeout is reached"), t0)
    if late:
        fail("logind went on because of its timeout, not because the agent let go: %s" % late[0]["msg"])
    t_told = j.first(j.agent(MSG_TOLD), "the agent's '%s ...' (PrepareForShutdown)" % MSG_TOLD, t0)["t"]
    t_rel = j.first(j.agent(MSG_RELEASE), "the agent's '%s'" % MSG_RELEASE, t0)["t"]
    t_stop = j.first(lambda e: j.pid1("Stopping " + UNIT)(e), "systemd: Stopping %s" % UNIT, t0)["t"]
    j.first(j.pid1(UNIT + ": Deactivated successfully"),
            "systemd: %s: Deactivated successfully (the agent's exit 0 at the shutdown)" % UNIT, t_stop)
    bad = j.find(j.pid1(UNIT + ": Failed with result"), t0)
    if bad:
        fail("systemd: " + bad[0]["msg"])
    own = j.find(j.agent(MSG_OWN), t0)
    covered = j.find(j.agent(MSG_COVERED), t0)
    if sc == "os-shutdown":
        if not own or covered:
            fail("the agent's decision: expected '%s%s' only" % (MSG_OWN, "os-shutdown-" + a.boot_tag))
    elif own or not covered:
        fail("the agent's decision: expected '%s', found %s" %
             (MSG_COVERED, "'%s'" % own[0]["msg"] if own else "neither"))
    ok("%s: journal: agent told of the shutdown, %s, then '%s'" %
       (sc, "ran its own Shutdown event" if own else "the eviction in hand covered it", MSG_RELEASE))

    # Each chain of moments must be in order.
    tail = [("the last hook's end", last_end), ("the lock released", t_rel),
            ("logind going on", t_down), ("systemd stopping the agent", t_stop),
            ("the power-off", a.off)]
    t_appr = None
    if sc == "eviction-shutdown":
        t_appr = j.first(j.agent(MSG_APPROVED), "the agent's '%s'" % MSG_APPROVED, first_start)["t"]
        tail.insert(1, ("the approval", t_appr))
    chains = [[("poweroff", t0), ("PrepareForShutdown", t_told)] + tail]
    if sc == "eviction-shutdown":
        chains.append([("the first hook's start", first_start), ("poweroff", t0)])
    elif sc == "os-shutdown":
        chains[0].insert(2, ("the first hook's start", first_start))
    else:
        chains.append([("preempted TRUE", a.preempt), ("the first hook's start", first_start),
                       ("the last hook's end", last_end)])
    for chain in chains:
        for (n1, v1), (n2, v2) in zip(chain, chain[1:]):
            if v2 < v1:
                fail("%s came %.3f s before %s, expected after" % (n2, v1 - v2, n1))
    if sc == "os-shutdown" and first_start - t_told > DECIDE_MAX:
        fail("the first hook started %.2f s after PrepareForShutdown, expected within %.1f s" %
             (first_start - t_told, DECIDE_MAX))
    for chain in chains:
        ok("%s: in order: %s" % (sc, " < ".join(n for n, _ in chain)))

    # -- times -------------------------------------------------------------------
    def rel(t):
        return "%+.2f s" % (t - t0)
    print("     %s: logind held the shutdown up %.2f s (power-off requested -> powering down)" %
          (sc, t_down - t_req))
    parts = []
    if a.preempt is not None:
        parts.append("preempted TRUE %s" % rel(a.preempt))
    if sc == "eviction-shutdown":
        parts.append("chain started %s" % rel(first_start))
    parts.append("agent told %s" % rel(t_told))
    if sc != "eviction-shutdown":
        parts.append("first hook %s" % rel(first_start))
    parts.append("hooks done %s" % rel(last_end))
    if t_appr is not None:
        parts.append("approved %s" % rel(t_appr))
    parts += ["lock released %s" % rel(t_rel), "logind goes on %s" % rel(t_down),
              "agent stopped %s" % rel(t_stop), "powered off %s" % rel(a.off)]
    print("     %s: from the poweroff: %s" % (sc, ", ".join(parts)))


if __name__ == "__main__":
    main()
