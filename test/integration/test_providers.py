"""AWS and GCP through the same pipeline, and provider auto-detection."""

import json
import os

from harness import check, wait_for


def env_of(path):
    return dict(l.split("=", 1) for l in open(path).read().splitlines() if "=" in l)


def test_aws_spot_interruption_runs_hooks_without_approval(ctx):
    sim = ctx.start_sim()
    dump = os.path.join(ctx.out, "env")
    ctx.recording_hook("10-hook", "env > %s" % dump)
    a = ctx.start_agent(provider="aws")
    a.wait_log(r"this VM is 'i-0123456789abcdef0'")
    sim.call("POST", "/__sim/aws/spot", {"action": "terminate", "notice_in": 120})
    a.wait_log(r"hook chain done")
    env = env_of(dump)
    check(env["SPOT_PROVIDER"] == "aws" and env["SPOT_EVENT_TYPE"] == "Preempt", "env %r" % env)
    check(env["SPOT_VM_NAME"] == "i-0123456789abcdef0", "vm name %r" % env["SPOT_VM_NAME"])
    check(env["SPOT_EVENT_ID"].startswith("aws-spot-terminate-"), "id %r" % env["SPOT_EVENT_ID"])
    # The made-up id and its key in /v1/status (checked against the schema).
    st = json.loads(ctx.http_get("/v1/status")[1])
    check(st["provider"] == "aws" and st["event"]["provider"] == "aws", "status provider %r" % st["provider"])
    check(st["event"]["id"] == env["SPOT_EVENT_ID"] and st["key"] == "aws-spot-terminate",
          "status id %r key %r" % (st["event"]["id"], st["key"]))
    # Nothing is approved on AWS without a lifecycle hook: no approval shown.
    check(st["approval"] is None, "approval %r" % st["approval"])
    check(st["notices"][0]["approval"]["state"] == "none", "notice approval %r" % st["notices"][0]["approval"])
    reqs = sim.requests()
    gets = [r for r in reqs if r["method"] == "GET" and r["path"].startswith("/latest/meta-data/")]
    check(gets and all(r["headers"].get("x-aws-ec2-metadata-token") for r in gets), "GET without a token")
    check(not [r for r in reqs if r["method"] == "POST"], "something was approved on AWS")
    # Tokens that expire are refreshed without a failed poll.
    puts = len([r for r in reqs if r["method"] == "PUT"])
    sim.call("POST", "/__sim/aws/expire-tokens", {})
    wait_for(lambda: len([r for r in sim.requests() if r["method"] == "PUT"]) > puts, what="token refresh")
    n = len(sim.requests())
    wait_for(lambda: len(sim.requests()) > n + 6, what="polls after the refresh")
    check(not a.log_has(r"aws failed"), "a 401 surfaced as a failed poll")
    check(len([l for l in ctx.recorded() if "start" in l]) == 1, "hooks ran again")


def test_aws_asg_lifecycle_terminated(ctx):
    sim = ctx.start_sim()
    ctx.recording_hook("10-hook")
    a = ctx.start_agent(provider="aws")
    a.wait_log(r"this VM is")
    sim.call("POST", "/__sim/aws/lifecycle", {"state": "Terminated"})
    a.wait_log(r"eviction notice: Terminate")
    wait_for(lambda: len(ctx.recorded()) == 2, what="hook for the ASG termination")


def test_gcp_preemption_and_maintenance(ctx):
    sim = ctx.start_sim()
    dump = os.path.join(ctx.out, "env")
    ctx.recording_hook("10-hook", "env > %s" % dump)
    a = ctx.start_agent(provider="gcp")
    a.wait_log(r"this VM is 'gce-vm0'")
    sim.call("POST", "/__sim/gcp/maintenance", {"value": "MIGRATE_ON_HOST_MAINTENANCE"})
    a.wait_log(r"Freeze event for this VM is not in 'events', ignoring")
    sim.call("POST", "/__sim/gcp/preempt", {})
    a.wait_log(r"hook chain done")
    env = env_of(dump)
    check(env["SPOT_PROVIDER"] == "gcp" and env["SPOT_EVENT_TYPE"] == "Preempt", "env %r" % env)
    check(0 < int(env["SPOT_HOOK_TIMEOUT"]) <= 30, "a 30 s window: %r" % env["SPOT_HOOK_TIMEOUT"])
    # NotBefore is the first sighting plus 30 s, to the microsecond.
    st = json.loads(ctx.http_get("/v1/status")[1])
    check(st["provider"] == "gcp" and st["key"] is not None and st["event"]["id"].startswith(st["key"]),
          "status %r %r" % (st["key"], st["event"]["id"]))
    check(st["not_before_usec"] - st["detected_usec"] == 30 * 1000000,
          "NotBefore %r, detected %r" % (st["not_before_usec"], st["detected_usec"]))
    check(st["event"]["deadline_usec"] // 1000000 == int(env["SPOT_DEADLINE"]), "deadline %r" % st["event"])
    reqs = [r for r in sim.requests() if r["path"].startswith("/computeMetadata/")]
    check(reqs and all(r["headers"].get("metadata-flavor") == "Google" for r in reqs), "header")
    # instance/preempted is watched with a hanging GET (SPEC: wait_for_change).
    waits = [r for r in reqs if r["path"].endswith("/instance/preempted")]
    check(waits and all(r["query"].get("wait_for_change") == ["true"] for r in waits), "no long poll")


def test_auto_detects_the_provider(ctx):
    sim = ctx.start_sim()
    ctx.recording_hook("10-hook")
    a = ctx.start_agent(provider="auto")
    a.wait_log(r"speaks azure")
    eid = sim.add_event(type="Preempt", not_before_in=30)
    wait_for(lambda: [x for x in sim.approvals() if eid in x["event_ids"]], what="approval")
    a.stop()
    # Without an Azure answer the AWS dialect is tried next.
    sim.fault(path="/metadata", kind="status", status=404, count=-1)
    # A throttled answer is no verdict on the dialect: ask again.
    sim.fault(path="/latest/api/token", kind="status", status=429, count=1)
    b = ctx.start_agent(provider="auto")
    b.wait_log(r"speaks aws")
    b.wait_log(r"this VM is 'i-0123456789abcdef0'")
