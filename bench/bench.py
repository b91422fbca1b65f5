#!/usr/bin/python3
"""make bench: the agent's speed and memory figures, printed, never asserted.

- reaction overhead: the IMDS answer that first shows the event -> first hook
  exec (the agent's own measurement, from the completed HTTP answer to the
  fork of the first hook);
- hook-to-hook gap: one hook's exit reaped -> the next one forked;
- approval latency: last hook's exit -> the approval POST at the simulator;
- idle at 1 Hz: Private_Dirty and RSS, CPU time per poll;
- HTTP (with wrk when installed): /healthz and /metrics throughput and p99,
  and the reaction figures again while wrk floods the endpoint.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "integration"))
import harness  # noqa: E402

EVENTS = int(os.environ.get("SPOT_BENCH_EVENTS", "40"))
HOOKS = 4
IDLE_SECONDS = int(os.environ.get("SPOT_BENCH_IDLE", "20"))


def pct(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]


def fmt(name, values, unit="ms"):
    return "%-34s p50 %8.3f %s   p99 %8.3f %s   max %8.3f %s   (n=%d)" % (
        name, pct(values, 50), unit, pct(values, 99), unit, max(values) if values else float("nan"),
        unit, len(values))


def run_events(ctx, a, sim, n):
    reaction, gaps, approval = [], [], []
    start_line = 0
    for i in range(n):
        eid = sim.add_event(type="Preempt", not_before_in=60)
        m = a.wait_log(r"\[%s\] first hook started ([0-9.]+) ms" % re.escape(eid), start=start_line)
        reaction.append(float(m.group(1)))
        # Wait on the agent's own log line, not by polling the simulator:
        # the harness must not compete with the agent for the two cores.
        a.wait_log(r"\[%s\] event approved" % re.escape(eid), start=start_line)
        appr = [x for x in sim.approvals() if eid in x["event_ids"]][0]
        st = json.load(open(os.path.join(ctx.state, "state.json")))
        rec = [r for r in st["records"] if r["event"]["id"] == eid][0]
        hooks = rec["hooks"]
        for h0, h1 in zip(hooks, hooks[1:]):
            gaps.append((h1["started_usec"] - (h0["started_usec"] + h0["duration_usec"])) / 1000.0)
        last_end = (hooks[-1]["started_usec"] + hooks[-1]["duration_usec"]) / 1e6
        approval.append((appr["t"] - last_end) * 1000.0)
        sim.remove_event(eid)
        start_line = len(a.lines)
    return reaction, gaps, approval


def proc_figures(pid):
    fields = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":"):
                fields[parts[0][:-1]] = int(parts[1])
    return fields


def runtime_ns(pid):
    with open("/proc/%d/schedstat" % pid) as f:
        return int(f.read().split()[0])


def wrk(url, seconds=5, conns=32):
    if not shutil.which("wrk"):
        return None
    out = subprocess.run(["wrk", "-t2", "-c%d" % conns, "-d%ds" % seconds, "--latency", url],
                         capture_output=True, text=True).stdout
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    p99 = re.search(r"99%\s+([0-9.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return (float(rps.group(1)) if rps else float("nan"),
            float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan"))


def instructions_per_poll(ctx, sim):
    """User-space instructions the loop spends per idle poll, counted by
    callgrind (repeatable whatever else the machine does)."""
    if not shutil.which("valgrind"):
        print("  (valgrind not installed: instruction count skipped)")
        return
    out = os.path.join(ctx.dir, "callgrind.out")
    args = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out, "--collect-atstart=no",
            "--toggle-collect=sd_event_dispatch", harness.AGENT] + ctx.base_args(
                log_level="info", poll_interval=1000, listen="none")
    log = open(os.path.join(ctx.dir, "callgrind.log"), "w")
    n0 = len(sim.polls())
    p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    time.sleep(IDLE_SECONDS)
    n1 = len(sim.polls())
    p.terminate()
    p.wait(60)
    log.close()
    total = 0
    with open(out) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                total = int(line.split()[1])
    polls = max(1, n1 - n0)
    # Everything dispatched from the loop, the identity lookup included.
    print("  instructions per poll %8.0f (callgrind, user space, %d polls)" % (total / polls, polls))


def main():
    ctx = harness.Context("bench")
    try:
        sim = ctx.start_sim("--quiet", "--rate-limit", "0", "--started-ttl", "0")
        for i in range(HOOKS):
            p = os.path.join(ctx.hooks, "%02d-true" % (i * 10))
            shutil.copy("/bin/true", p)
            os.chmod(p, 0o755)
        print("spot-agent benchmark: %d events x %d hooks, state in %s" % (EVENTS, HOOKS, ctx.state))
        a = ctx.start_agent(args=ctx.base_args(log_level="info", poll_interval=200))
        a.wait_log(r"this VM is")
        reaction, gaps, approval = run_events(ctx, a, sim, EVENTS)
        print(fmt("reaction (answer -> first fork)", reaction))
        print(fmt("hook-to-hook gap", gaps))
        print(fmt("approval after last hook", approval))

        loaded = None
        if shutil.which("wrk"):
            print("\nHTTP endpoint (wrk, 2 threads, 32 connections, 5 s):")
            for path in ("/healthz", "/metrics"):
                rps, p99 = wrk("http://127.0.0.1:%d%s" % (ctx.http_port, path))
                print("  %-10s %10.0f req/s   p99 %7.3f ms" % (path, rps, p99))
            proc = subprocess.Popen(["wrk", "-t1", "-c64", "-d60s", "http://127.0.0.1:%d/metrics" % ctx.http_port],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                time.sleep(0.5)
                loaded = run_events(ctx, a, sim, max(10, EVENTS // 2))
            finally:
                proc.terminate()
                proc.wait()
            print("\nwhile wrk floods /metrics (64 connections):")
            print(fmt("reaction (answer -> first fork)", loaded[0]))
            print(fmt("hook-to-hook gap", loaded[1]))
            print(fmt("approval after last hook", loaded[2]))
        else:
            print("\n(wrk not installed: HTTP figures skipped)")
        a.stop()

        # Idle at the default 1 Hz.
        b = ctx.start_agent(args=ctx.base_args(log_level="info", poll_interval=1000))
        b.wait_log(r"this VM is")
        time.sleep(2)
        n0 = len(sim.polls())
        t0 = runtime_ns(b.proc.pid)
        time.sleep(IDLE_SECONDS)
        t1 = runtime_ns(b.proc.pid)
        n1 = len(sim.polls())
        mem = proc_figures(b.proc.pid)
        polls = max(1, n1 - n0)
        print("\nidle at 1 Hz over %d s (%d polls):" % (IDLE_SECONDS, polls))
        print("  CPU per poll          %8.1f us" % ((t1 - t0) / 1000.0 / polls))
        print("  Private_Dirty         %8.0f KiB" % (mem.get("Private_Dirty", 0)))
        print("  RSS                   %8.0f KiB" % (mem.get("Rss", 0)))
        print("  Pss                   %8.0f KiB" % (mem.get("Pss", 0)))
        b.stop()
        instructions_per_poll(ctx, sim)
    finally:
        ctx.cleanup(False)


if __name__ == "__main__":
    main()
