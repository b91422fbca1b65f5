#!/usr/bin/python3
"""The fleet rules against a real Prometheus holding pushed records.

Starts Debian's prometheus (loopback, temporary TSDB, remote-write receiver
on, packaging/monitoring/*.rules.yml loaded, rules evaluated every second),
pushes the records of fleetlib.FLEET by remote-write as the agents do,
waits for an evaluation of every rule group, then reads every recording
rule through /api/v1/query and every alert through /api/v1/rules and
compares them with the values worked out by hand below. Every recording
rule and every alert of the rule files must be listed here. Then what the
README says of late records: without an out-of-order window Prometheus
refuses a new series' sample older than an hour before its newest (400 out
of bounds) and an older sample of a series (400 out of order sample); with
out_of_order_time_window: 2h it takes both, and refuses what is older
still (500 too old sample).

Run by `make check-fleet-rules` (part of `make check`). Needs python3 and
prometheus. SPOT_TEST_KEEP=1 keeps Prometheus' directory.
usage: rules-test.py"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fleetlib as F  # noqa: E402

WE = dict(provider="azure", region="westeurope", vm_size="Standard_D4s_v5")
NE = dict(provider="azure", region="northeurope", vm_size="Standard_D8s_v5")
AWS = dict(provider="aws", region="eu-west-1", vm_size="m5.xlarge")
GCP = dict(provider="gcp", region="europe-west1", vm_size="n2-standard-4")


def r(place, **kw):
    """The labels of a region_vm_size... result: the place's, less what the level drops."""
    return {**place, **kw}


def pt(provider, type):
    return dict(provider=provider, type=type)


def rr(place, reason):
    return dict(provider=place["provider"], region=place["region"], reason=reason)


# Every recording rule: [(labels besides job, value)]. Quantiles interpolate
# linearly between the VMs' values (Prometheus' quantile).
EXPECTED = {
    # westeurope: five Preempts in the last hour, six in the day (with the
    # cancelled one 3 h ago); one each for northeurope and AWS; GCP 2 days ago.
    "region_vm_size_type:spot_evictions:count1h": [(r(WE, type="Preempt"), 5)],
    "region_vm_size_type:spot_evictions:count1d": [
        (r(WE, type="Preempt"), 6), (r(NE, type="Terminate"), 1), (r(AWS, type="Terminate"), 1)],
    "region_vm_size_type:spot_evictions:count7d": [
        (r(WE, type="Preempt"), 6), (r(NE, type="Terminate"), 1), (r(AWS, type="Terminate"), 1),
        (r(GCP, type="Preempt"), 1)],
    "job:spot_evictions:count1d": [({}, 8)],
    "job:spot_evictions:count7d": [({}, 9)],
    # azure Preempt notices 12, 20, 26, 28, 30, 30: p50 27, p05 14.
    "provider_type:spot_eviction_notice_seconds:p50_1d": [
        (pt("azure", "Preempt"), 27), (pt("azure", "Terminate"), 600), (pt("aws", "Terminate"), 120)],
    "provider_type:spot_eviction_notice_seconds:p05_1d": [
        (pt("azure", "Preempt"), 14), (pt("azure", "Terminate"), 600), (pt("aws", "Terminate"), 120)],
    # first hooks 0.5 (x5) and 1.5: p50 0.5, p95 1.25.
    "provider_type:spot_eviction_first_hook_seconds:p50_1d": [
        (pt("azure", "Preempt"), 0.5), (pt("azure", "Terminate"), 0.5), (pt("aws", "Terminate"), 1)],
    "provider_type:spot_eviction_first_hook_seconds:p95_1d": [
        (pt("azure", "Preempt"), 1.25), (pt("azure", "Terminate"), 0.5), (pt("aws", "Terminate"), 1)],
    # chains 3, 4, 7.5, 7.5, 7.5, 10: p95 9.375.
    "provider_type:spot_eviction_chain_seconds:p95_1d": [
        (pt("azure", "Preempt"), 9.375), (pt("azure", "Terminate"), 7.5), (pt("aws", "Terminate"), 7.5)],
    # approvals 1 (x5) and 2: p95 1.75; GCP has none.
    "provider_type:spot_eviction_approval_seconds:p95_1d": [
        (pt("azure", "Preempt"), 1.75), (pt("azure", "Terminate"), 4), (pt("aws", "Terminate"), 2)],
    "hook_result:spot_eviction_hook_runs:count1d": [
        (dict(hook="10-checkpoint", result="ok"), 5), (dict(hook="10-checkpoint", result="failed"), 2),
        (dict(hook="10-checkpoint", result="timeout"), 1), (dict(hook="20-deregister", result="ok"), 7),
        (dict(hook="20-deregister", result="skipped"), 1)],
    # 5 of 8 over the day, 2 of 5 in the last hour; the skip is no failure.
    "hook:spot_eviction_hook_success:ratio1d": [
        (dict(hook="10-checkpoint"), 0.625), (dict(hook="20-deregister"), 1)],
    "hook:spot_eviction_hook_success:ratio1h": [
        (dict(hook="10-checkpoint"), 0.4), (dict(hook="20-deregister"), 1)],
    # 10-checkpoint 2, 3, 6 (x5), 10: p95 8.6; 20-deregister 1, 1, 1.5 (x5): 1.5.
    "hook:spot_eviction_hook_duration_seconds:p95_1d": [
        (dict(hook="10-checkpoint"), 8.6), (dict(hook="20-deregister"), 1.5)],
    "region_vm_size_type:spot_eviction_chain_overruns:count1d": [(r(WE, type="Preempt"), 1)],
    # westeurope 120 + 900 + 1800 + 60 + 600 + 0.
    "region_vm_size:spot_eviction_lost_work_seconds:sum1d": [(r(WE), 3480), (r(NE), 300), (r(AWS), 240)],
    "region_vm_size:spot_eviction_lost_work_seconds:sum7d": [
        (r(WE), 3480), (r(NE), 300), (r(AWS), 240), (r(GCP), 3600)],
    # 0, 60, 120, 600, 900, 1800: p95 1575.
    "region_vm_size:spot_eviction_lost_work_seconds:p95_1d": [(r(WE), 1575), (r(NE), 300), (r(AWS), 240)],
    "region_vm_size:spot_eviction_lost_work_seconds:p95_7d": [
        (r(WE), 1575), (r(NE), 300), (r(AWS), 240), (r(GCP), 3600)],
    "job:spot_eviction_lost_work_seconds:sum1d": [({}, 4020)],
    "region_vm_size:spot_eviction_checkpoint_bytes:sum1d": [(r(WE), 1e9), (r(NE), 2e9)],
    "region_vm_size:spot_eviction_jobs_requeued:sum1d": [(r(WE), 6), (r(AWS), 4)],
    # The cancellation 3 h ago and the AWS boot; GCP's boot was 46 h ago.
    "region_vm_size_type:spot_evictions_recovered:count1d": [
        (r(WE, type="Preempt"), 1), (r(AWS, type="Terminate"), 1)],
    "region_reason:spot_eviction_time_to_recover_seconds:p50_7d": [
        (rr(WE, "cancelled"), 120), (rr(AWS, "boot"), 2400), (rr(GCP, "boot"), 7200)],
    "region_reason:spot_eviction_time_to_recover_seconds:p95_7d": [
        (rr(WE, "cancelled"), 120), (rr(AWS, "boot"), 2400), (rr(GCP, "boot"), 7200)],
    # render-ne-007, 8 h ago, never back; the AWS VM (5 h) is too recent to count.
    "region_vm_size_type:spot_evictions_unrecovered_6h:count1d": [(r(NE, type="Terminate"), 1)],
}

# Every alert: the label sets firing ([] = inactive).
ALERTS = {
    "SpotEvictionPending": [],
    "SpotHookFailed": [],
    "SpotHookChainOverran": [],
    "SpotIMDSUnreachable": [],
    "SpotAgentDown": [],
    "SpotEvictionRateHigh": [],
    # five in westeurope's hour against a quiet week
    "SpotEvictionSpike": [dict(job="spot-agent", severity="warning", **WE)],
    # 10-checkpoint: 2 of 5 ok in the hour, failing on three VMs
    "SpotHooksFailingFleetWide": [dict(job="spot-agent", severity="warning", hook="10-checkpoint")],
    # one overrun, not three
    "SpotChainsOverrunning": [],
    # 4020 s, within the 4 h budget
    "SpotLostWorkOverBudget": [],
    # the AWS VM came back after 40 minutes
    "SpotRecoverySlow": [dict(job="spot-agent", severity="warning", provider="aws", region="eu-west-1")],
    # nothing evicted 6 to 7 hours ago
    "SpotEvictedVMsNotBack": [],
    # batch-we-099 showed an eviction; no record of it arrived
    "SpotEvictionNotPushed": [dict(job="spot-agent", severity="warning", instance="batch-we-099")],
}


def close(a, b):
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def main():
    t0 = time.monotonic()
    passed = failed = 0

    def ok(msg):
        nonlocal passed
        passed += 1
        print("ok   " + msg)

    def bad(msg):
        nonlocal failed
        failed += 1
        print("FAIL " + msg)

    with F.Prometheus() as prom:
        now = time.time()
        series = F.fleet_series(now)
        prom.push(series)
        ok("remote write: %d series, %d samples accepted (204)"
           % (len(series), sum(len(s) for _, s in series)))
        groups = prom.wait_rules_after(time.time())
        ok("every rule group evaluated %.1fs after the push" % (time.monotonic() - t0))

        rules = {r["name"]: r for g in groups for r in g["rules"]}
        for name, r in sorted(rules.items()):
            if r.get("health") != "ok":
                bad("%s: health %s: %s" % (name, r.get("health"), r.get("lastError")))
        for name in sorted(set(n for n, r in rules.items() if r["type"] == "recording") - set(EXPECTED)):
            bad("%s: recording rule not checked by this test" % name)
        for name in sorted(set(n for n, r in rules.items() if r["type"] == "alerting") - set(ALERTS)):
            bad("%s: alert not checked by this test" % name)

        for name, want in EXPECTED.items():
            if name not in rules:
                bad("%s: no such recording rule" % name)
                continue
            got = prom.query(name)
            if any(labels.get("job") != "spot-agent" for labels, _ in got):
                bad("%s: a result without job=\"spot-agent\": %s" % (name, got))
                continue
            got_map = {tuple(sorted((k, v) for k, v in labels.items() if k != "job")): v for labels, v in got}
            want_map = {tuple(sorted(labels.items())): v for labels, v in want}
            problems = []
            for key in sorted(set(got_map) | set(want_map)):
                g, w = got_map.get(key), want_map.get(key)
                if g is None:
                    problems.append("missing %s (want %g)" % (dict(key), w))
                elif w is None:
                    problems.append("unexpected %s = %g" % (dict(key), g))
                elif not close(g, w):
                    problems.append("%s = %r, want %g" % (dict(key), g, w))
            if problems:
                bad("%s: %s" % (name, "; ".join(problems)))
            else:
                ok("%s: %s" % (name, ", ".join("%g" % v for _, v in want)))

        for name, want in ALERTS.items():
            if name not in rules:
                bad("%s: no such alert" % name)
                continue
            firing = [{k: v for k, v in a["labels"].items() if k != "alertname"}
                      for a in rules[name]["alerts"] if a["state"] == "firing"]
            key = lambda d: sorted(d.items())  # noqa: E731
            if sorted(firing, key=key) != sorted(want, key=key):
                bad("%s: firing %s, want %s" % (name, firing, want))
            elif want:
                summaries = [a["annotations"].get("summary") for a in rules[name]["alerts"]]
                if not all(a["annotations"].get("runbook") for a in rules[name]["alerts"]):
                    bad("%s: fires without a runbook annotation" % name)
                else:
                    ok("%s fires: %s" % (name, "; ".join(summaries)))
            else:
                ok("%s: quiet" % name)

    # Late records: what the receiving Prometheus does with them.
    for window, want in ((None, ["accepted", "400 out of bounds", "400 out of order sample"]),
                         ("2h", ["accepted", "accepted", "500 too old sample", "accepted"])):
        with F.Prometheus(rule_files=[], ooo_window=window) as prom:
            now = time.time()
            base = {"__name__": "spot_eviction_detected", "job": "spot-agent"}
            prom.push([({**base, "instance": "vm-now"}, [(now, 1)])])
            cases = [({**base, "instance": "vm-30m"}, now - 30 * F.MIN),
                     ({**base, "instance": "vm-90m"}, now - 90 * F.MIN),
                     ({**base, "instance": "vm-now"}, now - F.MIN)]
            if window:
                cases.insert(2, ({**base, "instance": "vm-3h"}, now - 3 * F.HOUR))
            got = []
            for labels, t in cases:
                try:
                    prom.push([(labels, [(t, 1)])])
                    got.append("accepted")
                except F.TestFailure as e:
                    got.append(" ".join(str(e).replace("remote write refused: ", "").split()))
            what = "out_of_order_time_window %s" % window if window else "no out-of-order window"
            if got == want:
                ok("late records, %s: 30 min %s; 90 min %s; %s" % (
                    what, got[0], got[1], "; ".join(
                        (["3 h " + got[2]] if window else []) + ["an older point of a series " + got[-1]])))
            else:
                bad("late records, %s: %s, want %s" % (what, got, want))

    print("check-fleet-rules: %d passed, %d failed in %.1fs" % (passed, failed, time.monotonic() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except F.TestFailure as e:
        print("FAIL %s" % e)
        sys.exit(1)
