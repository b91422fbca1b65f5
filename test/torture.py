#!/usr/bin/python3
"""Kill -9 torture of the hook chain: the real agent, the simulator and real
recording hooks, with SIGKILL at seeded random moments, on every cloud.

Each round picks a cloud and starts the agent for it with 3-4 hooks of
random short durations (some exit 1, some exit 77), then gives it a notice:

  azure     a Preempt in Scheduled Events, approved after the hooks
  aws       a spot notice whose time moves on at every answer, as AWS's
            own metadata mock moves it (POST /__sim/aws/spot, moving_time);
            in some rounds also the Auto Scaling target lifecycle state
            Terminated with a lifecycle action waiting for the instance,
            before or after the spot notice, and the agent given the
            simulator's lifecycle hook (aws-lifecycle-hook) and Auto
            Scaling API (aws-autoscaling-url): the termination joins the
            eviction and its CompleteLifecycleAction goes out after the
            hooks; without the lifecycle hook nothing is acknowledged
  gcp       instance/preempted TRUE (gcp-preempt-notice 10-14 s); nothing
            is acknowledged

It kills the agent with SIGKILL one to three times (after a random delay,
on a random hook record line, or on a random agent log line naming a
hook) and restarts it on the same state directory each time. At each kill,
before the restart, it reads the state file the next agent will load
(state.json) and notes which hooks' outcomes are saved there (a final
"result": ok, failed, timeout, skipped) and which acknowledgements are
("approval" "state": "sent"). Once the eviction is done on disk it checks:

  rerun     a hook that recorded its completion (its last line, written
            just before it exits) starts again for the event only if its
            outcome had not been saved when the agent died: it is a
            violation if no restart came between its end and the new start
            (the agent saw it end), or if its outcome was final in the
            state file at any restart after its end; otherwise it is an
            allowed re-run, and the time between its end line and the kill
            is the re-run window, measured (the largest is reported)
  order     hook i never starts after a hook j > i started for the event,
            across restarts
  exit 77   no hook after one that exits 77 ever starts
  id        every hook saw one SPOT_EVENT_ID: Azure's EventId; on AWS and
            GCP the id the agent made up at the first sighting, the same
            across every kill
  ack       Azure: every successful approval found the event Scheduled (a
            re-sent approval is allowed only while it still is; the
            simulator's approval record says), none came before the hooks
            that run had ended, and the event was approved before
            NotBefore. AWS with the lifecycle hook: exactly one
            CompleteLifecycleAction succeeded, with CONTINUE, for the
            simulator's hook, after the hooks that run had ended and
            before the spot NotBefore; another one after it is a violation
            unless the completion was not yet saved as sent at the restarts
            in between (an allowed re-send). AWS without the lifecycle hook
            and GCP: no Auto Scaling call, no approval
  finished  every hook ended or was skipped by an exit 77 before NotBefore
            (AWS: the earliest time the moving notice can first have shown,
            its first answer's whole second less the jitter; GCP: the
            preemption plus the notice), and the eviction reached "done"

Rounds run in parallel (--jobs, default 2); each round's plan (its cloud
included) is a function of (seed, round) alone, so --seed S --round R
replays one plan (the timing is the machine's); --cloud runs only the
rounds whose plan picks that cloud. The summary counts, per cloud, rounds,
kills, kills during a hook, allowed re-runs and violations, and gives the
largest re-run window and the smallest time after which a kill found an
outcome saved; the exit status is 1 on any violation or error.

usage: test/torture.py [--rounds N] [--seed S] [--jobs J] [--round R]
                       [--cloud azure|aws|gcp] [--agent PATH] [--keep]
                       [--verbose]
"""

import argparse
import concurrent.futures
import email.utils
import math
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

CLOUDS = ("azure", "aws", "gcp")
POLL_MS = 200
MARGIN = 2
# The path each cloud's poll reads (a GET of it is one poll).
POLL_PATH = {"azure": "/metadata/scheduledevents",
             "aws": "/latest/meta-data/spot/instance-action",
             "gcp": "/computeMetadata/v1/instance/preempted"}
# Polls the last agent must make once the eviction is done on disk, for a
# re-run or a re-sent acknowledgement to show (an AWS poll reads the spot
# item about once a second, among the other items; GCP's are one-second
# hanging GETs).
POLLS_AFTER = {"azure": 2, "aws": 1, "gcp": 1}
FINAL = ("ok", "failed", "timeout", "skipped")
ASG_HOOK = "spot-drain"      # the simulator's default aws_lifecycle_hooks
AWS_JITTER = 1               # the simulator's default jitter of a moving time


def plan_round(seed, rnd):
    """Everything random about a round, from (seed, round) alone."""
    rng = random.Random("%d:%d" % (seed, rnd))
    cloud = rng.choice(CLOUDS)
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
    plan = {"cloud": cloud, "hooks": hooks, "kills": kills,
            "restart_after": [rng.choice((0, 0, 0.02, 0.1)) for _ in kills]}
    if cloud == "gcp":
        plan["notice"] = rng.randint(10, 14)          # gcp-preempt-notice, whole seconds
    else:
        plan["notice"] = rng.uniform(10.0, 14.0)
    if cloud == "aws":
        plan["lifecycle"] = rng.random() < 0.5
        # The termination before the spot notice, or after it, and how long after.
        plan["lifecycle_first"] = rng.random() < 0.3
        plan["gap"] = rng.choice((0, 0, 0.05, 0.3))
    return plan


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


def saved_records(state_dir):
    """The records of the state file as the next agent will load it ([] when
    there is none yet)."""
    try:
        body, _ = harness.read_state_body(os.path.join(state_dir, "state.json"))
    except FileNotFoundError:
        return []
    return body.get("records") or []


def snapshot(state_dir):
    """What the state file holds now: the hooks whose outcome is final, and
    whether an acknowledgement is saved as sent."""
    final, acked = {}, False
    for r in saved_records(state_dir):
        for h in r.get("hooks") or []:
            if h.get("result") in FINAL:
                final[h["name"]] = h["result"]
        for n in r.get("notices") or []:
            if n.get("needs_ack") and (n.get("approval") or {}).get("state") == "sent":
                acked = True
    return {"final": final, "acked": acked}


def eviction_done(state_dir):
    """The state file has the eviction, and it is done."""
    try:
        recs = saved_records(state_dir)
    except (OSError, ValueError, KeyError):
        return False
    return bool(recs) and all(r.get("lifecycle") == "done" for r in recs)


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


def agent_args(ctx, sim, plan):
    over = {"imds_url": sim.url, "listen": "none", "poll_interval": POLL_MS,
            "margin": MARGIN, "log_level": "debug", "provider": plan["cloud"]}
    if plan["cloud"] == "aws" and plan["lifecycle"]:
        over["aws_lifecycle_hook"] = ASG_HOOK
        over["aws_autoscaling_url"] = sim.url + "/__aws/autoscaling"
    elif plan["cloud"] == "gcp":
        over["gcp_preempt_notice"] = plan["notice"]
    return ctx.base_args(**over)


def give_notice(sim, plan):
    """The round's notice; returns (Azure's EventId or None, NotBefore as a
    Unix time)."""
    cloud = plan["cloud"]
    if cloud == "azure":
        eid = sim.add_event(type="Preempt", not_before_in=plan["notice"])
        for ev in sim.call("GET", "/__sim/events"):
            if ev["EventId"] == eid:
                return eid, email.utils.parsedate_to_datetime(ev["NotBefore"]).timestamp()
        raise harness.TestFailure("the simulator does not list event %s" % eid)
    if cloud == "gcp":
        t = time.time()
        sim.call("POST", "/__sim/gcp/preempt")
        return None, t + plan["notice"]

    def lifecycle():
        sim.call("POST", "/__sim/aws/lifecycle", {"state": "Terminated", "wait": True})

    if plan["lifecycle"] and plan["lifecycle_first"]:
        lifecycle()
        time.sleep(plan["gap"])
    t = time.time()
    sim.call("POST", "/__sim/aws/spot", {"notice_in": plan["notice"], "moving_time": True})
    if plan["lifecycle"] and not plan["lifecycle_first"]:
        time.sleep(plan["gap"])
        lifecycle()
    # The first answer's time: now + notice_in -/+ jitter, in whole seconds.
    return None, math.floor(t + plan["notice"] - AWS_JITTER)


def run_round(seed, rnd, base, keep, verbose):
    plan = plan_round(seed, rnd)
    cloud = plan["cloud"]
    sim = World.sim(base)
    ctx = harness.Context("torture-%d" % rnd)
    ctx.sim = None           # shared; not stopped with the round
    stats = {"cloud": cloud, "lifecycle": bool(plan.get("lifecycle")), "kills": 0,
             "during_hook": 0, "by_mode": {}, "reruns": [], "saved": [], "resent": 0,
             "violations": []}
    runs = []                # each agent run: {"pid", "started": wall time}
    restarts = []            # the kill of runs[i]: {"killed": wall time, "final", "acked"}
    rx_hook = re.compile("|".join(re.escape(h["name"]) for h in plan["hooks"]))

    def violation(msg):
        stats["violations"].append("round %d %s (--seed %d --round %d): %s"
                                   % (rnd, cloud, seed, rnd, msg))

    try:
        for h in plan["hooks"]:
            ctx.hook(h["name"], hook_body(ctx.record, h))
        if cloud != "azure":
            # Azure's ~5 requests a second is not theirs: no 429 after a
            # restart that the killed agent's requests would cause.
            sim.config(rate_limit=0)
        args = agent_args(ctx, sim, plan)
        a = ctx.start_agent(args=args)
        runs.append({"started": 0.0, "pid": a.proc.pid})
        eid, nb = give_notice(sim, plan)

        def finished():
            # With the lifecycle hook: and the lifecycle action completed (a
            # termination seen after a quick chain joins it too).
            return eviction_done(ctx.state) and not (plan.get("lifecycle") and not any(
                c["action"] == "CompleteLifecycleAction" and c["status"] == 200
                for c in sim.call("GET", "/__sim/aws/autoscaling")["calls"]))

        for k, restart_after in zip(plan["kills"], plan["restart_after"]):
            line0 = len(a.lines)
            if k["mode"] == "delay":
                time.sleep(k["after"])
            elif k["mode"] == "record":
                # A hook that will not start (again) leaves the wait once the
                # eviction is done, or after 2 s.
                name = plan["hooks"][k["hook"]]["name"]

                def count():
                    return sum(1 for r in read_record(ctx.record)
                               if r[0] == k["what"] and r[1] == name)
                n0 = count()
                t = time.monotonic()
                wait_until(lambda: count() > n0 or (time.monotonic() - t > 0.3 and finished()), 2.0)
                time.sleep(k["after"])
            else:
                t = time.monotonic()
                while not wait_nth_line(a, rx_hook, k["nth"], line0, 0.3):
                    if finished() or time.monotonic() - t > 2.0:
                        break
                time.sleep(k["after"])
            during = hook_running(ctx.record)
            a.proc.kill()
            # Once kill(2) has returned the agent runs no more code: the
            # latest it can have saved anything.
            killed = time.time()
            a.wait_exit()
            # What the next agent loads: the killed one writes no more.
            snap = snapshot(ctx.state)
            snap["killed"] = killed
            restarts.append(snap)
            stats["kills"] += 1
            stats["during_hook"] += during
            stats["by_mode"][k["mode"]] = stats["by_mode"].get(k["mode"], 0) + 1
            if restart_after:
                time.sleep(restart_after)
            runs.append({"started": time.time()})
            a = ctx.start_agent(args=args)
            runs[-1]["pid"] = a.proc.pid
        # The last agent must have finished the eviction and polled after.
        left = nb + 5 - time.time()
        done = None
        if not wait_until(finished, max(left, 1.0), 0.02):
            done = "the eviction never reached done on disk"
        else:
            m = time.monotonic()
            if not wait_until(lambda: len([r for r in sim.requests() if r["method"] == "GET" and
                                           r["path"] == POLL_PATH[cloud] and r["mono"] > m])
                              >= POLLS_AFTER[cloud], 5.0, 0.05):
                done = "the last agent did not poll after the eviction was done"
        a.stop()
        asg = sim.call("GET", "/__sim/aws/autoscaling")["calls"]
        check_round(plan, eid, nb, read_record(ctx.record), sim.approvals(), asg, runs, restarts,
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
    stats["reruns"] = [(w, rnd, n) for w, n in stats["reruns"]]
    ctx.cleanup(keep=bad or keep)
    return stats


def run_of(start, runs):
    """The index of the agent run that started a hook: its parent, or (its
    shell orphaned before it read $PPID) the last run started before it."""
    for i, r in enumerate(runs):
        if r["pid"] == start[5]:
            return i
    return max(i for i, r in enumerate(runs) if r["started"] <= start[3])


def check_reruns(names, rec, runs, restarts, stats, violation):
    """A start of a hook after an end of it, by the agent run j while run i
    ran the one that ended: allowed only when j > i (it was killed) and the
    state file held no final outcome for the hook at any of the restarts
    from run i to run j. Its window: from the end line to run i's kill."""
    starts = {r[4]: r for r in rec if r[0] == "start"}
    for name in names:
        last_end = None          # (end record, the run that ran it)
        for r in rec:
            if r[1] != name:
                continue
            if r[0] == "end":
                i = run_of(starts[r[4]], runs) if r[4] in starts else None
                last_end = (r, i)
                if i is not None and i < len(restarts) and name in restarts[i]["final"]:
                    stats["saved"].append(restarts[i]["killed"] - r[3])
                continue
            if last_end is None or last_end[1] is None:
                continue
            end, i = last_end
            j = run_of(r, runs)
            between = restarts[i:j]
            saved = [x for x in between if name in x["final"]]
            if j <= i:
                violation("%s started again %.3f s after it ended, by the agent that ran it"
                          % (name, r[3] - end[3]))
            elif saved:
                violation("%s started again although its outcome (%s) was saved: the state "
                          "file had it at a restart %.3f s after it ended"
                          % (name, saved[0]["final"][name], saved[0]["killed"] - end[3]))
            else:
                stats["reruns"].append((restarts[i]["killed"] - end[3], name))


def check_round(plan, eid, nb, rec, approvals, asg, runs, restarts, done, stats, violation):
    """done: None, or what kept the round from ending well."""
    cloud = plan["cloud"]
    names = [h["name"] for h in plan["hooks"]]
    index = {n: i for i, n in enumerate(names)}
    codes = {h["name"]: h["code"] for h in plan["hooks"]}

    # id: Azure's EventId, or the one the agent made up, for every hook.
    ids = []
    for r in rec:
        if r[2] not in ids:
            ids.append(r[2])
    if eid is not None:
        for i in ids:
            if i != eid:
                violation("hooks ran for id %r, the event is %r" % (i, eid))
    elif len(ids) > 1:
        violation("the hooks saw %d ids across the kills: %s" % (len(ids), ", ".join(ids)))
    eid = eid if eid is not None else (ids[0] if ids else None)
    rec = [r for r in rec if r[2] == eid]

    check_reruns(names, rec, runs, restarts, stats, violation)

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
            if min(ends) > nb:
                violation("%s ended %.2f s after NotBefore" % (n, min(ends) - nb))
    if done:
        violation(done)

    # ack
    if cloud == "azure":
        mine = [a for a in approvals if eid in a["event_ids"]]
        if not mine:
            violation("the event was not approved")
        for a in mine:
            st = a["statuses"][a["event_ids"].index(eid)]
            if st != "Scheduled":
                violation("approval re-sent for an event already %s (%d approvals)" % (st, len(mine)))
            if a["t"] < last_end:
                violation("approved %.3f s before the last hook ended" % (last_end - a["t"]))
            if a["t"] > nb:
                violation("approved %.2f s after NotBefore" % (a["t"] - nb))
        return
    if approvals:
        violation("%d Azure approvals on %s" % (len(approvals), cloud))
    if cloud == "gcp" or not plan["lifecycle"]:
        if asg:
            violation("%d Auto Scaling calls (%s) with nothing to acknowledge"
                      % (len(asg), ", ".join(sorted({c["action"] or "?" for c in asg}))))
        return
    completes = [c for c in asg if c["action"] == "CompleteLifecycleAction"]
    ok = [c for c in completes if c["status"] == 200]
    if len(ok) != 1:
        violation("the lifecycle action was completed %d times (%d CompleteLifecycleAction calls: %s)"
                  % (len(ok), len(completes),
                     ", ".join("%s %s" % (c["status"], c["code"]) for c in completes)))
    if not ok:
        return
    c = ok[0]
    p = c["params"]
    if p.get("LifecycleActionResult") != "CONTINUE" or p.get("LifecycleHookName") != ASG_HOOK:
        violation("completed with %s for hook %s (want CONTINUE for %s)"
                  % (p.get("LifecycleActionResult"), p.get("LifecycleHookName"), ASG_HOOK))
    if c["t"] < last_end:
        violation("completed %.3f s before the last hook ended" % (last_end - c["t"]))
    if c["t"] > nb:
        violation("completed %.2f s after the spot NotBefore" % (c["t"] - nb))
    for x in completes:
        if x["seq"] <= c["seq"]:
            continue
        between = [r for r in restarts if c["t"] <= r["killed"] <= x["t"]]
        if not between or any(r["acked"] for r in between):
            violation("CompleteLifecycleAction re-sent %.3f s after it succeeded (%s %s), %s"
                      % (x["t"] - c["t"], x["status"], x["code"],
                         "saved as sent at a restart in between" if between else
                         "no restart in between"))
        else:
            stats["resent"] += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--round", type=int, default=None, help="run only this round of the seed")
    ap.add_argument("--cloud", choices=CLOUDS, default=None,
                    help="run only the rounds whose plan picks this cloud")
    ap.add_argument("--agent", default=os.environ.get("SPOT_AGENT", "agent/spot-agent"))
    ap.add_argument("--keep", action="store_true", help="keep every round's directory")
    ap.add_argument("--verbose", "-v", action="store_true")
    args = ap.parse_args()
    harness.AGENT = os.path.join(harness.TOP, args.agent)
    if not os.access(harness.AGENT, os.X_OK):
        print("torture: agent binary '%s' not found" % harness.AGENT)
        return 1
    rounds = [args.round] if args.round is not None else list(range(args.rounds))
    if args.cloud:
        rounds = [r for r in rounds if plan_round(args.seed, r)["cloud"] == args.cloud]
    base = tempfile.mkdtemp(prefix="spot-torture-")
    t0 = time.monotonic()
    per = {c: {"rounds": 0, "lifecycle": 0, "kills": 0, "during_hook": 0, "reruns": 0,
               "resent": 0, "violations": 0} for c in CLOUDS}
    by_mode, reruns, saved, violations = {}, [], [], []
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
            futs = [ex.submit(run_round, args.seed, r, base, args.keep, args.verbose)
                    for r in rounds]
            for f in concurrent.futures.as_completed(futs):
                s = f.result()
                c = per[s["cloud"]]
                c["rounds"] += 1
                c["lifecycle"] += s["lifecycle"]
                for k in ("kills", "during_hook", "resent"):
                    c[k] += s[k]
                c["reruns"] += len(s["reruns"])
                c["violations"] += len(s["violations"])
                for k, v in s["by_mode"].items():
                    by_mode[k] = by_mode.get(k, 0) + v
                reruns += s["reruns"]
                saved += s["saved"]
                for v in s["violations"]:
                    print("VIOLATION " + v, flush=True)
                violations += s["violations"]
    finally:
        for s in World.all:
            s.stop()
        shutil.rmtree(base, ignore_errors=True)
    tot = {k: sum(c[k] for c in per.values()) for k in per["azure"]}
    modes = ", ".join("%d %s" % (v, {"delay": "after a delay", "record": "on a hook record line",
                                     "log": "on a log line"}[k])
                      for k, v in sorted(by_mode.items()))
    clouds = "; ".join(
        "%s %d rounds%s, %d kills, %d during a hook, %d allowed re-runs%s, %d violations"
        % (name, c["rounds"],
           " (%d with a lifecycle hook)" % c["lifecycle"] if name == "aws" else "",
           c["kills"], c["during_hook"], c["reruns"],
           " (%d completions re-sent)" % c["resent"] if c["resent"] else "", c["violations"])
        for name, c in per.items() if c["rounds"])
    if reruns:
        w = max(reruns)
        window = "largest re-run window %.1f ms (%s, round %d)" % (w[0] * 1000, w[2], w[1])
    else:
        window = "no re-run window"
    if saved:
        window += ", an outcome saved %.1f ms after its end at the soonest" % (min(saved) * 1000)
    print("torture: %d rounds (seed %d), %d kills (%d during a hook; %s), %d allowed re-runs, "
          "%s, %d violations, %.1f s [%s]"
          % (tot["rounds"], args.seed, tot["kills"], tot["during_hook"], modes, tot["reruns"],
             window, len(violations), time.monotonic() - t0, clouds))
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
