#!/usr/bin/python3
"""Kill -9 torture of the hook chain: the real agent, the simulator and real
recording hooks, with SIGKILL at seeded random moments.

Each round starts the agent with 3-4 hooks of random short durations (some
exit 1, some exit 77), adds a Preempt, kills the agent with SIGKILL one to
three times (after a random delay, on a random hook record line, or on a
random agent log line naming a hook), restarts it on the same state
directory each time, and once the event is approved checks:

  rerun     a hook that recorded its completion (its last line, written just
            before it exits) never starts again for that event, unless the
            agent run that started it (the hook's parent) died before that
            line or within GRACE seconds after it, before it could have
            persisted the outcome: a re-run is the only honest choice then
  order     hook i never starts after a hook j > i started for the event,
            across restarts
  exit 77   no hook after one that exits 77 ever starts
  approval  every successful approval found the event Scheduled (a re-sent
            approval is allowed only while it still is; the simulator's
            approval record says), none came before the hooks that run had
            ended, and the event was approved before NotBefore
  finished  every hook ended or was skipped by an exit 77 before NotBefore
  id        every hook saw the event's id

Rounds run in parallel (--jobs, default 2); each round's plan is a function
of (seed, round) alone, so --seed S --round R replays one plan (the timing
is the machine's). The summary counts rounds, kills, kills during a hook,
re-runs inside the grace, violations; the exit status is 1 on any violation
or error.

usage: test/torture.py [--rounds N] [--seed S] [--jobs J] [--round R]
                       [--agent PATH] [--keep] [--verbose]
"""

import argparse
import concurrent.futures
import email.utils
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "integration"))
import harness  # noqa: E402

GRACE = 1.0          # s after a hook's completion a kill may still cause a re-run
POLL_MS = 200
MARGIN = 2
SE_PATH = "/metadata/scheduledevents"


def plan_round(seed, rnd):
    """Everything random about a round, from (seed, round) alone."""
    rng = random.Random("%d:%d" % (seed, rnd))
    hooks = []
    for i in range(rng.choice((3, 4))):
        r = rng.random()
        code = 77 if r < 0.12 else 1 if r < 0.3 else 0
        hooks.append({"name": "%d0-h%d" % (i + 1, i), "code": code,
                      "sleep": rng.choice((0, 0, 0.02, 0.05, 0.1, 0.2, 0.3))})
    kills = []
    for _ in range(rng.choice((1, 1, 2, 2, 3))):
        mode = rng.choice(("delay", "record", "record", "log"))
        if mode == "delay":
            kills.append({"mode": "delay", "after": rng.uniform(0.0, 1.2)})
        elif mode == "record":
            kills.append({"mode": "record", "hook": rng.randrange(len(hooks)),
                          "what": rng.choice(("start", "end")),
                          "after": rng.choice((0, 0, 0.001, 0.003, 0.01, 0.05))})
        else:
            kills.append({"mode": "log", "nth": rng.randint(1, 2 * len(hooks)),
                          "after": rng.choice((0, 0, 0.001, 0.005))})
    return {"hooks": hooks, "kills": kills, "notice": rng.uniform(10.0, 14.0),
            "restart_after": [rng.choice((0, 0, 0.02, 0.1)) for _ in kills]}


def hook_body(rec, h):
    """start NAME ID TIME PID PPID / end NAME ID TIME PID CODE."""
    lines = ['echo "start %s $SPOT_EVENT_ID $(date +%%s.%%N) $$ $PPID" >> %s' % (h["name"], rec)]
    if h["sleep"]:
        lines.append("sleep %s" % h["sleep"])
    lines.append('echo "end %s $SPOT_EVENT_ID $(date +%%s.%%N) $$ %d" >> %s'
                 % (h["name"], h["code"], rec))
    lines.append("exit %d" % h["code"])
    return "\n".join(lines)


def read_record(path):
    """[(kind, name, id, wall time, pid, ppid or exit code)] in append order."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) == 6 and p[0] in ("start", "end"):
                    out.append((p[0], p[1], p[2], float(p[3]), int(p[4]), int(p[5])))
    except (FileNotFoundError, ValueError):
        pass
    return out


def hook_running(rec_path):
    """Whether a hook this agent started still runs (its start has no end and
    its shell is alive)."""
    last = {}
    for r in read_record(rec_path):
        last[r[1]] = r
    return any(r[0] == "start" and harness.pid_alive(r[4]) for r in last.values())


def wait_until(cond, timeout, step=0.002):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return False


def wait_nth_line(agent, rx, nth, start, timeout):
    end = time.monotonic() + timeout
    with agent.cond:
        while True:
            if sum(1 for l in agent.lines[start:] if rx.search(l)) >= nth:
                return True
            left = end - time.monotonic()
            if left <= 0 or (agent.proc.poll() is not None and not agent.reader.is_alive()):
                return False
            agent.cond.wait(min(left, 0.05))


class World:
    """One simulator per worker thread, reset between rounds."""
    local = threading.local()

    @classmethod
    def sim(cls, base):
        s = getattr(cls.local, "sim", None)
        if s is None or s.proc.poll() is not None:
            d = os.path.join(base, "sim-%d" % threading.get_ident())
            os.makedirs(d, exist_ok=True)
            s = harness.Sim(d, "--quiet")
            cls.local.sim = s
            World.all.append(s)
        else:
            s.call("POST", "/__sim/reset")
        return s


World.all = []


def run_round(seed, rnd, base, keep, verbose):
    plan = plan_round(seed, rnd)
    sim = World.sim(base)
    ctx = harness.Context("torture-%d" % rnd)
    ctx.sim = None           # shared; not stopped with the round
    stats = {"kills": 0, "during_hook": 0, "by_mode": {}, "grace_reruns": 0, "violations": []}
    runs = []                # {"pid", "killed": wall time of its SIGKILL or None}
    rx_hook = re.compile("|".join(re.escape(h["name"]) for h in plan["hooks"]))

    def violation(msg):
        stats["violations"].append("round %d (--seed %d --round %d): %s" % (rnd, seed, rnd, msg))

    try:
        for h in plan["hooks"]:
            ctx.hook(h["name"], hook_body(ctx.record, h))
        args = ctx.base_args(imds_url=sim.url, listen="none", poll_interval=POLL_MS,
                             margin=MARGIN, log_level="debug")
        a = ctx.start_agent(args=args)
        runs.append({"pid": a.proc.pid, "killed": None})
        eid = sim.add_event(type="Preempt", not_before_in=plan["notice"])
        nb = None
        for ev in sim.call("GET", "/__sim/events"):
            if ev["EventId"] == eid:
                nb = email.utils.parsedate_to_datetime(ev["NotBefore"]).timestamp()
        def approved():
            return any(eid in x["event_ids"] for x in sim.approvals())

        for k, restart_after in zip(plan["kills"], plan["restart_after"]):
            line0 = len(a.lines)
            if k["mode"] == "delay":
                time.sleep(k["after"])
            elif k["mode"] == "record":
                # A hook that will not start (again) leaves the wait at the
                # approval, or after 2 s.
                name = plan["hooks"][k["hook"]]["name"]

                def count():
                    return sum(1 for r in read_record(ctx.record)
                               if r[0] == k["what"] and r[1] == name)
                n0 = count()
                t = time.monotonic()
                wait_until(lambda: count() > n0 or (time.monotonic() - t > 0.3 and approved()), 2.0)
                time.sleep(k["after"])
            else:
                t = time.monotonic()
                while not wait_nth_line(a, rx_hook, k["nth"], line0, 0.3):
                    if approved() or time.monotonic() - t > 2.0:
                        break
                time.sleep(k["after"])
            during = hook_running(ctx.record)
            runs[-1]["killed"] = time.time()
            a.kill9()
            stats["kills"] += 1
            stats["during_hook"] += during
            stats["by_mode"][k["mode"]] = stats["by_mode"].get(k["mode"], 0) + 1
            if restart_after:
                time.sleep(restart_after)
            a = ctx.start_agent(args=args)
            runs.append({"pid": a.proc.pid, "killed": None})
        # The last agent must have seen the event (two polls) and approved it.
        m = time.monotonic()
        left = (nb or time.time() + 15) + 5 - time.time()
        done = wait_until(lambda: [x for x in sim.approvals() if eid in x["event_ids"]] and
                          len([r for r in sim.requests() if r["method"] == "GET" and
                               r["path"] == SE_PATH and r["mono"] > m]) >= 2, max(left, 1.0), 0.02)
        a.stop()
        check_round(plan, eid, nb, read_record(ctx.record), sim.approvals(), runs,
                    done, stats, violation)
    except Exception:
        violation("error: " + traceback.format_exc().strip().splitlines()[-1])
        if verbose:
            traceback.print_exc()
    bad = bool(stats["violations"])
    if bad and verbose:
        print(ctx.logs(), file=sys.stderr)
    if bad or keep:
        stats["violations"] = [v + " (kept in %s)" % ctx.dir for v in stats["violations"]]
    ctx.cleanup(keep=bad or keep)
    return stats


def run_of(start, runs):
    """The agent run that started a hook: its parent, or (orphaned before its
    shell started) the run killed last before the start line."""
    for r in runs:
        if r["pid"] == start[5]:
            return r
    dead = [r for r in runs if r["killed"] is not None and r["killed"] <= start[3]]
    return dead[-1] if dead else runs[0]


def check_round(plan, eid, nb, rec, approvals, runs, done, stats, violation):
    names = [h["name"] for h in plan["hooks"]]
    index = {n: i for i, n in enumerate(names)}
    codes = {h["name"]: h["code"] for h in plan["hooks"]}
    for r in rec:
        if r[2] != eid:
            violation("%s ran for id %r, the event is %r" % (r[1], r[2], eid))
    rec = [r for r in rec if r[2] == eid]

    # rerun: a start after an end of the same hook. The run that started it
    # must have lived on GRACE s after the end to have seen and kept it.
    starts = {r[4]: r for r in rec if r[0] == "start"}
    for name in names:
        mine = [r for r in rec if r[1] == name]
        for i, r in enumerate(mine):
            if r[0] != "end" or not [x for x in mine[i + 1:] if x[0] == "start"]:
                continue
            run = run_of(starts[r[4]], runs) if r[4] in starts else None
            if run is None:
                continue
            killed = run["killed"]
            if killed is None:
                violation("%s started again although the agent that ran it saw it end" % name)
            elif killed - r[3] >= GRACE:
                violation("%s ran again after it recorded completion (its agent was killed "
                          "%.2f s after it ended)" % (name, killed - r[3]))
            else:
                stats["grace_reruns"] += 1

    # order: no start of i after a start of j > i.
    highest = -1
    for r in rec:
        if r[0] != "start":
            continue
        i = index[r[1]]
        if i < highest:
            violation("%s started after %s had started" % (r[1], names[highest]))
        highest = max(highest, i)

    # exit 77: nothing after a hook that exits 77.
    first77 = next((i for i, n in enumerate(names) if codes[n] == 77), None)
    if first77 is not None:
        after = sorted({r[1] for r in rec if r[0] == "start" and index[r[1]] > first77})
        if after:
            violation("%s ran after %s exits 77" % (", ".join(after), names[first77]))

    # finished: every hook that should run ended before NotBefore.
    should = names if first77 is None else names[:first77 + 1]
    last_end = 0.0
    for n in should:
        ends = [r[3] for r in rec if r[0] == "end" and r[1] == n]
        if not ends:
            violation("%s never ended (the chain did not finish)" % n)
        else:
            last_end = max(last_end, max(ends))
            if nb is not None and min(ends) > nb:
                violation("%s ended %.2f s after NotBefore" % (n, min(ends) - nb))

    # approval
    mine = [a for a in approvals if eid in a["event_ids"]]
    if not done or not mine:
        violation("the event was not approved" if not mine else
                  "the last agent did not poll after the approval")
    for a in mine:
        st = a["statuses"][a["event_ids"].index(eid)]
        if st != "Scheduled":
            violation("approval re-sent for an event already %s (%d approvals)" % (st, len(mine)))
        if a["t"] < last_end:
            violation("approved %.3f s before the last hook ended" % (last_end - a["t"]))
        if nb is not None and a["t"] > nb:
            violation("approved %.2f s after NotBefore" % (a["t"] - nb))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--round", type=int, default=None, help="run only this round of the seed")
    ap.add_argument("--agent", default=os.environ.get("SPOT_AGENT", "agent/spot-agent"))
    ap.add_argument("--keep", action="store_true", help="keep every round's directory")
    ap.add_argument("--verbose", "-v", action="store_true")
    args = ap.parse_args()
    harness.AGENT = os.path.join(harness.TOP, args.agent)
    if not os.access(harness.AGENT, os.X_OK):
        print("torture: agent binary '%s' not found" % harness.AGENT)
        return 1
    rounds = [args.round] if args.round is not None else list(range(args.rounds))
    base = tempfile.mkdtemp(prefix="spot-torture-")
    t0 = time.monotonic()
    totals = {"rounds": 0, "kills": 0, "during_hook": 0, "grace_reruns": 0, "by_mode": {}}
    violations = []
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
            futs = [ex.submit(run_round, args.seed, r, base, args.keep, args.verbose)
                    for r in rounds]
            for f in concurrent.futures.as_completed(futs):
                s = f.result()
                totals["rounds"] += 1
                for k in ("kills", "during_hook", "grace_reruns"):
                    totals[k] += s[k]
                for k, v in s["by_mode"].items():
                    totals["by_mode"][k] = totals["by_mode"].get(k, 0) + v
                for v in s["violations"]:
                    print("VIOLATION " + v, flush=True)
                violations += s["violations"]
    finally:
        for s in World.all:
            s.stop()
        shutil.rmtree(base, ignore_errors=True)
    modes = ", ".join("%d %s" % (v, {"delay": "after a delay", "record": "on a hook record line",
                                     "log": "on a log line"}[k])
                      for k, v in sorted(totals["by_mode"].items()))
    print("torture: %d rounds (seed %d), %d kills (%d during a hook; %s), %d re-runs within "
          "%.1f s of a completion (allowed), %d violations, %.1f s"
          % (totals["rounds"], args.seed, totals["kills"], totals["during_hook"], modes,
             totals["grace_reruns"], GRACE, len(violations), time.monotonic() - t0))
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
