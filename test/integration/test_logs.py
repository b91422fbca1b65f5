"""The logs against the real binary: text lines with RFC 3339 millisecond
times, JSON objects (a refused reload and a drill included), the start-up
line, /healthz and /readyz changes logged once each way, the fallback to
text when there is no journal, plural forms, and what a SIGHUP reload
applies or keeps until a restart."""

import calendar
import json
import os
import re
import signal
import subprocess
import threading
import time

from harness import AGENT, TIMEOUT, check, free_port, wait_for

TS = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"
TEXT_LINE = re.compile(r"^(" + TS + r") spot-agent: (debug|info|notice|warning|error): \S")
JOURNAL_SOCKET = "/run/systemd/journal/socket"


def wall_of(ts):
    """Seconds since the epoch of an RFC 3339 UTC time with milliseconds."""
    return calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")) + int(ts[20:23]) / 1000.0


def check_text_lines(lines, t0, t1):
    """Every line is a text record whose time lies within [t0, t1]."""
    check(lines, "no output")
    for line in lines:
        m = TEXT_LINE.match(line)
        check(m, "not a timestamped text line: %r" % line)
        t = wall_of(m.group(1))
        check(t0 - 1 <= t <= t1 + 1, "time %s is not now (UTC) in %r" % (m.group(1), line))


def check_json_lines(lines, t0, t1):
    """Every line is one JSON object with time, level and message."""
    check(lines, "no output")
    docs = []
    for line in lines:
        try:
            d = json.loads(line)
        except ValueError:
            raise AssertionError("not a JSON line: %r" % line)
        check(isinstance(d, dict), "not an object: %r" % line)
        check(re.fullmatch(TS, d.get("time", "")), "bad time in %r" % line)
        check(t0 - 1 <= wall_of(d["time"]) <= t1 + 1, "time is not now (UTC) in %r" % line)
        check(d.get("level") in ("debug", "info", "notice", "warning", "error"), "level in %r" % line)
        check(isinstance(d.get("message"), str) and d["message"], "message in %r" % line)
        docs.append(d)
    return docs


def version():
    out = subprocess.run([AGENT, "--version"], capture_output=True, text=True, timeout=30).stdout
    return out.split()[1]


def count(agent, pattern):
    rx = re.compile(pattern)
    return sum(1 for l in agent.output().splitlines() if rx.search(l))


def test_text_lines_carry_utc_millisecond_times(ctx):
    t0 = time.time()
    sim = ctx.start_sim()
    ctx.hook("10-talk", "echo out-line\necho err-line >&2")
    a = ctx.start_agent()
    a.wait_log(r"this VM is")
    eid = sim.add_event(type="Preempt", not_before_in=30)
    a.wait_log(r"hook chain done")
    a.wait_log(r"event approved")
    a.stop()
    lines = a.output().splitlines()
    check_text_lines(lines, t0, time.time())
    check(a.log_has(r"spot-agent: info: \[%s 10-talk\] out-line$" % eid), "hook output line")
    check(a.log_has(r"spot-agent: notice: \[%s\] eviction notice: Preempt" % eid), "event line")
    times = [wall_of(TEXT_LINE.match(l).group(1)) for l in lines]
    check(times == sorted(times), "times go backwards")


def test_json_lines_parse_and_a_refused_reload_is_json(ctx):
    t0 = time.time()
    sim = ctx.start_sim()
    ctx.hook("10-talk", "echo out-line")
    conf = ctx.config_file("poll-interval = 200\n", "live.conf")
    a = ctx.start_agent(args=ctx.base_args(config=conf, poll_interval=None, log_format="json"))
    a.wait_log(r"this VM is")
    eid = sim.add_event(type="Preempt", not_before_in=30)
    a.wait_log(r"hook chain done")
    with open(conf, "w") as f:
        f.write("poll-interval = 5\nbogus-key = 1\n")
    a.signal(signal.SIGHUP)
    a.wait_log(r"reload refused")
    a.stop()
    docs = check_json_lines(a.output().splitlines(), t0, time.time())
    errors = [d["message"] for d in docs if d["level"] == "error"]
    check(any(m.startswith("%s:1: " % conf) for m in errors), "file:line error not a JSON record: %r" % errors)
    check(any(m.startswith("%s:2: unknown key 'bogus-key'" % conf) for m in errors), "errors %r" % errors)
    hook = [d for d in docs if d.get("hook") == "10-talk" and d["message"] == "out-line"]
    check(hook and hook[0].get("event_id") == eid, "hook output record %r" % hook)


def test_drill_json_logs_are_json_and_report_stays_on_stdout(ctx):
    ctx.hook("10-talk", "echo out-line\necho err-line >&2")
    t0 = time.time()
    r = subprocess.run([AGENT, "drill", "-c", ctx.config_file(""), "--hooks-dir", ctx.hooks,
                        "--hooks-lib-dir", ctx.lib_hooks, "--notice", "10", "--log-format", "json"],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "drill exit %d: %s %s" % (r.returncode, r.stdout, r.stderr))
    docs = check_json_lines(r.stderr.splitlines(), t0, time.time())
    check({"out-line", "err-line"} <= {d["message"] for d in docs if d.get("hook") == "10-talk"},
          "hook output %r" % docs)
    check("drill: passed" in r.stdout and "10-talk" in r.stdout, "report %r" % r.stdout)
    # check too: its report on stdout, its warnings as records.
    r = subprocess.run([AGENT, "check", "-c", ctx.config_file(""), "--hooks-dir", ctx.hooks,
                        "--hooks-lib-dir", ctx.lib_hooks, "--log-format", "json"],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0 and "# hooks in run order (1)" in r.stdout, "check %r" % r.stdout)
    if r.stderr:
        check_json_lines(r.stderr.splitlines(), t0, time.time())
    # Config file errors at start: in the format the command line names.
    bad = ctx.config_file("margin = 9999\nnope = 1\n", "bad.conf")
    r = subprocess.run([AGENT, "check", "-c", bad, "--log-format", "json"], capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 2, "bad config exit %d" % r.returncode)
    docs = check_json_lines(r.stderr.splitlines(), t0, time.time())
    check([d["message"].split(": ")[0] for d in docs] == ["%s:1" % bad, "%s:2" % bad], "errors %r" % docs)
    # A bad option comes before any format is known: text.
    r = subprocess.run([AGENT, "--log-format", "json", "--bogus"], capture_output=True, text=True, timeout=60)
    check(r.returncode == 2, "bad option exit %d" % r.returncode)
    check_text_lines(r.stderr.splitlines(), t0, time.time())


def test_startup_line_names_what_it_watches(ctx):
    sim = ctx.start_sim()
    ctx.hook("10-one", "true")
    ctx.hook("20-two", "true", directory=ctx.lib_hooks)
    a = ctx.start_agent()
    m = a.wait_log(r"spot-agent (\S+) started: provider (\S+), imds (\S+), listen 127\.0\.0\.1:(\d+), "
                   r"(\d+) hooks? from '([^']+)' and '([^']+)', state in '([^']+)'$")
    check(m.group(1) == version(), "version %r" % m.group(1))
    check(m.group(2) == "azure" and m.group(3) == sim.url, "provider/imds %r" % m.group(0))
    check((m.group(5), m.group(6), m.group(7), m.group(8)) == ("2", ctx.hooks, ctx.lib_hooks, ctx.state),
          "hooks/state %r" % m.group(0))
    check(int(m.group(4)) == ctx.http_port, "listen %r" % m.group(0))
    check(count(a, r" started: ") == 1, "one start-up line")
    a.stop()

    os.unlink(os.path.join(ctx.lib_hooks, "20-two"))
    b = ctx.start_agent(provider="auto", hooks_lib_dir="none", listen="none")
    b.wait_log(r"started: provider auto \(probing azure, aws, then gcp\), imds %s, listen none, 1 hook from "
               r"'%s', state in" % (re.escape(sim.url), re.escape(ctx.hooks)))
    b.wait_log(r"imds: the metadata service speaks azure; provider auto chose it")


def test_health_change_logged_once_each_way(ctx):
    sim = ctx.start_sim()
    a = ctx.start_agent()
    a.wait_log(r"this VM is")
    check(ctx.http_get("/healthz")[0] == 200, "healthy at first")
    sim.fault(path="/metadata/scheduledevents", kind="status", status=500, count=-1)
    # /healthz turns 503 after 30 s of failing polls: the line comes then.
    m = a.wait_log(r"health: /healthz answers 503 from now: imds polls failing for (\d+) s: (.*) "
                   r"\(failing since (" + TS + r")\)$", timeout=90)
    check(int(m.group(1)) >= 30 and "500" in m.group(2), "reason %r" % m.group(0))
    st, body = ctx.http_get("/healthz")
    check(st == 503, "/healthz %d after the line" % st)
    # More failing polls and probes: no more health lines.
    seen = len(sim.polls())
    for _ in range(5):
        check(ctx.http_get("/healthz")[0] == 503, "/healthz flapped")
    wait_for(lambda: len(sim.polls()) >= seen + 5, what="five more failing polls")
    sim.clear_faults()
    a.wait_log(r"health: /healthz answers 200 again: imds polls answer after failing for \d+ s "
               r"\(since " + re.escape(m.group(3)) + r"\)$")
    check(ctx.http_get("/healthz")[0] == 200, "/healthz after recovery")
    seen = len(sim.polls())
    wait_for(lambda: len(sim.polls()) >= seen + 5, what="five good polls")
    check(count(a, r"health: /healthz answers 503") == 1, "503 logged more than once")
    check(count(a, r"health: /healthz answers 200") == 1, "200 logged more than once")
    out = a.output()
    check(out.index("answers 503 from now") < out.index("answers 200 again"), "order")


def test_readiness_change_logged_once_each_way(ctx):
    sim = ctx.start_sim()
    ctx.hook("10-ok", "true")
    a = ctx.start_agent()
    a.wait_log(r"this VM is")
    eid = sim.add_event(type="Preempt", not_before_in=30)
    a.wait_log(r"\[%s\] readiness: /readyz answers 503 from now: evicting \(Preempt %s\)$" % (eid, eid))
    a.wait_log(r"event approved")
    check(ctx.http_get("/readyz")[0] == 503, "readyz during the eviction")
    sim.remove_event(eid)
    a.wait_log(r"\[%s\] readiness: /readyz answers 200 again: no eviction in hand$" % eid)
    check(ctx.http_get("/readyz")[0] == 200, "readyz after")
    seen = len(sim.polls())
    wait_for(lambda: len(sim.polls()) >= seen + 5, what="five more polls")
    check(count(a, r"readiness: /readyz answers 503") == 1, "503 logged more than once")
    check(count(a, r"readiness: /readyz answers 200") == 1, "200 logged more than once")


class Proc:
    """The agent started through another command (unshare), its stderr read
    line by line."""

    def __init__(self, argv):
        self.lines = []
        self.cond = threading.Condition()
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for raw in self.p.stderr:
            with self.cond:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self.cond.notify_all()

    def wait_line(self, pattern):
        rx = re.compile(pattern)
        end = time.monotonic() + TIMEOUT
        with self.cond:
            while not any(rx.search(l) for l in self.lines):
                check(time.monotonic() < end and self.p.poll() is None,
                      "no line /%s/ in %r" % (pattern, self.lines))
                self.cond.wait(0.2)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        rc = self.p.wait(TIMEOUT)
        self.t.join(5)
        return rc


def without_journal(argv):
    """argv run where no journal socket exists: as it is on a machine
    without one, else in a mount namespace with a tmpfs over its folder."""
    if not os.path.exists(JOURNAL_SOCKET):
        return argv
    return ["unshare", "-m", "sh", "-c", 'mount -t tmpfs tmpfs "$0" && exec "$@"',
            os.path.dirname(JOURNAL_SOCKET)] + argv


def test_journal_without_a_socket_warns_once_and_logs_text(ctx):
    sim = ctx.start_sim()
    ctx.hook("10-talk", "echo out-line")
    t0 = time.time()
    args = ctx.base_args(log_format="journal")
    p = Proc(without_journal([AGENT] + args))
    try:
        p.wait_line(r"this VM is")
        eid = sim.add_event(type="Preempt", not_before_in=30)
        p.wait_line(r"\[%s 10-talk\] out-line$" % eid)
        p.p.send_signal(signal.SIGHUP)   # a reload asks for the journal again
        p.wait_line(r"config reloaded")
    finally:
        rc = p.stop()
    check(rc == 0, "exit %d" % rc)
    check_text_lines(p.lines, t0, time.time())
    warn = [l for l in p.lines if "no journal" in l]
    check(len(warn) == 1, "warnings %r" % warn)
    check(re.search(r"spot-agent: warning: log: no journal at '%s', logging text to stderr instead"
                    % JOURNAL_SOCKET, p.lines[0]), "first line %r" % p.lines[0])
    # The drill too.
    r = subprocess.run(without_journal([AGENT, "drill", "-c", ctx.config_file(""), "--hooks-dir", ctx.hooks,
                                        "--hooks-lib-dir", ctx.lib_hooks, "--notice", "10",
                                        "--log-format", "journal"]),
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "drill exit %d: %s" % (r.returncode, r.stderr))
    lines = r.stderr.splitlines()
    check_text_lines(lines, t0, time.time())
    check(sum("no journal" in l for l in lines) == 1 and any(l.endswith("] out-line") for l in lines),
          "drill stderr %r" % lines)


def test_plural_forms(ctx):
    sim = ctx.start_sim()
    ctx.hook("10-only", "true")
    conf = ctx.config_file("poll-interval = 200\n", "live.conf")
    a = ctx.start_agent(args=ctx.base_args(config=conf, poll_interval=None))
    a.wait_log(r"started: .* 1 hook from")
    a.wait_log(r"this VM is")
    sim.fault(path="/metadata/scheduledevents", kind="status", status=500, count=1)
    a.wait_log(r"imds: polls recovered after 1 failure$")
    sim.fault(path="/metadata/scheduledevents", kind="status", status=500, count=2)
    a.wait_log(r"imds: polls recovered after 2 failures$")
    sim.add_event(type="Preempt", resources=["someone-else"], not_before_in=30)
    a.wait_log(r"lists 1 event for other VMs, ignoring it$")
    a.signal(signal.SIGHUP)
    a.wait_log(r"config reloaded; 1 hook to run from")
    check(not a.log_has(r"\b1 (failures|events|hooks)\b"), "a plural after 1:\n" + a.output())


def test_sighup_keeps_what_needs_a_restart(ctx):
    sim = ctx.start_sim()
    conf = ctx.config_file("", "live.conf")
    port = free_port()
    args = ctx.base_args(config=conf)
    for key in ("imds-url", "state-dir", "listen", "log-format"):
        i = args.index("--" + key)
        del args[i:i + 2]
    with open(conf, "w") as f:
        f.write("imds-url = %s\nstate-dir = %s\nlisten = 127.0.0.1:%d\nprovider = azure\n"
                % (sim.url, ctx.state, ctx.http_port))
    a = ctx.start_agent(args=args)
    a.wait_log(r"this VM is")
    with open(conf, "w") as f:
        f.write("imds-url = http://127.0.0.1:9\nstate-dir = %s/other\nlisten = 127.0.0.1:%d\n"
                "vm-name = renamed\nprovider = aws\nlog-format = json\n" % (ctx.dir, port))
    a.signal(signal.SIGHUP)
    line = a.wait_log(r"config reloaded").string
    # log-format is applied: from there on the lines are JSON.
    check(json.loads(line)["message"].startswith("config reloaded"), "not JSON after the reload: %r" % line)
    for key, kept in (("imds-url", sim.url), ("state-dir", ctx.state),
                      ("listen", "127.0.0.1:%d" % ctx.http_port), ("vm-name", ""), ("provider", "azure")):
        check(a.log_has(r"config: changing '%s' needs a restart, keeping '%s'$" % (key, re.escape(kept))),
              "no restart warning for %s:\n%s" % (key, a.output()))
    # Still the old endpoint, service and name.
    check(ctx.http_get("/healthz")[0] == 200, "old listen address gone")
    seen = len(sim.polls())
    wait_for(lambda: len(sim.polls()) >= seen + 3, what="polls to the old imds-url")
    doc = json.loads(ctx.http_get("/v1/status")[1])
    check(doc["vm_name"] == "agent-vm0" and doc["provider"] == "azure", "status %r" % doc)


def test_sighup_applies_gcp_preempt_notice(ctx):
    sim = ctx.start_sim()
    dump = os.path.join(ctx.out, "env")
    ctx.recording_hook("10-hook", "env > %s" % dump)
    conf = ctx.config_file("gcp-preempt-notice = 30\n", "live.conf")
    a = ctx.start_agent(args=ctx.base_args(config=conf, provider="gcp"))
    a.wait_log(r"this VM is 'gce-vm0'")
    with open(conf, "w") as f:
        f.write("gcp-preempt-notice = 150\nmargin = 20\nlog-format = json\n")
    a.signal(signal.SIGHUP)
    # --log-format text on the command line still wins over the file.
    line = a.wait_log(r"config reloaded").string
    check(TEXT_LINE.match(line), "the command line's log-format lost: %r" % line)
    sim.call("POST", "/__sim/gcp/preempt", {})
    a.wait_log(r"hook chain done")
    with open(dump) as f:
        env = dict(l.rstrip("\n").split("=", 1) for l in f if "=" in l)
    # 150 s of notice less the reloaded 20 s margin.
    check(100 < int(env["SPOT_HOOK_TIMEOUT"]) <= 130, "the reloaded window: %r" % env["SPOT_HOOK_TIMEOUT"])


def test_json_lines_are_utf8_whatever_a_hook_prints(ctx):
    """A hook that prints bytes that are not UTF-8, under a file name that
    is not UTF-8 either: every JSON line is still UTF-8 JSON (the bytes
    become U+FFFD, as in /v1/status), stderr lines are warnings, stdout
    lines info."""
    t0 = time.time()
    name = b"10-bin\xff"
    path = os.path.join(os.fsencode(ctx.hooks), name)
    with open(path, "wb") as f:
        f.write(b"#!/bin/sh\nprintf 'caf\\351 \\377\\376 ok\\n'\nprintf 'half \\342\\202\\n' >&2\n")
    os.chmod(path, 0o755)
    r = subprocess.run([AGENT, "drill", "-c", ctx.config_file(""), "--hooks-dir", ctx.hooks,
                        "--hooks-lib-dir", "none", "--notice", "10", "--log-format", "json"],
                       capture_output=True, timeout=60)
    check(r.returncode == 0, "drill exit %d: %r" % (r.returncode, r.stdout))
    lines = []
    for raw in r.stderr.splitlines():
        try:
            lines.append(raw.decode("utf-8", errors="strict"))
        except UnicodeDecodeError:
            raise AssertionError("a log line is not UTF-8: %r" % raw)
    docs = check_json_lines(lines, t0, time.time())
    hook = "10-bin\ufffd"
    out = [d for d in docs if d.get("hook") == hook and d["message"] == "caf\ufffd \ufffd\ufffd ok"]
    check(out and out[0]["level"] == "info", "stdout line %r" % [d for d in docs if d.get("hook")])
    err = [d for d in docs if d.get("hook") == hook and d["message"] == "half \ufffd\ufffd"]
    check(err and err[0]["level"] == "warning", "stderr line %r" % [d for d in docs if d.get("hook")])
