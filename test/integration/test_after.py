"""What comes after the hooks: the Auto Scaling lifecycle action (heartbeats,
completion, credentials, the group), the warm pool, the recover hooks and
the per-type approval policy. Each test drives the real binary against the
simulator and judges by what the simulator recorded (Auto Scaling calls,
approvals), what the hooks wrote, the log and /v1/status."""

import email.utils
import json
import os
import re
import statistics
import subprocess
import time

from harness import (AGENT, TIMEOUT, approvals_for, check, gate_wait, read_state_body, touch, wait_for,
                     write_state_body)

AWS_VM = "i-0123456789abcdef0"
HEARTBEAT_S = 1          # --aws-heartbeat-interval in the heartbeat tests


# ---- helpers --------------------------------------------------------------

def rec_hook(ctx, name, body="", directory=None):
    """A hook that appends 'NAME start ID PHASE REASON DOWNTIME UNIXTIME'
    when it starts ('-' for a variable not set) and 'NAME end UNIXTIME'
    when its body is done."""
    return ctx.hook(name, 'echo "%s start $SPOT_EVENT_ID $SPOT_PHASE ${SPOT_RECOVER_REASON:--} '
                    '${SPOT_DOWNTIME:--} $(date +%%s.%%N)" >> %s\n'
                    '%s\necho "%s end $(date +%%s.%%N)" >> %s'
                    % (name, ctx.record, body, name, ctx.record), directory=directory)


def starts(ctx, name=None):
    """The 'start' lines of the record, split."""
    out = []
    for line in ctx.recorded():
        f = line.split(" ")
        if len(f) >= 2 and f[1] == "start" and (name is None or f[0] == name):
            out.append(f)
    return out


def ended_at(ctx, name):
    """When the hook's body ended (unix time), or None."""
    for line in ctx.recorded():
        f = line.split(" ")
        if len(f) == 3 and f[0] == name and f[1] == "end":
            return float(f[2])
    return None


def recover_dir(ctx):
    """recover.d below the hook directory, as trusted as the hooks dir
    (root's, 0755)."""
    d = os.path.join(ctx.hooks, "recover.d")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    return d


def status(ctx):
    code, body = ctx.http_get("/v1/status")
    check(code == 200, "/v1/status answered %d" % code)
    return json.loads(body)


def asg_view(sim):
    return sim.call("GET", "/__sim/aws/autoscaling")


def asg_calls(sim, action=None):
    return [c for c in asg_view(sim)["calls"] if action is None or c["action"] == action]


def asg_agent(ctx, sim, **over):
    """An AWS agent that completes the simulator's lifecycle hook through
    its Auto Scaling API."""
    hook = asg_view(sim)["hooks"][0]["name"]
    opts = dict(provider="aws", aws_lifecycle_hook=hook,
                aws_autoscaling_url=sim.url + "/__aws/autoscaling")
    opts.update(over)
    a = ctx.start_agent(**opts)
    a.wait_log(r"this VM is '%s'" % AWS_VM)
    return a, hook


def asg_terminate(sim):
    """The group terminates the instance and waits for the lifecycle hook."""
    sim.call("POST", "/__sim/aws/lifecycle", {"state": "Terminated", "wait": True})


def azure_not_before(sim, eid):
    """The unix time of an Azure event's NotBefore, as the simulator serves it."""
    for ev in sim.call("GET", "/__sim/events"):
        if ev["EventId"] == eid:
            return email.utils.parsedate_to_datetime(ev["NotBefore"]).timestamp()
    check(False, "the simulator lists no event %s" % eid)


def recover_lines(ctx):
    """The recover hooks' start lines, split."""
    return [f for f in starts(ctx) if f[3] == "recover"]


def check_recovered_once(ctx, eid, names, reason):
    """The recover hooks ran once each, in order, one after the other, for
    the eviction, with SPOT_PHASE=recover, the reason and a whole number
    of seconds of downtime."""
    rec = recover_lines(ctx)
    check([f[0] for f in rec] == names, "recover hooks %r in %r" % ([f[0] for f in rec], ctx.recorded()))
    for f in rec:
        check(f[2] == eid and f[4] == reason and re.fullmatch(r"\d+", f[5]),
              "recover hook %s: id %s reason %s downtime %s (want %s, %s, a whole number)"
              % (f[0], f[2], f[4], f[5], eid, reason))
    for prev, nxt in zip(rec, rec[1:]):
        end = ended_at(ctx, prev[0])
        check(end is not None and end <= float(nxt[6]), "%s started before %s ended" % (nxt[0], prev[0]))


def polls_pass(sim, n=5):
    """Waits until the agent has polled n more times."""
    k = len(sim.requests())
    wait_for(lambda: len(sim.requests()) >= k + n, what="%d more metadata requests" % n)


# ---- 1. Auto Scaling lifecycle: heartbeats, then one completion ------------

def test_asg_heartbeats_at_the_period_then_continue_once(ctx):
    """While the chain of an Auto Scaling termination runs, the agent sends
    RecordLifecycleActionHeartbeat every aws-heartbeat-interval (never
    faster, none lost), and after the last hook exactly one
    CompleteLifecycleAction with CONTINUE; no heartbeat after it."""
    sim = ctx.start_sim()
    gate = os.path.join(ctx.out, "gate")
    rec_hook(ctx, "10-long", gate_wait(gate))
    rec_hook(ctx, "20-last")
    a, hook = asg_agent(ctx, sim, aws_heartbeat_interval=HEARTBEAT_S)
    asg_terminate(sim)
    a.wait_log(r"eviction notice: Terminate")
    wait_for(lambda: len([c for c in asg_calls(sim, "RecordLifecycleActionHeartbeat")
                          if c["status"] == 200]) >= 5, timeout=TIMEOUT, what="5 heartbeats")
    check(not asg_calls(sim, "CompleteLifecycleAction"), "completed while the first hook runs")
    touch(gate)
    wait_for(lambda: [c for c in asg_calls(sim, "CompleteLifecycleAction") if c["done"]],
             what="CompleteLifecycleAction")
    a.wait_log(r"event approved \(CompleteLifecycleAction\)")
    polls_pass(sim, 10)
    calls = asg_calls(sim)
    done = [c for c in calls if c["action"] == "CompleteLifecycleAction"]
    check(len(done) == 1, "%d CompleteLifecycleAction calls: %r" % (len(done), done))
    c = done[0]
    check(c["status"] == 200 and c["signature_ok"] is True, "completion answered %r %r" % (c["status"], c["code"]))
    p = c["params"]
    check(p.get("LifecycleActionResult") == "CONTINUE" and p.get("LifecycleHookName") == hook
          and p.get("AutoScalingGroupName") == asg_view(sim)["group"] and p.get("InstanceId") == AWS_VM,
          "completion parameters %r" % p)
    last_end = ended_at(ctx, "20-last")
    check(last_end is not None and c["t"] >= last_end,
          "completed at %r, before the last hook ended at %r" % (c["t"], last_end))
    out = asg_view(sim)["outcome"]
    check(out and out["how"] == "completed" and out["result"] == "CONTINUE", "outcome %r" % out)
    beats = [x for x in calls if x["action"] == "RecordLifecycleActionHeartbeat"]
    check(all(x["seq"] < c["seq"] for x in beats), "a heartbeat after the completion")
    ok = [x["mono"] for x in beats if x["status"] == 200]
    # The first beat may have had to fetch the group and the credentials
    # first; from the second on each is one period after the one before.
    gaps = [round(b - a_, 3) for a_, b in zip(ok[1:], ok[2:])]
    check(len(gaps) >= 3, "heartbeats %r" % ok)
    check(all(0.85 * HEARTBEAT_S <= g <= 1.75 * HEARTBEAT_S for g in gaps),
          "heartbeat gaps %r, the interval is %d s" % (gaps, HEARTBEAT_S))
    check(abs(statistics.median(gaps) - HEARTBEAT_S) < 0.25, "median gap %r" % statistics.median(gaps))
    check(len(starts(ctx)) == 2, "hooks %r" % ctx.recorded())
    # The metadata requests a heartbeat or the completion needs first (the
    # group, the role, credentials) wait for room in the service's rate
    # budget like every other: none was throttled, none failed.
    throttled = [r for r in sim.requests() if r["status"] == 429]
    check(not throttled, "metadata requests throttled: %r" % [r["path"] for r in throttled])
    check(not a.log_has(r"heartbeat failed"), "a heartbeat failed:\n" + a.output())


def test_asg_abandon_when_a_hook_asks(ctx):
    """A hook that writes abandon=1 to $SPOT_REPORT makes the one
    CompleteLifecycleAction say ABANDON (after the whole chain), and
    /v1/status shows the hook's report."""
    sim = ctx.start_sim()
    rec_hook(ctx, "10-abandon", 'echo abandon=1 > "$SPOT_REPORT"')
    rec_hook(ctx, "20-next")
    a, _ = asg_agent(ctx, sim)
    asg_terminate(sim)
    a.wait_log(r"event approved \(CompleteLifecycleAction\)")
    polls_pass(sim, 10)
    done = asg_calls(sim, "CompleteLifecycleAction")
    check(len(done) == 1 and done[0]["status"] == 200, "completions %r" % done)
    check(done[0]["params"].get("LifecycleActionResult") == "ABANDON", "result %r" % done[0]["params"])
    check(done[0]["t"] >= ended_at(ctx, "20-next"), "completed before the chain ended")
    out = asg_view(sim)["outcome"]
    check(out and out["how"] == "completed" and out["result"] == "ABANDON", "outcome %r" % out)
    st = status(ctx)
    check([h["report"]["abandon"] for h in st["hooks"]] == [True, False], "reports %r" % st["hooks"])


# ---- 2. Completion exactly once across a crash -----------------------------

def test_asg_completed_once_across_kill9(ctx):
    """kill -9 in the middle of the chain of an Auto Scaling termination: the
    restarted agent runs the rest of the chain (the finished hook not
    again) and sends CompleteLifecycleAction once, after it; a further
    restart sends nothing more."""
    sim = ctx.start_sim()
    gate = os.path.join(ctx.out, "gate")
    rec_hook(ctx, "10-done")
    rec_hook(ctx, "20-slow", gate_wait(gate))
    rec_hook(ctx, "30-last")
    a, _ = asg_agent(ctx, sim)
    asg_terminate(sim)
    wait_for(lambda: starts(ctx, "20-slow"), what="the second hook running")
    eid = starts(ctx, "20-slow")[0][2]
    a.kill9()
    check(not asg_calls(sim, "CompleteLifecycleAction"), "completed before the chain ended")
    touch(gate)
    b = ctx.start_agent(provider="aws", aws_lifecycle_hook=asg_view(sim)["hooks"][0]["name"],
                        aws_autoscaling_url=sim.url + "/__aws/autoscaling")
    b.wait_log(r"resuming eviction %s" % re.escape(eid))
    b.wait_log(r"event approved \(CompleteLifecycleAction\)")
    rec = ctx.recorded()
    check([f[0] for f in starts(ctx)] == ["10-done", "20-slow", "20-slow", "30-last"],
          "hooks across the crash: %r" % rec)
    check(all(f[2] == eid for f in starts(ctx)), "event ids %r" % rec)
    done = asg_calls(sim, "CompleteLifecycleAction")
    check(len(done) == 1 and done[0]["status"] == 200, "completions %r" % done)
    check(done[0]["params"].get("LifecycleActionResult") == "CONTINUE", "result %r" % done[0]["params"])
    check(done[0]["t"] >= ended_at(ctx, "30-last"), "completed before the last hook ended")
    b.stop()
    c = ctx.start_agent(provider="aws", aws_lifecycle_hook=asg_view(sim)["hooks"][0]["name"],
                        aws_autoscaling_url=sim.url + "/__aws/autoscaling")
    c.wait_log(r"this VM is")
    polls_pass(sim, 10)
    check(len(asg_calls(sim, "CompleteLifecycleAction")) == 1, "completed again after a restart")
    check(ctx.recorded() == rec, "hooks ran after the second restart: %r" % ctx.recorded())


def test_asg_abandon_survives_kill9_and_heartbeats_resume(ctx):
    """A hook's abandon=1 is kept across kill -9: the restarted agent goes
    on heartbeating while the rest of the chain runs and completes the
    lifecycle action once, with ABANDON."""
    sim = ctx.start_sim()
    gate = os.path.join(ctx.out, "gate")
    rec_hook(ctx, "10-abandon", 'echo abandon=1 > "$SPOT_REPORT"')
    rec_hook(ctx, "20-slow", gate_wait(gate))
    a, hook = asg_agent(ctx, sim, aws_heartbeat_interval=HEARTBEAT_S)
    asg_terminate(sim)
    wait_for(lambda: starts(ctx, "20-slow"), what="the second hook running")
    a.kill9()
    killed = len(asg_calls(sim))
    b = ctx.start_agent(provider="aws", aws_lifecycle_hook=hook, aws_heartbeat_interval=HEARTBEAT_S,
                        aws_autoscaling_url=sim.url + "/__aws/autoscaling")
    wait_for(lambda: len([c for c in asg_calls(sim)[killed:] if c["action"] == "RecordLifecycleActionHeartbeat"
                          and c["status"] == 200]) >= 2, what="heartbeats after the restart")
    check(not asg_calls(sim, "CompleteLifecycleAction"), "completed while a hook runs")
    touch(gate)
    b.wait_log(r"event approved \(CompleteLifecycleAction\)")
    polls_pass(sim, 10)
    done = asg_calls(sim, "CompleteLifecycleAction")
    check(len(done) == 1 and done[0]["status"] == 200, "completions %r" % done)
    check(done[0]["params"].get("LifecycleActionResult") == "ABANDON", "result %r" % done[0]["params"])
    check([f[0] for f in starts(ctx)] == ["10-abandon", "20-slow", "20-slow"], "hooks %r" % ctx.recorded())


# ---- 3. A refused signature, expired credentials, the group without tags ----

def test_asg_refused_signature_logged_expired_credentials_renewed(ctx):
    """When Auto Scaling refuses the agent's signature (the region it signs
    for is no longer the service's), the heartbeat and the completion are
    logged with AWS's code and message and retried; when the role's
    credentials have expired (ExpiredToken), the agent says so in one
    info line with AWS's code, fetches new ones and the completion goes
    through, exactly once."""
    sim = ctx.start_sim()
    gate = os.path.join(ctx.out, "gate")
    rec_hook(ctx, "10-long", gate_wait(gate))
    a, _ = asg_agent(ctx, sim, aws_heartbeat_interval=HEARTBEAT_S)
    asg_terminate(sim)
    wait_for(lambda: [c for c in asg_calls(sim, "RecordLifecycleActionHeartbeat") if c["status"] == 200],
             what="a heartbeat")
    msg = re.escape("SignatureDoesNotMatch: Credential should be scoped to a valid region, not 'eu-west-1'.")
    sim.config(aws_region="us-west-2")
    a.wait_log(r"lifecycle heartbeat failed: RecordLifecycleActionHeartbeat: %s, retrying" % msg)
    touch(gate)
    a.wait_log(r"acknowledging Terminate notice \S+ \(aws-lifecycle\) failed: CompleteLifecycleAction: %s, "
               r"retrying while it is due" % msg)
    check(not [c for c in asg_calls(sim) if c["status"] == 200 and c["action"] == "CompleteLifecycleAction"],
          "completed with a refused signature")
    # The role's credentials end now; with the region right again the
    # next try meets ExpiredToken first.
    sim.call("POST", "/__sim/aws/credentials/rotate", {"expire_old": True})
    sim.config(aws_region="eu-west-1")
    a.wait_log(r"event approved \(CompleteLifecycleAction\)")
    polls_pass(sim, 10)
    done = asg_calls(sim, "CompleteLifecycleAction")
    codes = [c["code"] for c in done]
    check(codes[-2:] == ["ExpiredToken", None] and set(codes[:-2]) == {"SignatureDoesNotMatch"},
          "completion answers %r" % codes)
    check(done[-1]["status"] == 200 and done[-1]["params"].get("LifecycleActionResult") == "CONTINUE",
          "the completion %r" % done[-1])
    expired, ok = done[-2]["mono"], done[-1]["mono"]
    fetched = [r for r in sim.requests() if r["path"].startswith("/latest/meta-data/iam/security-credentials/")
               and r["status"] == 200 and expired < r["mono"] < ok]
    check(fetched, "no credentials fetched between ExpiredToken and the completion")
    renewed = [l for l in a.lines if "fetching the role's credentials again" in l]
    check(len(renewed) == 1 and re.search(r" info: aws: CompleteLifecycleAction: ExpiredToken: .*; fetching the "
                                          r"role's credentials again and retrying$", renewed[0]),
          "the renewal logged as %r" % renewed)
    out = asg_view(sim)["outcome"]
    check(out and out["how"] == "completed" and out["result"] == "CONTINUE", "outcome %r" % out)
    check(len(starts(ctx)) == 1, "hooks %r" % ctx.recorded())


def test_asg_group_from_describe_when_metadata_tags_are_off(ctx):
    """With instance metadata tags off, the agent learns its group through
    DescribeAutoScalingInstances (naming this instance) and completes the
    lifecycle action of that group once."""
    sim = ctx.start_sim()
    sim.config(aws_metadata_tags=False, aws_asg_name="web-blue-7")
    rec_hook(ctx, "10-hook")
    a, hook = asg_agent(ctx, sim)
    asg_terminate(sim)
    a.wait_log(r"event approved \(CompleteLifecycleAction\)")
    polls_pass(sim, 10)
    calls = asg_calls(sim)
    desc = [c for c in calls if c["action"] == "DescribeAutoScalingInstances"]
    check(desc and desc[0]["status"] == 200, "DescribeAutoScalingInstances %r" % desc)
    check(desc[0]["params"].get("InstanceIds.member.1") == AWS_VM, "described %r" % desc[0]["params"])
    done = [c for c in calls if c["action"] == "CompleteLifecycleAction"]
    check(len(done) == 1 and done[0]["status"] == 200, "completions %r" % done)
    check(done[0]["params"].get("AutoScalingGroupName") == "web-blue-7" and
          done[0]["params"].get("LifecycleHookName") == hook, "completion %r" % done[0]["params"])
    check(desc[0]["seq"] < done[0]["seq"], "described after the completion")
    tags = [r for r in sim.requests() if r["path"].startswith("/latest/meta-data/tags/")]
    check(tags and all(r["status"] == 404 for r in tags if r["status"] != 429), "tag requests %r"
          % [(r["path"], r["status"]) for r in tags])
    out = asg_view(sim)["outcome"]
    check(out and out["how"] == "completed" and out["result"] == "CONTINUE", "outcome %r" % out)


# ---- 4. The warm pool ------------------------------------------------------

def warm_pool_eviction(ctx, state):
    """The hooks' environment and stdin for an instance whose target
    lifecycle state becomes `state`; the hooks must run once."""
    sim = ctx.start_sim()
    env_dump, stdin_dump = os.path.join(ctx.out, "env"), os.path.join(ctx.out, "stdin")
    rec_hook(ctx, "10-hook", "env > %s; cat > %s" % (env_dump, stdin_dump))
    rec_hook(ctx, "20-next")
    a = ctx.start_agent(provider="aws")
    a.wait_log(r"this VM is '%s'" % AWS_VM)
    sim.call("POST", "/__sim/aws/lifecycle", {"state": state})
    a.wait_log(r"eviction notice: Terminate Scheduled from aws-lifecycle")
    a.wait_log(r"hook chain done: 2 ok")
    check(ctx.http_get("/readyz")[0] == 503, "/readyz is not 503 during the eviction")
    polls_pass(sim, 10)
    check([f[0] for f in starts(ctx)] == ["10-hook", "20-next"], "hooks %r" % ctx.recorded())
    env = dict(l.split("=", 1) for l in open(env_dump).read().splitlines() if "=" in l)
    with open(stdin_dump) as f:
        ev = json.load(f)
    check(env["SPOT_EVENT_TYPE"] == "Terminate" and env["SPOT_PHASE"] == "evict"
          and env["SPOT_PROVIDER"] == "aws", "environment %r" % env)
    check(ev["type"] == "Terminate" and ev["id"] == env["SPOT_EVENT_ID"] and ev["resources"] == [AWS_VM],
          "stdin %r" % ev)
    check(not asg_calls(sim), "Auto Scaling called without a lifecycle hook")
    return env, ev


def test_warm_pool_terminated_runs_the_hooks_as_an_eviction(ctx):
    """Target lifecycle state Warmed:Terminated is a Terminate: the hooks
    run once, as for any eviction, told that the warm pool instance is
    terminated."""
    env, ev = warm_pool_eviction(ctx, "Warmed:Terminated")
    check(env["SPOT_EVENT_ID"].startswith("aws-asg-warmed-terminate-" + AWS_VM), "id %r" % env["SPOT_EVENT_ID"])
    check("Warmed:Terminated" in ev["description"] and "terminated" in ev["description"]
          and "stop" not in ev["description"], "description %r" % ev["description"])


def test_warm_pool_stopped_runs_the_hooks_described_as_a_stop(ctx):
    """Target lifecycle state Warmed:Stopped is a Terminate whose
    description says the instance is being stopped into the warm pool; the
    hooks run once, as for a stop."""
    env, ev = warm_pool_eviction(ctx, "Warmed:Stopped")
    check(env["SPOT_EVENT_ID"].startswith("aws-asg-warmed-stop-" + AWS_VM), "id %r" % env["SPOT_EVENT_ID"])
    check(re.search(r"stopped into the warm pool", ev["description"]) and "Warmed:Stopped" in ev["description"],
          "description %r" % ev["description"])


# ---- 5. Recover hooks ------------------------------------------------------

def test_recover_after_a_cancelled_azure_event(ctx):
    """An Azure event deleted while its first hook runs and gone past the
    5 s grace is cancelled: the hooks left do not run, nothing is
    approved, and once its NotBefore has passed the recover hooks run
    once, in order, with SPOT_RECOVER_REASON=cancelled. /readyz answers
    200 while they run, and /v1/status shows the recovery (reason,
    started, downtime)."""
    sim = ctx.start_sim()
    rd = recover_dir(ctx)
    gate, rgate = os.path.join(ctx.out, "gate"), os.path.join(ctx.out, "rgate")
    rec_hook(ctx, "10-first", gate_wait(gate))
    rec_hook(ctx, "20-never")
    rec_hook(ctx, "10-reregister", gate_wait(rgate), directory=rd)
    rec_hook(ctx, "20-resume", directory=rd)
    a = ctx.start_agent()
    a.wait_log(r"this VM is")
    eid = sim.add_event(type="Preempt", not_before_in=9)
    nb = azure_not_before(sim, eid)
    wait_for(lambda: starts(ctx, "10-first"), what="the first hook")
    sim.remove_event(eid)
    a.wait_log(r"Preempt notice %s \(azure-scheduled-events\) left the listing" % re.escape(eid))
    touch(gate)
    a.wait_log(r"eviction %s: paused -> cancelled" % re.escape(eid))
    wait_for(lambda: recover_lines(ctx), timeout=TIMEOUT + 10, what="the first recover hook")
    first = recover_lines(ctx)[0]
    check(float(first[6]) >= nb, "recover hooks started %.2f s before NotBefore" % (nb - float(first[6])))
    code, body = ctx.http_get("/readyz")
    check(code == 200, "/readyz answered %d %r while the recover hooks run" % (code, body))
    st = status(ctx)
    r = st["recovery"]
    check(r is not None and r["reason"] == "cancelled", "recovery %r" % r)
    check(r["started_usec"] is not None and r["started_usec"] >= nb * 1e6 - 1e3,
          "recovery started %r, NotBefore %r" % (r["started_usec"], nb))
    check(isinstance(r["downtime_usec"], int) and r["downtime_usec"] >= 0, "downtime %r" % r["downtime_usec"])
    check(int(first[5]) == r["downtime_usec"] // 1000000, "SPOT_DOWNTIME %s, downtime_usec %r"
          % (first[5], r["downtime_usec"]))
    check([h["result"] for h in r["hooks"]] == ["running", "pending"], "recover hooks %r" % r["hooks"])
    touch(rgate)
    a.wait_log(r"recover chain done: 2 ok")
    polls_pass(sim, 10)
    check_recovered_once(ctx, eid, ["10-reregister", "20-resume"], "cancelled")
    check(not starts(ctx, "20-never"), "a hook ran after the cancel: %r" % ctx.recorded())
    check(not sim.approvals(), "a cancelled event was approved: %r" % sim.approvals())
    st = status(ctx)
    check(st["recovery"]["reason"] == "cancelled" and
          [h["result"] for h in st["recovery"]["hooks"]] == ["ok", "ok"], "recovery after %r" % st["recovery"])


def test_recover_after_an_azure_freeze_ends(ctx):
    """An Azure Freeze (events = +Freeze) is approved after the hooks,
    Started, then removed: it is over, and the recover hooks run once, in
    order, after it left, with SPOT_RECOVER_REASON=ended; /readyz answers
    200 while they run."""
    sim = ctx.start_sim()
    sim.config(started_ttl=1)
    rd = recover_dir(ctx)
    rgate = os.path.join(ctx.out, "rgate")
    rec_hook(ctx, "10-hook")
    rec_hook(ctx, "10-back", gate_wait(rgate), directory=rd)
    rec_hook(ctx, "20-again", directory=rd)
    a = ctx.start_agent(events="+Freeze")
    a.wait_log(r"this VM is")
    eid = sim.add_event(type="Freeze", not_before_in=20)
    a.wait_log(r"event approved")
    a.wait_log(r"Freeze notice %s \(azure-scheduled-events\) left the listing" % re.escape(eid))
    left = time.time()
    wait_for(lambda: recover_lines(ctx), what="the first recover hook")
    check(float(recover_lines(ctx)[0][6]) >= left, "recover hooks started before the Freeze left")
    code, body = ctx.http_get("/readyz")
    check(code == 200, "/readyz answered %d %r while the recover hooks run" % (code, body))
    check(status(ctx)["recovery"]["reason"] == "ended", "recovery %r" % status(ctx)["recovery"])
    touch(rgate)
    a.wait_log(r"recover chain done: 2 ok")
    polls_pass(sim, 10)
    check_recovered_once(ctx, eid, ["10-back", "20-again"], "ended")
    check([f[0] for f in starts(ctx) if f[3] == "evict"] == ["10-hook"], "hooks %r" % ctx.recorded())
    check(len(sim.approvals()) == 1, "approvals %r" % sim.approvals())


def aws_maintenance_recovery(ctx, not_before_in, **sim_config):
    """An AWS scheduled reboot (events = +Reboot) whose hooks ran, marked
    completed by EC2 once its NotBefore is less than a second away, or
    at once when that is far. Returns the agent, the event's id as the
    hooks saw it and when it was completed (unix time)."""
    sim = ctx.start_sim()
    if sim_config:
        sim.config(**sim_config)
    rd = recover_dir(ctx)
    rec_hook(ctx, "10-hook")
    rec_hook(ctx, "10-back", directory=rd)
    rec_hook(ctx, "20-again", directory=rd)
    a = ctx.start_agent(provider="aws", events="+Reboot")
    a.wait_log(r"this VM is '%s'" % AWS_VM)
    m = sim.call("POST", "/__sim/aws/maintenance", {"code": "system-reboot", "not_before_in": not_before_in})
    nb = time.time() + not_before_in
    a.wait_log(r"eviction notice: Reboot Scheduled from aws-maintenance")
    a.wait_log(r"hook chain done: 1 ok")
    evict_id = starts(ctx, "10-hook")[0][2]
    check(evict_id == m["EventId"], "event id %r for maintenance %r" % (evict_id, m["EventId"]))
    if nb - time.time() < 60:
        wait_for(lambda: time.time() > nb + 1, timeout=not_before_in + 5, what="the NotBefore to pass")
    polls_pass(sim, 5)
    check(not recover_lines(ctx), "recover hooks ran while the maintenance is active: %r" % ctx.recorded())
    completed = time.time()
    sim.call("POST", "/__sim/aws/maintenance/" + m["EventId"], {"state": "completed"})
    return sim, a, evict_id, completed


def check_maintenance_recovered(ctx, sim, a, evict_id, completed):
    """The agent takes the maintenance as over: recovering (not
    cancelled), the recover hooks once, in order, reason ended."""
    m = a.wait_log(r"eviction %s: \w+ -> (recovering|cancelled) \(([^)]*)\)" % re.escape(evict_id))
    check(m.group(1) == "recovering", "a completed maintenance was taken as %s (%s)" % (m.group(1), m.group(2)))
    a.wait_log(r"recover chain done: 2 ok")
    polls_pass(sim, 10)
    check([f[0] for f in starts(ctx) if f[3] == "evict"] == ["10-hook"], "hooks %r" % ctx.recorded())
    check_recovered_once(ctx, evict_id, ["10-back", "20-again"], "ended")
    check(float(recover_lines(ctx)[0][6]) >= completed, "recovered before the maintenance completed")
    check(status(ctx)["recovery"]["reason"] == "ended", "recovery %r" % status(ctx)["recovery"])


def test_recover_after_aws_maintenance_completed(ctx):
    """An AWS scheduled reboot (events = +Reboot) runs the hooks; once EC2
    has done it (past its NotBefore) and marks it completed, which moves
    it from events/maintenance/scheduled to .../history, the recover
    hooks run once, in order, with SPOT_RECOVER_REASON=ended."""
    check_maintenance_recovered(ctx, *aws_maintenance_recovery(ctx, 6))


def test_recover_after_aws_maintenance_listed_completed(ctx):
    """An AWS scheduled reboot that events/maintenance/scheduled still
    lists with State completed, before its NotBefore, is over at once:
    the recover hooks run once, in order, with SPOT_RECOVER_REASON=ended."""
    check_maintenance_recovered(ctx, *aws_maintenance_recovery(ctx, 600, aws_maintenance_linger=120))


def test_recover_after_aws_maintenance_completed_early(ctx):
    """An AWS scheduled reboot that EC2 marks completed before its
    NotBefore (it leaves events/maintenance/scheduled for .../history at
    once, as EC2 does) is over, not cancelled: the recover hooks run once,
    in order, with SPOT_RECOVER_REASON=ended, without waiting for the
    NotBefore."""
    check_maintenance_recovered(ctx, *aws_maintenance_recovery(ctx, 600))


def test_recover_hooks_once_across_kill9(ctx):
    """kill -9 while a recover hook runs: the restarted agent runs the
    recover hooks not yet done (not the one that finished), in order, and
    never the eviction's hooks again."""
    sim = ctx.start_sim()
    sim.config(started_ttl=1)
    rd = recover_dir(ctx)
    rgate = os.path.join(ctx.out, "rgate")
    rec_hook(ctx, "10-hook")
    rec_hook(ctx, "10-first", directory=rd)
    rec_hook(ctx, "20-slow", gate_wait(rgate), directory=rd)
    rec_hook(ctx, "30-last", directory=rd)
    a = ctx.start_agent(events="+Freeze")
    a.wait_log(r"this VM is")
    eid = sim.add_event(type="Freeze", not_before_in=20)
    wait_for(lambda: starts(ctx, "20-slow"), timeout=TIMEOUT + 10, what="the second recover hook")
    a.kill9()
    touch(rgate)
    b = ctx.start_agent(events="+Freeze")
    # The restart names the chain it resumes: the recover hooks.
    b.wait_log(r"resuming eviction %s \(recovering\) after a restart: 2 of 3 recover hooks left" % re.escape(eid))
    b.wait_log(r"recover chain done: 3 ok")
    polls_pass(sim, 10)
    check([f[0] for f in starts(ctx)] == ["10-hook", "10-first", "20-slow", "20-slow", "30-last"],
          "hooks across the crash: %r" % ctx.recorded())
    check(all(f[2] == eid and f[4] == "ended" for f in recover_lines(ctx)), "recover hooks %r" % ctx.recorded())
    check(ended_at(ctx, "20-slow") <= float(starts(ctx, "30-last")[0][6]), "30-last started before 20-slow ended")


def set_boot(ctx, eid=None):
    """Rewrites the 'boot' of the saved records (of eid only, if given) to
    another 8-hex tag, as if the VM came back on a new boot; returns it."""
    path = os.path.join(ctx.state, "state.json")
    body, seq = read_state_body(path)
    recs = [r for r in body["records"] if eid is None or r["id"] == eid]
    check(recs, "no saved record %r in %r" % (eid, [r["id"] for r in body["records"]]))
    new = None
    for r in recs:
        check(re.fullmatch(r"[0-9a-f]{8}", r["boot"]), "boot tag %r" % r["boot"])
        new = "%08x" % ((int(r["boot"], 16) ^ 0x5a5a5a5a) or 1)
        r["boot"] = new
    write_state_body(path, body, seq + 1)
    return new


def test_recover_on_a_new_boot_once(ctx):
    """An agent that starts on a new boot after an eviction whose hooks ran
    runs the recover hooks once, in order, with SPOT_RECOVER_REASON=boot
    and SPOT_DOWNTIME a whole number of seconds; /v1/status shows the
    recovery; the old notice, still listed Started, does not run the hooks
    again, and a further restart runs nothing."""
    sim = ctx.start_sim()
    sim.config(started_ttl=0)
    rd = recover_dir(ctx)
    rec_hook(ctx, "10-hook")
    rec_hook(ctx, "10-back", directory=rd)
    rec_hook(ctx, "20-again", directory=rd)
    a = ctx.start_agent()
    a.wait_log(r"this VM is")
    eid = sim.add_event(type="Preempt", not_before_in=30)
    a.wait_log(r"event approved")
    approved = time.time()
    a.stop()
    check(a.proc.returncode == 0, "the agent exited %r" % a.proc.returncode)
    check(not recover_lines(ctx), "recover hooks ran before the new boot: %r" % ctx.recorded())
    wait_for(lambda: [e for e in sim.call("GET", "/__sim/events") if e["EventStatus"] == "Started"],
             what="the event Started")
    set_boot(ctx, eid)
    b = ctx.start_agent()
    b.wait_log(r"eviction %s: done -> recovering" % re.escape(eid))
    b.wait_log(r"recover chain done: 2 ok")
    check_recovered_once(ctx, eid, ["10-back", "20-again"], "boot")
    downtime = int(recover_lines(ctx)[0][5])
    check(downtime <= time.time() - approved + 1, "SPOT_DOWNTIME %d, %.1f s since the approval"
          % (downtime, time.time() - approved))
    r = status(ctx)["recovery"]
    check(r is not None and r["reason"] == "boot" and r["started_usec"] is not None
          and isinstance(r["downtime_usec"], int) and r["downtime_usec"] // 1000000 == downtime,
          "recovery %r, SPOT_DOWNTIME %d" % (r, downtime))
    rec = ctx.recorded()
    b.stop()
    c = ctx.start_agent()
    c.wait_log(r"this VM is")
    polls_pass(sim, 10)
    check(ctx.recorded() == rec, "hooks ran after a further restart: %r" % ctx.recorded()[len(rec):])
    check(len(sim.approvals()) == 1, "approvals %r" % sim.approvals())


def test_no_recover_hooks_when_no_hook_ran(ctx):
    """An eviction in which no hook ran (no hook to run) never runs the
    recover hooks: not when its Freeze is over, and not on a new boot
    after a Preempt."""
    sim = ctx.start_sim()
    sim.config(started_ttl=1)
    rd = recover_dir(ctx)
    rec_hook(ctx, "10-back", directory=rd)
    a = ctx.start_agent(events="+Freeze")
    a.wait_log(r"this VM is")
    freeze = sim.add_event(type="Freeze", not_before_in=20)
    a.wait_log(r"Freeze notice %s \(azure-scheduled-events\) left the listing" % re.escape(freeze))
    a.wait_log(r"eviction %s: \w+ -> closed" % re.escape(freeze), timeout=TIMEOUT + 10)
    preempt = sim.add_event(type="Preempt", not_before_in=30)
    a.wait_log(r"eviction %s: \w+ -> done" % re.escape(preempt))
    a.stop()
    sim.remove_event(preempt)
    set_boot(ctx, preempt)
    b = ctx.start_agent(events="+Freeze")
    b.wait_log(r"eviction %s: \w+ -> closed" % re.escape(preempt))
    polls_pass(sim, 10)
    check(ctx.recorded() == [], "recover hooks ran: %r" % ctx.recorded())
    check(not b.log_has(r"recover chain done") and not a.log_has(r"recover chain done"), "a recover chain ran")
    check(status(ctx)["recovery"] is None, "recovery %r" % status(ctx)["recovery"])


# ---- 6. The approval policy per event type ---------------------------------

def test_approve_policy_reboot_at_once(ctx):
    """approve-policy = after-hooks,Reboot:at-once: an Azure Reboot (events
    = +Reboot) is approved on sight, while its first hook still runs, and
    only once; the hooks still all run."""
    sim = ctx.start_sim()
    gate = os.path.join(ctx.out, "gate")
    rec_hook(ctx, "10-first", gate_wait(gate))
    rec_hook(ctx, "20-second")
    a = ctx.start_agent(events="+Reboot", approve_policy="after-hooks,Reboot:at-once")
    a.wait_log(r"this VM is")
    eid = sim.add_event(type="Reboot", not_before_in=60)
    wait_for(lambda: approvals_for(sim, eid), what="the Reboot's approval")
    wait_for(lambda: starts(ctx, "10-first"), what="the first hook")
    check(ended_at(ctx, "10-first") is None, "the first hook ended before the gate opened")
    check(approvals_for(sim, eid)[0]["statuses"] == ["Scheduled"], "approval %r" % approvals_for(sim, eid))
    touch(gate)
    a.wait_log(r"hook chain done: 2 ok")
    first_end = ended_at(ctx, "10-first")
    check(approvals_for(sim, eid)[0]["t"] < first_end, "approved after the first hook ended")
    polls_pass(sim, 10)
    check(len(approvals_for(sim, eid)) == 1, "approvals %r" % approvals_for(sim, eid))
    check([f[0] for f in starts(ctx)] == ["10-first", "20-second"], "hooks %r" % ctx.recorded())


def test_approve_policy_preempt_never(ctx):
    """approve-policy = after-hooks,Preempt:never: the hooks of an Azure
    Preempt run, and the Preempt is never approved, neither after the
    chain nor when it starts."""
    sim = ctx.start_sim()
    rec_hook(ctx, "10-hook")
    a = ctx.start_agent(approve_policy="after-hooks,Preempt:never")
    a.wait_log(r"this VM is")
    eid = sim.add_event(type="Preempt", not_before_in=5)
    a.wait_log(r"hook chain done: 1 ok")
    a.wait_log(r"eviction %s: running -> done \(chain done, nothing to acknowledge\)" % re.escape(eid))
    a.wait_log(r"Preempt notice %s \(azure-scheduled-events\) is now Started" % re.escape(eid), timeout=TIMEOUT + 5)
    polls_pass(sim, 10)
    check(not sim.approvals(), "approvals %r" % sim.approvals())
    check(not [r for r in sim.requests() if r["method"] == "POST"], "a StartRequests was sent")
    check(status(ctx)["approval"] is None or status(ctx)["approval"]["approved"] is False,
          "status approval %r" % status(ctx)["approval"])


def test_check_prints_the_approve_policy(ctx):
    """spot-agent check prints the effective approve-policy from the
    config file: the default and each type's own policy."""
    rec_hook(ctx, "10-hook")
    conf = ctx.config_file("approve-policy = after-hooks, Reboot:at-once, Preempt:never\n"
                           "hooks-dir = %s\nhooks-lib-dir = %s\nstate-dir = %s\nlisten = none\n"
                           % (ctx.hooks, ctx.lib_hooks, ctx.state))
    r = subprocess.run([AGENT, "check", "-c", conf], capture_output=True, text=True, timeout=TIMEOUT)
    check(r.returncode == 0, "check exited %d: %s%s" % (r.returncode, r.stdout, r.stderr))
    lines = [l for l in r.stdout.splitlines() if l.startswith("approve-policy")]
    check(len(lines) == 1, "approve-policy lines %r in\n%s" % (lines, r.stdout))
    items = [x.strip() for x in lines[0].split("=", 1)[1].split(",")]
    check(items[0] == "after-hooks" and sorted(items[1:]) == ["Preempt:never", "Reboot:at-once"],
          "check printed %r" % lines[0])
