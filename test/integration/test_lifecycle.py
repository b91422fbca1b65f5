"""Regression tests of the eviction lifecycle (detected, running, paused,
draining, acknowledging, done, cancelled, recovering, closed) as the real
binary lives it against the simulator: cancellation and a notice back,
readiness across kill -9, a torn state file, a chain that never ran,
deadlines that move, AWS notices that join or flap, quiet signals on an idle
VM, the drain, optional requests that fail and the IMDSv1 fallback. Each test
states its promise in its docstring and judges by what the hooks recorded,
what the simulator saw (request, approval and Auto Scaling call records with
their times), /v1/status, /readyz, /metrics, and a log line where nothing
else shows it."""

import json
import os
import re
import subprocess
import threading
import time

import harness
from harness import TIMEOUT, approvals_for, check, read_state_body, wait_for
from harness import (event_not_before, gate_wait, gets, http_status, rfc3339, touch,
                     wait_polls)

VM = "agent-vm0"
AWS_VM = "i-0123456789abcdef0"
SE_PATH = "/metadata/scheduledevents"
SPOT_PATH = "/latest/meta-data/spot/instance-action"
LIFECYCLE_PATH = "/latest/meta-data/autoscaling/target-lifecycle-state"
REBALANCE_PATH = "/latest/meta-data/events/recommendations/rebalance"
TOKEN_PATH = "/latest/api/token"
ASG_HOOK = "spot-drain"


# ---- helpers --------------------------------------------------------------

def rec_hook(ctx, name, body="", code=0):
    """A hook that appends 'start NAME ID DEADLINE' when it starts and
    'end NAME ID' when its body is done, then exits with code."""
    return ctx.hook(name, 'echo "start %s $SPOT_EVENT_ID $SPOT_DEADLINE" >> %s\n%s\n'
                    'echo "end %s $SPOT_EVENT_ID" >> %s\nexit %d'
                    % (name, ctx.record, body, name, ctx.record, code))


def runs(ctx):
    """The record as (kind, name, id) tuples."""
    out = []
    for line in ctx.recorded():
        f = line.split()
        if len(f) >= 3 and f[0] in ("start", "end"):
            out.append((f[0], f[1], f[2]))
    return out


def starts(ctx, name):
    return [r for r in runs(ctx) if r[0] == "start" and r[1] == name]


def ended(ctx, name):
    return [r for r in runs(ctx) if r[0] == "end" and r[1] == name]


def stamp_hook(ctx, name, body="", code=0):
    """A hook that writes its start and end times (Unix, ns) to
    out/NAME.start and out/NAME.end."""
    base = os.path.join(ctx.out, name)
    return ctx.hook(name, 'echo "start %s $SPOT_EVENT_ID" >> %s\ndate +%%s.%%N > %s.start\n%s\n'
                    'date +%%s.%%N > %s.end\necho "end %s $SPOT_EVENT_ID" >> %s\nexit %d'
                    % (name, ctx.record, base, body, base, name, ctx.record, code))


def stamp(ctx, name, which):
    try:
        with open(os.path.join(ctx.out, "%s.%s" % (name, which))) as f:
            return float(f.read().strip())
    except (OSError, ValueError):
        return None


def status(ctx):
    code, body = ctx.http_get("/v1/status")
    check(code == 200, "/v1/status answered %d" % code)
    return json.loads(body)


class Sampler:
    """Samples GET path every interval in a thread: (unix time before the
    request, unix time after the answer, status); status None while nothing
    answers."""

    def __init__(self, ctx, path="/readyz", interval=0.02):
        self.ctx, self.path, self.interval = ctx, path, interval
        self.samples = []
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop_ev.is_set():
            t = time.time()
            st = http_status(self.ctx, self.path)
            self.samples.append((t, time.time(), st))
            self.stop_ev.wait(self.interval)

    def stop(self):
        self.stop_ev.set()
        self.thread.join(10)
        return list(self.samples)


def log_time(line):
    """The Unix time at the start of a text log line, None without one."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)", line)
    if not m:
        return None
    text = m.group(1)
    if not re.search(r"(Z|[+-]\d\d:?\d\d)$", text):
        text += "Z"
    return rfc3339(text)


def log_lines(a, pattern, start=0):
    rx = re.compile(pattern)
    with a.cond:
        return [l for l in a.lines[start:] if rx.search(l)]


# ---- 1. a cancelled chain that comes back ---------------------------------

def test_cancelled_chain_back_resumes_and_is_approved_once_after_it(ctx):
    """A chain cancelled while its first hook runs (the event gone for longer
    than the grace) is not approved while it is cancelled; when the same
    EventId is listed again (Azure reuses it, ~291 s to NotBefore) the hooks
    the cancel left run (hook 1 not again), and the approval goes out only
    after the last hook ended, exactly once."""
    sim = ctx.start_sim()
    gate = os.path.join(ctx.out, "gate")
    stamp_hook(ctx, "10-wait", gate_wait(gate))
    stamp_hook(ctx, "20-second")
    stamp_hook(ctx, "30-third")
    a = ctx.start_agent()
    a.wait_log(r"this VM is")
    eid = sim.add_event(type="Preempt", not_before_in=60)
    wait_for(lambda: starts(ctx, "10-wait"), what="the first hook")
    sim.remove_event(eid)
    a.wait_log(r"eviction %s: \w+ -> cancelled" % re.escape(eid))
    check(not approvals_for(sim, eid), "a cancelled chain was approved")
    line = len(a.lines)
    sim.add_event(id=eid, type="Preempt", not_before_in=291)
    a.wait_log(r"eviction %s: cancelled -> \w+" % re.escape(eid), start=line)
    # Back and the first hook still running: nothing may be approved yet.
    wait_polls(sim, SE_PATH, 3, time.monotonic(), "polls with the event back")
    check(not approvals_for(sim, eid), "approved while the first hook still ran")
    touch(gate)
    wait_for(lambda: approvals_for(sim, eid), what="the approval")
    end3 = stamp(ctx, "30-third", "end")
    check(end3 is not None, "the third hook did not end before the approval (record %r)"
          % ctx.recorded())
    first = approvals_for(sim, eid)[0]
    check(first["t"] >= end3, "approved %.3f s before the third hook ended" % (end3 - first["t"]))
    # Approved and Started now: more polls must not bring another approval.
    wait_polls(sim, SE_PATH, 5, time.monotonic(), "polls after the approval")
    check(len(approvals_for(sim, eid)) == 1, "approved %d times" % len(approvals_for(sim, eid)))
    check([(k, n) for k, n, _ in runs(ctx)] ==
          [("start", "10-wait"), ("end", "10-wait"), ("start", "20-second"), ("end", "20-second"),
           ("start", "30-third"), ("end", "30-third")],
          "hooks after the cancel and the return: %r" % ctx.recorded())
    check({i for _, _, i in runs(ctx)} == {eid}, "hooks saw another event id: %r" % ctx.recorded())


# ---- 2. readiness after kill -9 while the metadata service fails ----------

def test_readiness_after_kill9_without_imds_follows_not_before(ctx):
    """After kill -9 mid-chain, with every Scheduled Events GET answered 500,
    the restarted agent resumes the chain and /readyz answers 503 from its
    first answer until the event's NotBefore has passed (never 200 before
    it), and 200 after it."""
    sim = ctx.start_sim()
    gate = os.path.join(ctx.out, "gate")
    rec_hook(ctx, "10-first")
    rec_hook(ctx, "20-wait", gate_wait(gate))
    rec_hook(ctx, "30-last")
    a = ctx.start_agent()
    a.wait_log(r"this VM is")
    eid = sim.add_event(type="Preempt", not_before_in=14)
    nb = event_not_before(sim, eid)
    wait_for(lambda: starts(ctx, "20-wait"), what="the second hook")
    a.kill9()
    sim.fault(path=SE_PATH, method="GET", kind="status", status=500, count=-1)
    touch(gate)
    sampler = Sampler(ctx, "/readyz", 0.02)
    try:
        b = ctx.start_agent()
        wait_for(lambda: ended(ctx, "30-last"), timeout=10,
                 what="the resumed chain while the metadata service fails")
        wait_for(lambda: time.time() > nb, timeout=nb - time.time() + 5, what="NotBefore")
        wait_for(lambda: [s for s in sampler.samples if s[2] == 200], timeout=8,
                 what="/readyz 200 once NotBefore has passed")
    finally:
        samples = sampler.stop()
    answered = [s for s in samples if s[2] is not None]
    check(answered, "/readyz never answered")
    early = [s for s in answered if s[2] != 503 and s[1] < nb]
    check(not early, "/readyz answered %r %.2f s before NotBefore, after the restart without the "
          "metadata service" % (early[0][2], nb - early[0][1]) if early else "")
    check(answered[0][2] == 503, "the restarted agent's first /readyz answer was %r" % answered[0][2])
    check(len(starts(ctx, "10-first")) == 1 and len(starts(ctx, "30-last")) == 1,
          "hooks after the restart: %r" % ctx.recorded())
    ok_at = [s for s in answered if s[2] == 200]
    check(ok_at and ok_at[0][0] - nb <= 5.0, "/readyz 200 only %.1f s after NotBefore"
          % ((ok_at[0][0] - nb) if ok_at else -1))
    b.kill9()


# ---- 3. a torn state.json with a good spare --------------------------------

def test_torn_state_file_falls_back_to_the_spare(ctx):
    """When state.json is torn (the machine died before it reached the disk)
    and the spare left by the save before is whole, the restarted agent
    warns, naming both files, and loads the spare's records: the eviction is
    resumed, a hook whose outcome the spare holds is not run again, and
    /v1/status shows the spare's record."""
    sim = ctx.start_sim()
    gate = os.path.join(ctx.out, "gate")
    rec_hook(ctx, "10-a")
    rec_hook(ctx, "20-b")
    rec_hook(ctx, "30-wait", gate_wait(gate))
    rec_hook(ctx, "40-last")
    a = ctx.start_agent()
    a.wait_log(r"this VM is")
    eid = sim.add_event(type="Preempt", not_before_in=60)
    wait_for(lambda: starts(ctx, "30-wait"), what="the third hook")
    a.wait_log(r"hook '30-wait' started")
    a.kill9()
    path = os.path.join(ctx.state, "state.json")
    spare = os.path.join(ctx.state, ".state.json.spare")
    check(os.path.exists(spare), "the run left no spare: %r" % os.listdir(ctx.state))
    body, _ = read_state_body(spare)
    recs = [r for r in body["records"] if r["id"].lower() == eid.lower()]
    check(recs, "the spare holds no record of %s" % eid)
    final = [h["name"] for h in recs[0]["hooks"] if h["result"] not in ("pending", "running")]
    check(final, "the spare holds no hook outcome (hooks %r)"
          % [(h["name"], h["result"]) for h in recs[0]["hooks"]])
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        f.truncate(size // 2)
    touch(gate)
    before = {n: len(starts(ctx, n)) for n in final}
    b = ctx.start_agent()
    m = b.wait_log(r"warning: state: .*")
    line = m.group(0)
    check(path in line and ".state.json.spare" in line and ctx.state in line,
          "the warning does not name both files: %r" % line)
    wait_for(lambda: approvals_for(sim, eid), what="the approval of the resumed chain")
    again = [n for n in final if len(starts(ctx, n)) != before[n]]
    check(not again, "hooks whose outcome the spare holds ran again: %r (record %r)"
          % (again, ctx.recorded()))
    check(len(starts(ctx, "40-last")) == 1, "the last hook did not run once: %r" % ctx.recorded())
    st = status(ctx)
    check(st.get("event") and st["event"]["id"].lower() == eid.lower(),
          "/v1/status does not show the spare's eviction: %r" % st.get("event"))
    results = {h["name"]: h.get("result") for h in st["hooks"]}
    check(all(results.get(n) == "ok" for n in final), "hook results after the spare: %r" % results)


# ---- 4. a chain in which no hook ran --------------------------------------

def failfork_shim(ctx):
    """The LD_PRELOAD shim (test/shim/failfork.c): fork() and clone() fail
    with EAGAIN while the file named by $SPOT_FAILFORK_FILE exists."""
    cands = [os.environ.get("SPOT_FAILFORK_SO", ""),
             os.path.join(harness.TOP, "build", "test", "failfork.so")]
    for c in cands:
        if c and os.path.exists(c):
            return c
    src = os.path.join(harness.TOP, "test", "shim", "failfork.c")
    out = os.path.join(ctx.dir, "failfork.so")
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", out, src, "-ldl"], check=True)
    return out


def test_chain_where_no_hook_ran_is_never_approved(ctx):
    """Every hook start fails (fork EAGAIN) until past the deadline: the
    chain ends with no hook run and is never approved, not at the deadline,
    not after NotBefore, and not once fork works again."""
    sim = ctx.start_sim()
    failfile = os.path.join(ctx.out, "failfork")
    touch(failfile)   # empty: every fork fails until it is removed
    rec_hook(ctx, "10-first")
    rec_hook(ctx, "20-second")
    asan = "detect_leaks=1:abort_on_error=0:verify_asan_link_order=0"
    a = ctx.start_agent(env={"LD_PRELOAD": failfork_shim(ctx), "SPOT_FAILFORK_FILE": failfile,
                             "ASAN_OPTIONS": asan})
    a.wait_log(r"this VM is")
    eid = sim.add_event(type="Preempt", not_before_in=6)
    nb = event_not_before(sim, eid)
    a.wait_log(r"could not start")
    a.wait_log(r"eviction %s: \w+ -> done \(chain over and no hook ran\)" % re.escape(eid),
               timeout=15)
    check(not approvals_for(sim, eid), "a chain in which no hook ran was approved at its deadline")
    wait_for(lambda: time.time() > nb + 1, timeout=nb - time.time() + 5, what="NotBefore + 1 s")
    os.unlink(failfile)
    wait_polls(sim, SE_PATH, 5, time.monotonic(), "polls once fork works again")
    check(not approvals_for(sim, eid), "a chain in which no hook ran was approved after NotBefore")
    check(not [r for r in sim.requests() if r["method"] == "POST"],
          "an approval was tried: %r" % [r["body"] for r in sim.requests() if r["method"] == "POST"])
    check(not runs(ctx), "a hook ran after the deadline: %r" % ctx.recorded())
    st = status(ctx)
    check(not (st.get("approval") or {}).get("approved"), "/v1/status says approved: %r"
          % st.get("approval"))


# ---- 5. deadlines follow the platform -------------------------------------

def _running_hook_follows_deadline(ctx, change, sim_args=()):
    """A long hook (SIGTERM trapped: it notes the time and goes on) runs
    when change(sim, eid) moves the deadline earlier: the hook is told the
    deadline moved, gets SIGTERM a grace before the new deadline and is
    killed by it, not after it. Returns (deadline, when the change was made)."""
    sim = ctx.start_sim("--no-auto-start", *sim_args)
    term = os.path.join(ctx.out, "term")
    ctx.hook("10-long", 'echo "start 10-long $SPOT_EVENT_ID" >> %s\n'
             "trap 'date +%%s.%%N >> %s' TERM\n"
             "i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n"
             'echo "end 10-long" >> %s' % (ctx.record, term, ctx.record))
    rec_hook(ctx, "20-after")
    a = ctx.start_agent()
    a.wait_log(r"this VM is")
    eid = sim.add_event(type="Preempt", not_before_in=120)
    wait_for(lambda: starts(ctx, "10-long"), what="the long hook")
    a.wait_log(r"hook '10-long' started")
    line = len(a.lines)
    t_change = time.time()
    change(sim, eid)
    a.wait_log(r"hook '10-long': the deadline moved", start=line)
    deadline = status(ctx)["deadline_usec"] / 1e6
    check(deadline < t_change + 60, "the chain's deadline did not move: %.1f s away"
          % (deadline - t_change))
    a.wait_log(r"hook '10-long' (killed|exited)", start=line, timeout=deadline - time.time() + 10)

    def long_hook_ended():
        h = [x for x in status(ctx)["hooks"] if x["name"] == "10-long"][0]
        return h if h["duration_usec"] is not None else None
    h = wait_for(long_hook_ended, timeout=5, what="the long hook's end in /v1/status")
    end = (h["started_usec"] + h["duration_usec"]) / 1e6
    check(h["timed_out"] is True, "the hook is not marked timed out: %r" % h)
    check(end <= deadline + 0.3, "the hook ended %.2f s after the moved deadline" % (end - deadline))
    try:
        with open(term) as f:
            terms = [float(x) for x in f.read().split()]
    except OSError:
        terms = []
    check(terms, "the hook never got SIGTERM")
    check(terms[0] < deadline, "SIGTERM came %.2f s after the deadline" % (terms[0] - deadline))
    check(terms[0] >= t_change - 0.1, "SIGTERM before the change?")
    # The grace is inside the budget: killed by the deadline, not a grace later.
    check(end - terms[0] <= 2.0 + 0.3, "SIGKILL %.2f s after SIGTERM" % (end - terms[0]))
    check(not [r for r in runs(ctx) if r[0] == "end" and r[1] == "10-long"],
          "the long hook ran its course")
    return deadline, t_change


def test_deadline_moved_earlier_ends_the_running_hook_by_it(ctx):
    """NotBefore moved earlier while a hook runs: the hook is ended by the
    new deadline (NotBefore - margin), its kill grace inside it."""
    box = {}

    def move(sim, eid):
        sim.call("POST", "/__sim/events/" + eid, {"not_before_in": 6})
        box["nb"] = event_not_before(sim, eid)

    deadline, _ = _running_hook_follows_deadline(ctx, move)
    check(abs(deadline - (box["nb"] - 2)) < 0.01, "deadline %.3f is not the new NotBefore %.3f - "
          "margin" % (deadline, box["nb"]))


def test_notice_under_twice_the_margin_gives_the_hooks_the_margin(ctx):
    """With a margin of 5 s and 6.8 to 8 s of notice, NotBefore - margin
    would leave the hooks under 3 s, less than a notice of 5 s gives them:
    they get the margin's length, 5 s, and the deadline stays before
    NotBefore."""
    sim = ctx.start_sim()
    ctx.hook("10-quick", "true")
    a = ctx.start_agent(margin=5)
    a.wait_log(r"this VM is")
    eid = sim.add_event(type="Preempt", not_before_in=8)
    nb = event_not_before(sim, eid)
    wait_for(lambda: approvals_for(sim, eid), what="the approval")
    st = status(ctx)
    detected, deadline = st["detected_usec"] / 1e6, st["deadline_usec"] / 1e6
    check(5 < nb - detected < 10, "the notice left was %.2f s, not between one and two margins"
          % (nb - detected))
    check(abs((deadline - detected) - 5) < 0.01, "the hooks had %.3f s, not the margin's 5 s (NotBefore "
          "%.3f s after detection)" % (deadline - detected, nb - detected))
    check(st["emergency"] is False, "a notice over the margin is no emergency: %r" % st["emergency"])


def test_deadline_moved_into_the_past_ends_the_running_hook(ctx):
    """NotBefore moved into the past (the event still Scheduled) while a
    hook runs: the deadline becomes the emergency budget from now and the
    hook is ended by it, its kill grace inside it."""
    deadline, t = _running_hook_follows_deadline(
        ctx, lambda sim, eid: sim.call("POST", "/__sim/events/" + eid, {"not_before_in": -5}))
    check(t <= deadline <= t + 11, "deadline %.1f s after the move" % (deadline - t))


def test_event_started_ends_the_running_hook_by_the_emergency_deadline(ctx):
    """The event turns Started while a hook runs: the deadline becomes the
    emergency budget from now and the hook is ended by it, its kill grace
    inside it."""
    deadline, t = _running_hook_follows_deadline(
        ctx, lambda sim, eid: sim.call("POST", "/__sim/events/%s/start" % eid),
        ("--started-ttl", "0"))
    check(t <= deadline <= t + 11, "deadline %.1f s after the start" % (deadline - t))


# ---- 6. AWS: a spot notice and the Auto Scaling termination ---------------

def autoscaling_calls(sim, action=None):
    calls = sim.call("GET", "/__sim/aws/autoscaling")["calls"]
    return [c for c in calls if action is None or c["action"] == action]


def test_aws_spot_and_asg_termination_one_eviction_one_completion(ctx):
    """A spot notice and the Auto Scaling Terminated state for the same
    instance are one eviction: the hooks run once, CompleteLifecycleAction
    goes out once, after the chain, and /v1/status shows one eviction with
    two notices whose deadline is the spot notice's (the earlier)."""
    sim = ctx.start_sim()
    gate = os.path.join(ctx.out, "gate")
    stamp_hook(ctx, "10-first")
    stamp_hook(ctx, "20-wait", gate_wait(gate))
    a = ctx.start_agent(provider="aws", aws_lifecycle_hook=ASG_HOOK,
                        aws_autoscaling_url=sim.url + "/__aws/autoscaling")
    a.wait_log(r"this VM is '%s'" % AWS_VM)
    sim.call("POST", "/__sim/aws/spot", {"action": "terminate", "notice_in": 120})
    spot_nb = rfc3339(sim.call("GET", "/__sim/aws")["spot"]["time"])
    wait_for(lambda: starts(ctx, "20-wait"), what="the hooks for the spot notice")
    sim.call("POST", "/__sim/aws/lifecycle", {"state": "Terminated", "wait": True})

    def two_notices():
        st = status(ctx)
        return st if len(st.get("notices") or []) == 2 else None
    st = wait_for(two_notices, what="one eviction with both notices")
    types = sorted(n["event"]["type"] for n in st["notices"])
    check(types == ["Preempt", "Terminate"], "notices %r" % types)
    check(abs(st["deadline_usec"] / 1e6 - (spot_nb - 2)) < 1.01,
          "the deadline %.1f s is not the spot notice's (%.1f s away)"
          % (st["deadline_usec"] / 1e6 - time.time(), spot_nb - 2 - time.time()))
    check(not autoscaling_calls(sim, "CompleteLifecycleAction"), "completed while the chain ran")
    touch(gate)
    wait_for(lambda: autoscaling_calls(sim, "CompleteLifecycleAction"), what="CompleteLifecycleAction")
    end = stamp(ctx, "20-wait", "end")
    check(end is not None, "the chain had not ended when the lifecycle action was completed")
    done = autoscaling_calls(sim, "CompleteLifecycleAction")
    check(done[0]["t"] >= end, "completed %.3f s before the chain ended" % (end - done[0]["t"]))
    # More polls: no second completion, no second run of the hooks.
    wait_polls(sim, SPOT_PATH, 5, time.monotonic(), "spot polls after the completion")
    done = autoscaling_calls(sim, "CompleteLifecycleAction")
    check(len(done) == 1, "CompleteLifecycleAction sent %d times: %r"
          % (len(done), [(c["status"], c["code"]) for c in done]))
    check(done[0]["status"] == 200 and done[0]["params"].get("LifecycleActionResult") == "CONTINUE",
          "the completion: %r" % done[0])
    check([(k, n) for k, n, _ in runs(ctx)] ==
          [("start", "10-first"), ("end", "10-first"), ("start", "20-wait"), ("end", "20-wait")],
          "hooks: %r" % ctx.recorded())
    st = status(ctx)
    check(len(st["notices"]) == 2, "notices after the chain: %r" % st["notices"])
    check(not st["history"], "more than one eviction: %r" % [h["id"] for h in st["history"]])
    check(len(set(i for _, _, i in runs(ctx))) == 1, "the hooks saw two ids: %r" % ctx.recorded())


# ---- 7. AWS: a spot notice that flaps ---------------------------------------

def test_aws_spot_notice_back_after_12s_does_not_run_the_hooks_again(ctx):
    """A spot notice that leaves the metadata for 12 s (longer than the
    grace) and comes back with the same action and time is the same notice:
    the hooks do not run again."""
    sim = ctx.start_sim()
    rec_hook(ctx, "10-first")
    rec_hook(ctx, "20-second")
    a = ctx.start_agent(provider="aws")
    a.wait_log(r"this VM is '%s'" % AWS_VM)
    sim.call("POST", "/__sim/aws/spot", {"action": "terminate", "notice_in": 120})
    spot_time = sim.call("GET", "/__sim/aws")["spot"]["time"]
    wait_for(lambda: ended(ctx, "20-second"), what="the hooks for the spot notice")
    a.wait_log(r"hook chain done")
    sim.call("DELETE", "/__sim/aws/spot")
    gone = time.monotonic()
    wait_for(lambda: [r for r in gets(sim, SPOT_PATH, gone) if r["status"] == 404],
             what="a spot poll that finds nothing listed")
    # 12 s of polls that find nothing listed.
    wait_for(lambda: gets(sim, SPOT_PATH, gone + 12.0), timeout=20, what="spot polls over 12 s")
    sim.call("POST", "/__sim/aws/spot", {"action": "terminate", "time": spot_time})
    back = time.monotonic()
    wait_for(lambda: [r for r in gets(sim, SPOT_PATH, back) if r["status"] == 200],
             what="the spot notice listed again")
    # Two seconds of polls that list it again.
    wait_for(lambda: gets(sim, SPOT_PATH, back + 2.0), timeout=10, what="spot polls for 2 s more")
    check([(k, n) for k, n, _ in runs(ctx)] ==
          [("start", "10-first"), ("end", "10-first"), ("start", "20-second"), ("end", "20-second")],
          "the hooks ran again for a spot notice back with the same time: %r" % ctx.recorded())
    check(len({i for _, _, i in runs(ctx)}) == 1, "ids %r" % ctx.recorded())
    check(len(log_lines(a, r"eviction notice: ")) == 1,
          "the notice back was taken for a new eviction: %r" % log_lines(a, r"eviction notice: "))


# ---- 8. quiet signals ------------------------------------------------------

def labelled_metric(text, name, **labels):
    sel = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    m = re.search(r"^%s\{%s\} (\S+)$" % (re.escape(name), re.escape(sel)), text, re.M)
    return float(m.group(1)) if m else None


def test_aws_idle_404s_are_ok_and_a_moving_spot_time_is_logged_rarely(ctx):
    """On an idle AWS spot VM the 404s that mean "nothing listed" are
    successful requests: spot_agent_imds_requests_total{result="http_error"}
    stays 0. With AWS's moving spot time (the time moves on with the clock
    at every answer) the notice's change is logged at most twice, not at
    every poll."""
    sim = ctx.start_sim()
    rec_hook(ctx, "10-hook")
    a = ctx.start_agent(provider="aws")
    a.wait_log(r"this VM is '%s'" % AWS_VM)
    wait_for(lambda: len([r for r in gets(sim, "/latest/meta-data/") if r["status"] == 404]) >= 20,
             timeout=40, what="20 polls answered 404 (nothing listed)")
    text = ctx.http_get("/metrics")[1]
    ok = labelled_metric(text, "spot_agent_imds_requests_total", result="ok")
    err = labelled_metric(text, "spot_agent_imds_requests_total", result="http_error")
    check(err == 0, "an idle VM counts %r metadata requests as http_error (ok: %r): the 404 of "
          "an item with nothing listed is an answer" % (err, ok))
    check(ok and ok >= 20, "ok requests: %r" % ok)
    sim.call("POST", "/__sim/aws/spot", {"notice_in": 120, "moving_time": True})
    line = len(a.lines)
    a.wait_log(r"eviction notice: Preempt", start=line)
    seen = time.monotonic()
    wait_for(lambda: len([r for r in gets(sim, SPOT_PATH, seen) if r["status"] == 200]) >= 8,
             timeout=30, what="8 polls of the moving spot notice")
    changes = [l for l in log_lines(a, r"is now \w+.*NotBefore", line) if ": debug: " not in l]
    check(len(changes) <= 2, "the moving spot time was logged %d times in 8 polls:\n%s"
          % (len(changes), "\n".join(changes)))
    check(len(starts(ctx, "10-hook")) == 1, "the hook ran %d times" % len(starts(ctx, "10-hook")))
    err = labelled_metric(ctx.http_get("/metrics")[1], "spot_agent_imds_requests_total",
                          result="http_error")
    check(err == 0, "http_error requests with a spot notice listed: %r" % err)


# ---- 9. the drain ------------------------------------------------------------

def _readiness_turned(a):
    lines = log_lines(a, r"readiness: /readyz answers 503 from now")
    check(lines, "no readiness line in the log")
    t = log_time(lines[0])
    check(t is not None, "no time on the log line %r" % lines[0])
    return t


def _wait_draining(ctx, sim, eid):
    """Waits until /v1/status shows the lifecycle "draining" (checked while
    nothing is approved yet); returns the lifecycles seen."""
    seen = []

    def draining():
        st = status(ctx)
        seen.append(st.get("lifecycle"))
        if st.get("lifecycle") == "draining":
            check(not approvals_for(sim, eid), "approved while /v1/status says draining")
            return True
        return False
    try:
        wait_for(draining, timeout=10, interval=0.05, what="lifecycle draining")
    except harness.TestFailure:
        check(False, "/v1/status never showed the lifecycle 'draining' (seen %r; approvals %r)"
              % (sorted(set(map(str, seen))), approvals_for(sim, eid)))


def test_drain_holds_the_approval_after_readiness_dropped(ctx):
    """With drain = 3 and a quick hook, the approval reaches the platform no
    sooner than 3 s after /readyz turned 503; /v1/status shows the lifecycle
    "draining" meanwhile."""
    sim = ctx.start_sim()
    rec_hook(ctx, "10-quick")
    a = ctx.start_agent(drain=3)
    a.wait_log(r"this VM is")
    sampler = Sampler(ctx, "/readyz", 0.02)
    try:
        eid = sim.add_event(type="Preempt", not_before_in=30)
        wait_for(lambda: ended(ctx, "10-quick"), what="the hook")
        _wait_draining(ctx, sim, eid)
        wait_for(lambda: approvals_for(sim, eid), what="the approval")
    finally:
        samples = sampler.stop()
    approved = approvals_for(sim, eid)[0]["t"]
    turned = _readiness_turned(a)
    st = status(ctx)
    # Log times are cut to the millisecond: 1 ms in the agent's favour.
    check(approved - turned >= 3.0 - 0.001,
          "approved %.3f s after readiness dropped (its log line), drain 3 s (detected %.3f s, "
          "drain_until %.3f s before the log line)"
          % (approved - turned, turned - st["detected_usec"] / 1e6, turned - st["drain_until_usec"] / 1e6))
    first503 = [s for s in samples if s[2] == 503]
    check(first503, "/readyz never answered 503")
    check(approved - first503[0][0] >= 3.0 - 0.1, "approved %.3f s after /readyz was first seen 503"
          % (approved - first503[0][0]))
    check(approved - turned <= 3.0 + 1.5, "approved only %.1f s after readiness dropped"
          % (approved - turned))


def test_drain_longer_than_the_deadline_approves_by_the_deadline(ctx):
    """A drain longer than the time to the deadline does not hold the
    approval past the deadline: it is sent by the deadline, and /v1/status
    shows the lifecycle "draining" until then."""
    sim = ctx.start_sim()
    rec_hook(ctx, "10-quick")
    a = ctx.start_agent(drain=60)
    a.wait_log(r"this VM is")
    eid = sim.add_event(type="Preempt", not_before_in=8)
    nb = event_not_before(sim, eid)
    deadline = nb - 2
    wait_for(lambda: ended(ctx, "10-quick"), what="the hook")
    _wait_draining(ctx, sim, eid)
    wait_for(lambda: approvals_for(sim, eid), timeout=deadline - time.time() + 10,
             what="the approval")
    ap = approvals_for(sim, eid)[0]
    # Sent at the deadline at the latest; 0.5 s for it to arrive on a loaded machine.
    check(ap["t"] <= deadline + 0.5, "approved %.2f s after the deadline" % (ap["t"] - deadline))
    # The drain (60 s) held it until the deadline, not less.
    check(ap["t"] >= deadline - 0.01, "approved %.2f s before the deadline, %.2f s after readiness "
          "dropped: the drain was cut short" % (deadline - ap["t"], ap["t"] - _readiness_turned(a)))
    check(ap["statuses"] == ["Scheduled"], "the approval found the event %r" % ap["statuses"])


# ---- 10. optional requests that fail ---------------------------------------

def _aws_optional_failing_keeps_spot(ctx, path):
    sim = ctx.start_sim()
    rec_hook(ctx, "10-hook")
    sim.fault(path=path, kind="status", status=500, count=-1)
    a = ctx.start_agent(provider="aws")
    a.wait_log(r"this VM is '%s'" % AWS_VM)
    m = time.monotonic()
    wait_for(lambda: [r for r in gets(sim, path, m) if r["fault"]], what="a failed %s" % path)
    sim.call("POST", "/__sim/aws/spot", {"action": "terminate", "notice_in": 120})
    wait_for(lambda: ended(ctx, "10-hook"), timeout=15,
             what="the hook for a spot notice while %s answers 500" % path)
    check([r for r in gets(sim, path) if r["fault"]], "the optional item was never asked")
    st = status(ctx)
    check(st["event"] and st["event"]["type"] == "Preempt", "status event %r" % st["event"])


def test_aws_rebalance_failing_does_not_hide_a_spot_notice(ctx):
    """events/recommendations/rebalance answering 500 at every request does
    not hide a spot notice: the hooks run."""
    _aws_optional_failing_keeps_spot(ctx, REBALANCE_PATH)


def test_aws_lifecycle_state_failing_does_not_hide_a_spot_notice(ctx):
    """autoscaling/target-lifecycle-state answering 500 at every request
    does not hide a spot notice: the hooks run."""
    _aws_optional_failing_keeps_spot(ctx, LIFECYCLE_PATH)


def test_gcp_maintenance_failing_does_not_hide_preemption(ctx):
    """instance/maintenance-event answering 503 at every request does not
    hide preempted=TRUE: the hooks run."""
    path = "/computeMetadata/v1/instance/maintenance-event"
    sim = ctx.start_sim()
    rec_hook(ctx, "10-hook")
    sim.fault(path=path, kind="status", status=503, count=-1)
    a = ctx.start_agent(provider="gcp")
    a.wait_log(r"this VM is 'gce-vm0'")
    m = time.monotonic()
    wait_for(lambda: [r for r in gets(sim, path, m) if r["fault"]], what="a failed maintenance-event")
    sim.call("POST", "/__sim/gcp/preempt")
    wait_for(lambda: ended(ctx, "10-hook"), timeout=15,
             what="the hook for a preemption while maintenance-event answers 503")
    st = status(ctx)
    check(st["event"] and st["event"]["type"] == "Preempt", "status event %r" % st["event"])


# ---- 11. the IMDSv1 fallback --------------------------------------------------

V1_LINE = r"without a session token \(IMDSv1\)"


def tokenless_gets(sim, since_mono=0.0):
    return [r for r in gets(sim, "/latest/meta-data/", since_mono)
            if not r["headers"].get("x-aws-ec2-metadata-token")]


def test_aws_token_refused_falls_back_to_imdsv1(ctx):
    """The token PUT refused with 403 on an instance that allows IMDSv1: the
    agent reads the metadata service without a token, sees a spot notice
    and runs the hooks; the switch is logged once and /v1/status shows
    poll.imds_v1 true."""
    sim = ctx.start_sim()
    sim.config(aws_v1_allowed=True)
    sim.fault(method="PUT", path=TOKEN_PATH, kind="status", status=403, count=-1)
    rec_hook(ctx, "10-hook")
    a = ctx.start_agent(provider="aws")
    a.wait_log(r"this VM is '%s'" % AWS_VM)
    a.wait_log(V1_LINE)
    sim.call("POST", "/__sim/aws/spot", {"action": "terminate", "notice_in": 120})
    wait_for(lambda: ended(ctx, "10-hook"), timeout=15, what="the hook for the spot notice over IMDSv1")
    wait_polls(sim, SPOT_PATH, 3, time.monotonic(), "spot polls after the notice")
    check([r for r in tokenless_gets(sim) if r["path"] == SPOT_PATH and r["status"] == 200],
          "the spot notice was not read without a token")
    st = status(ctx)
    check(st["poll"]["imds_v1"] is True, "poll.imds_v1 is %r" % st["poll"]["imds_v1"])
    check(st["event"] and st["event"]["type"] == "Preempt", "status event %r" % st["event"])
    lines = [l for l in log_lines(a, V1_LINE) if ": debug: " not in l]
    check(len(lines) == 1, "the fallback was logged %d times:\n%s" % (len(lines), "\n".join(lines)))


def test_aws_token_stalled_falls_back_within_a_second(ctx):
    """A token PUT that is not answered (stalled 30 s) is given up within
    about a second: the agent reads the metadata service without a token."""
    sim = ctx.start_sim()
    sim.config(aws_v1_allowed=True)
    sim.fault(method="PUT", path=TOKEN_PATH, kind="stall", seconds=30, count=-1)
    a = ctx.start_agent(provider="aws")
    put = wait_for(lambda: [r for r in sim.requests() if r["method"] == "PUT"], what="the token PUT")[0]
    v1 = wait_for(lambda: [r for r in tokenless_gets(sim) if r["status"] == 200], timeout=10,
                  what="a metadata GET without a token")[0]
    check(v1["mono"] - put["mono"] <= 1.0 + 0.3, "the first GET without a token came %.2f s after "
          "the stalled token PUT" % (v1["mono"] - put["mono"]))
    a.wait_log(V1_LINE)
    wait_for(lambda: status(ctx)["poll"]["imds_v1"] is True, timeout=5, what="poll.imds_v1 true")


def test_aws_no_fallback_when_it_is_off(ctx):
    """With aws-imds-fallback = no, a refused token PUT is a failed round:
    no request goes out without a token, poll.imds_v1 stays false and a spot
    notice cannot be read."""
    sim = ctx.start_sim()
    sim.config(aws_v1_allowed=True)
    sim.fault(method="PUT", path=TOKEN_PATH, kind="status", status=403, count=-1)
    rec_hook(ctx, "10-hook")
    a = ctx.start_agent(provider="aws", config=ctx.config_file("aws-imds-fallback = no\n"))
    sim.call("POST", "/__sim/aws/spot", {"action": "terminate", "notice_in": 120})
    m = time.monotonic()
    wait_for(lambda: len([r for r in sim.requests() if r["method"] == "PUT" and r["mono"] >= m]) >= 4,
             timeout=15, what="4 token PUTs")
    check(not tokenless_gets(sim), "requests without a token: %r"
          % [r["path"] for r in tokenless_gets(sim)][:5])
    st = status(ctx)
    check(st["poll"]["imds_v1"] is False, "poll.imds_v1 is %r" % st["poll"]["imds_v1"])
    check(st["poll"]["failed"] >= 1, "no failed round: %r" % st["poll"])
    check(not a.log_has(V1_LINE), "the fallback was logged")
    check(not runs(ctx), "a hook ran: %r" % ctx.recorded())
