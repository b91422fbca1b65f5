#!/usr/bin/python3
"""make bench: the agent's speed and memory figures, printed, never asserted.

- reaction overhead: the IMDS answer that first shows the event -> first hook
  exec (the agent's own measurement, from the completed HTTP answer to the
  fork of the first hook), p50/p99 over SPOT_BENCH_EVENTS events (default 50);
  one eviction at a time, since a notice that comes while an eviction is in
  hand joins it and runs no hook: each event's NotBefore is the next whole
  second at least 0.9 s away (with the default margin of 2 s the deadline is
  NotBefore itself), and the next event is added once the agent says the
  eviction is over (its NotBefore passed and the event no longer listed);
- the same at the child: the simulator's record of the poll that first showed
  the event -> the first hook's own CLOCK_REALTIME at the start of main (a
  small static C program, bench/hook-stamp.c, built into the temp dir);
- hook-to-hook gap: one hook's exit reaped -> the next one forked;
- approval latency: last hook's exit -> the approval POST at the simulator;
- the durable save, from an agent at log_level debug (its own section, so
  that the figures above are at info): "state: save N written in X ms" (the
  write over the spare and the exchange with state.json, told apart by what
  it is in front of: a hook start, the approval, or neither; when the save
  before it still owes its fsync, that is paid first and is in X) and
  "state: save N on disk (fsync) in Y ms" (paid after the hook started or
  the approval went out, in the same loop turn), p50/p99/max, and the saves
  per eviction, over SPOT_BENCH_SAVE_EVENTS evictions (default 20);
- empty chain: the simulator's answer that first shows the event -> the
  approval POST, for the agent with no hooks and for the smallest Python
  poll-and-ack loop (bench/ack-loop.py) in the same run, as a ratio;
- detection after an IMDS outage, for each fault kind the simulator has:
  faults cleared -> the hook's own clock, at a 1000 ms poll interval
  (SPOT_BENCH_OUTAGE_REPS repetitions per kind, default 8);
- idle at 1 Hz: Private_Dirty and RSS, CPU time per poll;
- HTTP (with wrk when installed): /healthz and /metrics throughput and p99,
  and the reaction figures again while wrk floods the endpoint;
- /healthz latency, a new connection per request, behind 1000 idle
  connections from the same host.
"""

import concurrent.futures
import math
import os
import random
import re
import resource
import socket
import shutil
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(BENCH, "..", "test", "integration"))
import harness  # noqa: E402

EVENTS = int(os.environ.get("SPOT_BENCH_EVENTS", "50"))
HOOKS = 4
SAVE_EVENTS = int(os.environ.get("SPOT_BENCH_SAVE_EVENTS", "20"))
IDLE_SECONDS = int(os.environ.get("SPOT_BENCH_IDLE", "20"))
OUTAGE_REPS = int(os.environ.get("SPOT_BENCH_OUTAGE_REPS", "8"))
OUTAGE_SEED = int(os.environ.get("SPOT_BENCH_SEED", "20261127"))
OUTAGE_POLL_MS = 1000
# An event's NotBefore: the next whole second (the simulator serves it to the
# second) at least this far away, so 0.9-1.9 s; about 1 s when the event
# comes right after the previous eviction ended on its NotBefore.
NOT_BEFORE_AHEAD = 0.9
# How far each event's NotBefore was when it was added, in s.
not_before_ahead = []
# Failed polls an outage lasts at least, before the event is added.
OUTAGE_MIN_FAILED = 9

# (label, where the fault goes, the fault, the agent starts during the outage)
OUTAGE_KINDS = [
    ("HTTP 500", "/metadata/scheduledevents", {"kind": "status", "status": 500}, False),
    ("HTTP 429", "/metadata/scheduledevents", {"kind": "status", "status": 429}, False),
    ("HTTP 410", "/metadata/scheduledevents", {"kind": "status", "status": 410}, False),
    ("garbage body", "/metadata/scheduledevents", {"kind": "garbage"}, False),
    ("oversized body (200 kB)", "/metadata/scheduledevents", {"kind": "oversized", "bytes": 200000}, False),
    ("dropped connection", "/metadata/scheduledevents", {"kind": "drop"}, False),
    ("truncated answer", "/metadata/scheduledevents", {"kind": "truncate"}, False),
    ("stalled request (2.5 s)", "/metadata/scheduledevents", {"kind": "stall", "seconds": 2.5}, False),
    ("compute doc 500 from start", "/metadata/instance", {"kind": "status", "status": 500}, True),
]


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


def build_stamp(ctx, stamps):
    """Builds bench/hook-stamp.c into the temp dir, writing to stamps;
    static when the C library allows it. Returns (path, how) or (None, why)."""
    exe = os.path.join(ctx.dir, "hook-stamp")
    cc = os.environ.get("CC", "cc")
    base = [cc, "-std=c11", "-O2", "-DSTAMP_PATH=\"%s\"" % stamps, "-o", exe,
            os.path.join(BENCH, "hook-stamp.c")]
    for how, extra in (("static", ["-static"]), ("dynamic", [])):
        r = subprocess.run(base + extra, capture_output=True, text=True)
        if r.returncode == 0:
            return exe, how
    return None, r.stderr.strip().splitlines()[-1:] or ["cc failed"]


def read_stamps(path):
    """The child's clock per event id (upper case), in unix seconds."""
    out = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    out.setdefault(parts[0].upper(), int(parts[1]) / 1e9)
    except FileNotFoundError:
        pass
    return out


def add_short_event(sim):
    """A Preempt whose NotBefore is the next whole second at least
    NOT_BEFORE_AHEAD s away: returns (id, NotBefore in unix seconds)."""
    t = time.time()
    nb = math.ceil(t + NOT_BEFORE_AHEAD)
    not_before_ahead.append(nb - t)
    # The simulator adds this to its own clock, read a little later, and
    # serves the whole second below.
    return sim.add_event(type="Preempt", not_before_in=nb - t + 0.01), nb


def wait_over(a, eid, nb, start):
    """Waits until the agent holds eid's eviction over (readiness back: its
    NotBefore passed and the event no longer listed), so that the next
    notice is a new eviction rather than joining this one. Returns the log
    position to read on from."""
    a.wait_log(r"\[%s\] readiness: /readyz answers 200 again" % re.escape(eid), start=start,
               timeout=harness.TIMEOUT + NOT_BEFORE_AHEAD)
    left = nb - time.time()
    if left > 0:
        time.sleep(left)
    return len(a.lines)


def wait_closed(a, eid, start=0):
    """Waits until eid's eviction is closed (after the grace that tells an
    eviction that ended from a VM that lived), so that the agent is idle
    when it is stopped."""
    if eid:
        a.wait_log(r"eviction %s: \S+ -> closed" % re.escape(eid), start=start)


class Seen:
    """The simulator's request records the bench has read so far."""

    def __init__(self):
        self.seq = 0

    def fetch(self, sim):
        recs = sim.call("GET", "/__sim/requests?since=%d" % self.seq)
        if recs:
            self.seq = max(self.seq, max(r["seq"] for r in recs))
        return recs


def run_events(ctx, a, sim, n, stamps, seen):
    reaction, gaps, approval, child = [], [], [], []
    ambiguous = 0
    start_line = 0
    seen.fetch(sim)
    eid = None
    for i in range(n):
        t0 = time.time()
        eid, nb = add_short_event(sim)
        t1 = time.time()
        m = a.wait_log(r"\[%s\] first hook started ([0-9.]+) ms" % re.escape(eid), start=start_line)
        reaction.append(float(m.group(1)))
        # Wait on the agent's own log line, not by polling the simulator:
        # the harness must not compete with the agent for the two cores.
        a.wait_log(r"\[%s\] event approved" % re.escape(eid), start=start_line)
        appr = [x for x in sim.approvals() if eid in x["event_ids"]][0]
        body, _ = harness.read_state_body(os.path.join(ctx.state, "state.json"))
        rec = [r for r in body["records"] if r["event"]["id"] == eid][0]
        hooks = rec["hooks"]
        for h0, h1 in zip(hooks, hooks[1:]):
            gaps.append((h1["started_usec"] - (h0["started_usec"] + h0["duration_usec"])) / 1000.0)
        last_end = (hooks[-1]["started_usec"] + hooks[-1]["duration_usec"]) / 1e6
        approval.append((appr["t"] - last_end) * 1000.0)
        # The poll that first showed the event: the first one recorded after
        # add_event returned. A poll recorded while the control call was
        # under way may or may not have shown it: such an event is left out.
        polls = [r for r in seen.fetch(sim)
                 if r["method"] == "GET" and r["path"] == "/metadata/scheduledevents"]
        exec_t = read_stamps(stamps).get(eid.upper()) if stamps else None
        if any(t0 <= r["t"] <= t1 for r in polls):
            ambiguous += 1
        else:
            first = [r for r in polls if r["t"] > t1]
            if first and exec_t is not None:
                child.append((exec_t - first[0]["t"]) * 1000.0)
        sim.remove_event(eid)
        start_line = wait_over(a, eid, nb, start_line)
    return (reaction, gaps, approval, child, ambiguous), eid


def print_events(res, stamps):
    reaction, gaps, approval, child, ambiguous = res
    print(fmt("reaction (answer -> first fork)", reaction))
    if stamps:
        print(fmt("answer -> hook exec (child clock)", child)
              + ("   %d left out: poll raced the event" % ambiguous if ambiguous else ""))
    print(fmt("hook-to-hook gap", gaps))
    print(fmt("approval after last hook", approval))


def filesystem(path):
    """What `stat -f -c %T` says of path's filesystem (ext4 shows as
    ext2/ext3: one magic number for the three), with findmnt's name beside
    it when it differs."""
    st = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True).stdout.strip()
    fm = ""
    if shutil.which("findmnt"):
        fm = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "-T", path], capture_output=True,
                            text=True).stdout.strip()
    return st + (" (findmnt: %s)" % fm if fm and fm != st else "") if st else (fm or "unknown")


SAVE_WRITTEN = re.compile(r"state: save (\d+) written in ([0-9.]+) ms")
SAVE_SYNCED = re.compile(r"state: save (\d+) on disk \(fsync\) in ([0-9.]+) ms")


def durable_save_section(ctx, sim, seen):
    """The agent's own debug lines on each save, over SAVE_EVENTS evictions
    of the same chain, one at a time."""
    t_start = time.monotonic()
    a = ctx.start_agent(args=ctx.base_args(log_level="debug", poll_interval=200))
    a.wait_log(r"this VM is")
    first = len(a.lines)
    _, last = run_events(ctx, a, sim, SAVE_EVENTS, None, seen)
    # The last eviction's closing save, and its fsync, which follows it in
    # the same loop turn.
    wait_closed(a, last, first)
    with a.cond:
        closed = max(i for i, l in enumerate(a.lines)
                     if re.search(r"eviction %s: \S+ -> closed" % re.escape(last), l))
    a.wait_log(SAVE_SYNCED.pattern, start=closed)
    fs = filesystem(ctx.state)
    # Each save writes every record kept (the newest RECORDS_MAX, 16).
    state_path = os.path.join(ctx.state, "state.json")
    size, kept = os.path.getsize(state_path), len(harness.read_state_body(state_path)[0]["records"])
    a.stop()
    lines = a.lines[first:]
    written, synced = {}, {}
    notice = {}
    for i, l in enumerate(lines):
        if "received SIGTERM" in l:
            break   # the save at exit is no eviction's
        m = SAVE_WRITTEN.search(l)
        if m:
            written[int(m.group(1))] = (i, float(m.group(2)))
            continue
        m = SAVE_SYNCED.search(l)
        if m:
            synced[int(m.group(1))] = (i, float(m.group(2)))
            continue
        m = re.search(r"\[([^] ]+)\] eviction notice", l)
        if m:
            notice.setdefault(m.group(1), i)
    # What a save is in front of: the next line that is not a save's. The
    # hooks' outcome saves come before the next hook's start (or, after the
    # last hook, the approval, sent in the same loop turn); the first save
    # before the first hook. A save whose predecessor still owed its fsync
    # pays it before its own write (one of the two files is always whole
    # on disk): its "written" time holds that fsync.
    before_hook, before_ack, after, paying, paying_in_front = [], [], [], [], 0
    for seq, (i, ms) in sorted(written.items()):
        owed = seq - 1 in written and not (seq - 1 in synced and synced[seq - 1][0] < i)
        nxt = [l for l in lines[i + 1:i + 8] if "state: save" not in l][:1]
        if nxt and re.search(r"\] hook '[^']+' started", nxt[0]):
            kind = before_hook
        elif nxt and "hook chain done" in nxt[0]:
            kind = before_ack
        else:
            kind = after
        kind.append(ms)
        if owed:
            paying.append(ms)
            paying_in_front += kind is not after
    evictions = max(1, len(notice))
    print("\ndurable save (an agent at log_level debug, %d evictions of %d hooks; state directory on %s):"
          % (len(notice), HOOKS, fs))
    print("  written: the write over the spare and the exchange with state.json; on disk: its")
    print("  fdatasync and the directory's fsync, paid right after the hook start or the approval")
    print("  that followed the write, in the same loop turn; state.json at the end: %.1f kB, %d records"
          % (size / 1000.0, kept))
    print("  kept, every one of them written by each save")
    print("  " + fmt("written, in front of a hook start", before_hook))
    print("  " + fmt("written, in front of the approval", before_ack))
    print("  " + fmt("written, other saves", after))
    print("  " + fmt("  of them, paying the last's fsync", paying)
          + ("   %d in front of a hook or approval" % paying_in_front if paying_in_front else ""))
    print("  " + fmt("on disk (fsync)", [ms for (_, ms) in synced.values()]))
    print("  saves per eviction: %.1f (%d over %d evictions): %.1f in front of a hook start,"
          " %.1f in front of the approval, %.1f paying the last's fsync first"
          % (len(written) / evictions, len(written), len(notice), len(before_hook) / evictions,
             len(before_ack) / evictions, len(paying) / evictions))
    print("  (section took %.0f s)" % (time.monotonic() - t_start))


def failed_count(recs, prefix):
    """Requests that took a fault (the fault's path is a prefix)."""
    return sum(1 for r in recs if r["path"].startswith(prefix) and r["fault"])


def outage_once(ctx, sim, path, fault, at_start, rng, run):
    """One outage: returns (faults cleared -> hook's clock in s, failed
    requests before the clear). The event's NotBefore (30 s) must outlast
    the outage, so the eviction is still in hand when the run ends: each
    run's agent has a state directory of its own, where a notice of the
    next run would have joined it."""
    sim.call("POST", "/__sim/reset")
    recs = []
    seen = Seen()
    args = ctx.base_args(log_level="info", poll_interval=OUTAGE_POLL_MS, listen="none",
                         state_dir=os.path.join(ctx.hook_dir, "state-%d" % run))
    spec = dict(fault, path=path, method="GET", count=-1)
    if at_start:
        sim.fault(**spec)
        a = ctx.start_agent(args=args)
    else:
        a = ctx.start_agent(args=args)
        a.wait_log(r"this VM is")
        sim.fault(**spec)
    def failed_reach(n, what):
        def more():
            recs.extend(seen.fetch(sim))
            return failed_count(recs, path) >= n
        harness.wait_for(more, timeout=OUTAGE_MIN_FAILED * 4 * OUTAGE_POLL_MS / 1000.0,
                         what=what, interval=0.25)

    try:
        failed_reach(OUTAGE_MIN_FAILED, "%d failed requests" % OUTAGE_MIN_FAILED)
        eid = sim.add_event(type="Preempt", not_before_in=30)
        # One more failed request after the event was added: it was listed
        # while the service was still failing.
        failed_reach(failed_count(recs, path) + 1, "a failed request after the event was added")
        time.sleep(rng.uniform(0.0, 1.0))
        sim.clear_faults()
        t_clear = time.time()
        failed = failed_count(recs + seen.fetch(sim), path)
        a.wait_log(r"\[%s\] event approved" % re.escape(eid), timeout=60)
        with open(ctx.record) as f:
            hook_t = [float(l.split()[1]) for l in f if l.split()[0].upper() == eid.upper()][0]
        return hook_t - t_clear, failed
    finally:
        a.stop()


def outage_kind(index, label, path, fault, at_start):
    ctx = harness.Context("bench-outage-%d" % index)
    rng = random.Random(OUTAGE_SEED * 100 + index)
    out, failed, errors = [], [], []
    try:
        sim = ctx.start_sim("--quiet", "--started-ttl", "0")
        # The recording hook: its own clock, taken by date(1) on start.
        ctx.hook("00-record", 'date +"$SPOT_EVENT_ID %s.%N" >> ' + ctx.record)
        for run in range(OUTAGE_REPS):
            try:
                d, n = outage_once(ctx, sim, path, fault, at_start, rng, run)
                out.append(d * 1000.0)
                failed.append(n)
            except harness.TestFailure as e:
                errors.append(str(e))
    finally:
        ctx.cleanup(False)
    return label, out, failed, errors


def outage_section():
    print("\ndetection after an IMDS outage: faults cleared -> the hook's own `date +%s.%N`")
    print("(Azure, poll interval %d ms; every GET fails until cleared, >= %d of them, and the event is"
          % (OUTAGE_POLL_MS, OUTAGE_MIN_FAILED))
    print(" added before the last one; %d runs per kind, random 0-1 s phase, seed %d; the kinds run"
          % (OUTAGE_REPS, OUTAGE_SEED))
    print(" side by side, each with its own simulator and agent; each run's agent its own state directory)")
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(OUTAGE_KINDS)) as ex:
        futs = [ex.submit(outage_kind, i, *k) for i, k in enumerate(OUTAGE_KINDS)]
        results = [f.result() for f in futs]
    worst, worst_label = None, None
    goal = OUTAGE_POLL_MS + 1000
    for label, out, failed, errors in results:
        line = "  %-28s" % label
        if out:
            line += " p50 %6.0f ms   max %6.0f ms   (n=%d, %d-%d failed requests before the clear)" % (
                pct(out, 50), max(out), len(out), min(failed), max(failed))
            if worst is None or max(out) > worst:
                worst, worst_label = max(out), label
        for e in errors:
            line += "\n      run without a figure: %s" % e
        print(line)
    if worst is not None:
        print("  worst case over all kinds   %6.0f ms (%s)   goal <= poll interval + 1 s = %d ms"
              % (worst, worst_label, goal))
    print("  (section took %.0f s)" % (time.monotonic() - t0))


def answer_to_approval(sim, n, seen, wait_approved, wait_done=None):
    """n events, one at a time: the simulator's answer to the first poll
    that showed the event -> the approval POST's arrival, both on the
    simulator's clock, in ms. wait_approved(eid, line) returns once eid is
    approved; wait_done(eid, NotBefore, line), once the event was removed,
    returns once a new event is a new eviction."""
    out, ambiguous, line = [], 0, 0
    seen.fetch(sim)
    for i in range(n):
        t0 = time.time()
        eid, nb = add_short_event(sim)
        t1 = time.time()
        line = wait_approved(eid, line)
        appr = [x for x in sim.approvals() if eid in x["event_ids"]][0]
        polls = [r for r in seen.fetch(sim)
                 if r["method"] == "GET" and r["path"] == "/metadata/scheduledevents"]
        if any(t0 <= r["t"] <= t1 for r in polls):
            ambiguous += 1
        else:
            first = [r for r in polls if r["t"] > t1 and r.get("t_answer")]
            if first:
                out.append((appr["t"] - first[0]["t_answer"]) * 1000.0)
        sim.remove_event(eid)
        if wait_done:
            line = wait_done(eid, nb, line)
    return out, ambiguous


def empty_chain_section(ctx, sim, seen):
    """The empty chain against the smallest possible poll-and-ack loop
    (bench/ack-loop.py), measured the same way, one after the other."""
    empty = os.path.join(ctx.hook_dir, "empty-hooks.d")
    os.makedirs(empty, mode=0o755, exist_ok=True)
    a = ctx.start_agent(args=ctx.base_args(log_level="info", poll_interval=200, hooks_dir=empty,
                                           hooks_lib_dir="none"))
    a.wait_log(r"this VM is")

    def agent_approved(eid, line):
        a.wait_log(r"\[%s\] event approved" % re.escape(eid), start=line)
        return line

    last = []

    def agent_done(eid, nb, line):
        last[:] = [eid]
        return wait_over(a, eid, nb, line)

    agent, amb_a = answer_to_approval(sim, EVENTS, seen, agent_approved, agent_done)
    wait_closed(a, last[0] if last else None)
    a.stop()

    loop = subprocess.Popen([sys.executable, os.path.join(BENCH, "ack-loop.py"), sim.url, "200"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def loop_approved(eid, line):
        deadline = time.time() + 30
        while time.time() < deadline:
            if any(eid in x["event_ids"] for x in sim.approvals()):
                return line
            time.sleep(0.05)
        raise RuntimeError("ack-loop.py did not approve %s" % eid)

    try:
        ref, amb_r = answer_to_approval(sim, EVENTS, seen, loop_approved)
    finally:
        loop.terminate()
        loop.wait()
    print("\nempty chain: answer -> approval POST (simulator's clock, 200 ms polls; ack-loop.py's events"
          " come one after\n the other without waiting for their NotBefore, it keeps no eviction):")
    print("  " + fmt("spot-agent", agent) + ("   %d raced" % amb_a if amb_a else ""))
    print("  " + fmt("ack-loop.py (20 lines of Python)", ref) + ("   %d raced" % amb_r if amb_r else ""))
    if agent and ref:
        print("  spot-agent / ack-loop.py, p50: %.2f" % (pct(agent, 50) / pct(ref, 50)))


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


def callgrind_run(ctx, sim, seconds, tag):
    """Instructions of one whole run of the agent (start-up included) under
    callgrind, and the polls it made."""
    out = os.path.join(ctx.dir, "callgrind.%s.out" % tag)
    args = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out, harness.AGENT] + ctx.base_args(
        log_level="info", poll_interval=1000, listen="none")
    log = open(os.path.join(ctx.dir, "callgrind.%s.log" % tag), "w")
    p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    # Count from the first poll: valgrind's own start-up takes a while.
    deadline = time.time() + 60
    while time.time() < deadline and "this VM is" not in open(log.name).read():
        time.sleep(0.1)
    n0 = len(sim.polls())
    time.sleep(seconds)
    n1 = len(sim.polls())
    p.terminate()
    p.wait(60)
    log.close()
    total = 0
    with open(out) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                total = int(line.split()[1])
    return total, n1 - n0


def instructions_per_poll(ctx, sim):
    """User-space instructions per idle poll, counted by callgrind
    (repeatable whatever else the machine does): two runs of different
    lengths, so start-up and exit cancel out of the difference."""
    if not shutil.which("valgrind"):
        print("  (valgrind not installed: instruction count skipped)")
        return
    short = max(5, IDLE_SECONDS // 2)
    i1, p1 = callgrind_run(ctx, sim, short, "short")
    i2, p2 = callgrind_run(ctx, sim, short * 2, "long")
    polls = max(1, p2 - p1)
    print("  instructions per poll %8.0f (callgrind, user space, runs of %d and %d polls)"
          % ((i2 - i1) / polls, p1, p2))


IDLE_CONNECTIONS = 1000
IDLE_PROBES = int(os.environ.get("SPOT_BENCH_IDLE_PROBES", "200"))


def healthz_behind_idle_connections(port):
    """/healthz round trips (connect, request, answer, close), one after
    another, while IDLE_CONNECTIONS connections that never send a byte stay
    open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < IDLE_CONNECTIONS + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    idle, lat, failed = [], [], 0
    try:
        for _ in range(IDLE_CONNECTIONS):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            idle.append(s)
        for _ in range(IDLE_PROBES):
            t0 = time.monotonic()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                    answer = b""
                    while True:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        answer += chunk
                if answer.startswith(b"HTTP/1.1 200 "):
                    lat.append((time.monotonic() - t0) * 1000.0)
                else:
                    failed += 1
            except OSError:
                failed += 1
    finally:
        for s in idle:
            s.close()
    print("\n/healthz behind %d idle connections (a new connection per request, one at a time):"
          % IDLE_CONNECTIONS)
    print(fmt("/healthz round trip", lat) + ("   %d failed" % failed if failed else ""))


def loadavg():
    """The 1, 5 and 15-minute load averages: whatever else runs on the
    machine is in every wall-time figure."""
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    t_bench = time.monotonic()
    ctx = harness.Context("bench")
    try:
        sim = ctx.start_sim("--quiet", "--rate-limit", "0", "--started-ttl", "0")
        stamps = os.path.join(ctx.out, "stamps")
        stamp_exe, how = build_stamp(ctx, stamps)
        for i in range(HOOKS):
            p = os.path.join(ctx.hooks, "%02d-true" % (i * 10))
            shutil.copy(stamp_exe if i == 0 and stamp_exe else "/bin/true", p)
            os.chmod(p, 0o755)
        if not stamp_exe:
            stamps = None
        # The state directory is made by the agent, in ctx.hook_dir.
        print("spot-agent benchmark: %d events x %d hooks, state in %s (filesystem: %s)"
              % (EVENTS, HOOKS, ctx.state, filesystem(ctx.hook_dir)))
        print("(%d CPUs, load average %s at the start)" % (os.cpu_count(), loadavg()))
        print("(one eviction at a time: NotBefore the next whole second >= %.1f s away, the next event"
              " once the eviction is over)" % NOT_BEFORE_AHEAD)
        if stamps:
            print("(first hook: bench/hook-stamp.c, %s, writes CLOCK_REALTIME at the start of main;"
                  " the others copies of /bin/true)" % how)
        else:
            print("(hook-stamp.c did not build: %s; answer -> hook exec skipped)" % how)
        seen = Seen()
        t0 = time.monotonic()
        a = ctx.start_agent(args=ctx.base_args(log_level="info", poll_interval=200))
        a.wait_log(r"this VM is")
        res, last = run_events(ctx, a, sim, EVENTS, stamps, seen)
        print_events(res, stamps)
        wait_closed(a, last)
        a.stop()
        print("(section took %.0f s)" % (time.monotonic() - t0))
        durable_save_section(ctx, sim, seen)
        t0 = time.monotonic()
        empty_chain_section(ctx, sim, seen)
        print("  (section took %.0f s)" % (time.monotonic() - t0))
        t0 = time.monotonic()
        a = ctx.start_agent(args=ctx.base_args(log_level="info", poll_interval=200))
        a.wait_log(r"this VM is")

        if shutil.which("wrk"):
            print("\nHTTP endpoint (wrk, 2 threads, 32 connections, 5 s):")
            for path in ("/healthz", "/metrics"):
                rps, p99 = wrk("http://127.0.0.1:%d%s" % (ctx.http_port, path))
                print("  %-10s %10.0f req/s   p99 %7.3f ms" % (path, rps, p99))
            # Ended once the events are: the duration is only an upper bound.
            proc = subprocess.Popen(["wrk", "-t1", "-c64", "-d600s", "http://127.0.0.1:%d/metrics" % ctx.http_port],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                time.sleep(0.5)
                loaded, last = run_events(ctx, a, sim, max(10, EVENTS // 2), stamps, seen)
            finally:
                proc.terminate()
                proc.wait()
            print("\nwhile wrk floods /metrics (64 connections):")
            print_events(loaded, stamps)
        else:
            print("\n(wrk not installed: HTTP figures skipped)")
            last = None
        healthz_behind_idle_connections(ctx.http_port)
        wait_closed(a, last)
        a.stop()
        print("(HTTP sections took %.0f s)" % (time.monotonic() - t0))

        outage_section()

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
        print("\nNotBefore when an event was added: p50 %.2f s, min %.2f s, max %.2f s away (n=%d)"
              % (pct(not_before_ahead, 50), min(not_before_ahead), max(not_before_ahead),
                 len(not_before_ahead)))
        print("bench took %.0f s; load average %s at the end" % (time.monotonic() - t_bench, loadavg()))
    finally:
        ctx.cleanup(False)


if __name__ == "__main__":
    main()
