"""Command line, config file errors, check, drill and SIGHUP reload."""

import http.server
import os
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import threading
import urllib.request

from harness import AGENT, TIMEOUT, TestFailure, check, free_port, wait_for


def run(args, timeout=60, **kw):
    return subprocess.run([AGENT] + args, capture_output=True, text=True, timeout=timeout, **kw)


LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z spot-agent: (error: )?")


def errors(r):
    """stderr's lines, each as 'spot-agent: message' (no time, no 'error:'
    level), but the warning about logind's delay, which depends on the
    machine."""
    lines = [LOG_PREFIX.sub("spot-agent: ", l) for l in r.stderr.splitlines()]
    return [l for l in lines if not l.startswith("spot-agent: warning: logind")]


def refused(r, line, what):
    """Exit status 2 and exactly this one line on stderr."""
    check(r.returncode == 2, "%s: exit %d, stderr %r" % (what, r.returncode, r.stderr))
    check(errors(r) == [line], "%s: stderr %r, want %r" % (what, errors(r), line))


def check_args(ctx, *extra, **over):
    """'spot-agent check' with the test's directories and a free port."""
    args = {"hooks-dir": ctx.hooks, "hooks-lib-dir": ctx.lib_hooks, "state-dir": ctx.state,
            "listen": "127.0.0.1:%d" % free_port()}
    args.update({k.replace("_", "-"): v for k, v in over.items()})
    out = ["check", "-c", ctx.config_file("", "check.conf")]
    for k, v in args.items():
        out += ["--" + k, v]
    return out + list(extra)


def daemon_args(ctx, **over):
    """The daemon with nothing to bind and no metadata service: it either
    refuses at once or runs (and is then killed by the caller)."""
    args = {"hooks-dir": ctx.hooks, "hooks-lib-dir": ctx.lib_hooks, "state-dir": ctx.state,
            "listen": "none", "imds-url": "http://127.0.0.1:9", "log-format": "text"}
    args.update({k.replace("_", "-"): v for k, v in over.items()})
    out = ["-c", ctx.config_file("", "daemon.conf")]
    for k, v in args.items():
        out += ["--" + k, v]
    return out


def comments(r, prefix):
    """check's comment lines that start with prefix, without the '# '."""
    return [l[2:] for l in r.stdout.splitlines() if l.startswith("# " + prefix)]


def test_bad_configs_exit_2_with_file_line(ctx):
    conf = ctx.config_file("poll-interval = 1000\n# comment\npol-interval = 5\npoll-interval = 100\n")
    r = run(["check", "-c", conf])
    check(r.returncode == 2, "exit %d" % r.returncode)
    check("%s:3:" % conf in r.stderr, "no file:line in %r" % r.stderr)
    check("%s:4:" % conf in r.stderr, "second error not reported: %r" % r.stderr)
    r = run(["-c", conf, "--hooks-dir", ctx.hooks])
    check(r.returncode == 2, "run exit %d" % r.returncode)
    r = run(["--poll-interval", "50", "-c", ctx.config_file("")])
    check(r.returncode == 2 and "poll-interval" in r.stderr, "option error %r" % r.stderr)
    r = run(["--bogus"])
    check(r.returncode == 2 and r.stderr.count("\n") == 1, "unknown option %r" % r.stderr)
    r = run(["-c", os.path.join(ctx.dir, "missing.conf")])
    check(r.returncode == 2 and "missing.conf" in r.stderr, "missing named file %r" % r.stderr)
    r = run(["--version"])
    check(r.returncode == 0 and r.stdout.startswith("spot-agent "), "version")
    r = run(["--help"])
    for opt in ("--provider", "--imds-url", "--hooks-dir", "--state-dir", "--listen", "--poll-interval",
                "--vm-name", "--events", "--margin", "--hook-timeout", "--no-approve", "--log-format",
                "--log-level", "check", "drill"):
        check(opt in r.stdout, "--help lacks %s" % opt)


def test_check_lists_hooks_and_skips(ctx):
    ctx.hook("10-ok", "true")
    ctx.hook("20-noexec", "true", mode=0o644)
    ctx.hook("30-gw", "true", mode=0o775)
    ctx.hook("40-x.dpkg-old", "true")
    ctx.hook("05-lib", "true", directory=ctx.lib_hooks)
    ctx.hook("10-ok", "false", directory=ctx.lib_hooks)
    os.symlink("/dev/null", os.path.join(ctx.hooks, "06-masked"))
    ctx.hook("06-masked", "true", directory=ctx.lib_hooks)
    r = run(["check", "-c", ctx.config_file(""), "--hooks-dir", ctx.hooks, "--hooks-lib-dir", ctx.lib_hooks])
    # Two files meant as hooks would not run: check fails, naming both;
    # the leftover and the masked hook are no reason to.
    check(r.returncode == 2, "exit %d: %s" % (r.returncode, r.stderr))
    check([l for l in errors(r) if "would not run" in l] ==
          ["spot-agent: hooks: '%s/20-noexec' would not run: not executable" % ctx.hooks,
           "spot-agent: hooks: '%s/30-gw' would not run: group-writable" % ctx.hooks], r.stderr)
    runs = [l.split()[1] for l in comments(r, "run ")]
    check(runs == [os.path.join(ctx.lib_hooks, "05-lib"), os.path.join(ctx.hooks, "10-ok")],
          "plan %r" % runs)
    out = r.stdout
    check("20-noexec: not executable" in out, out)
    check("30-gw: group-writable" in out, out)
    check("40-x.dpkg-old: package manager leftover" in out, out)
    check("06-masked: masked" in out, out)
    check("poll-interval = 1000" in out, "effective config missing")
    # --warn-only: the same lines as warnings, and exit 0.
    r = run(["check", "-c", ctx.config_file(""), "--hooks-dir", ctx.hooks, "--hooks-lib-dir", ctx.lib_hooks,
             "--warn-only"])
    check(r.returncode == 0, "--warn-only: exit %d: %s" % (r.returncode, r.stderr))
    check("warning: hooks: '%s/20-noexec' would not run: not executable" % ctx.hooks in r.stderr, r.stderr)
    # Only with check.
    r = run(["drill", "--warn-only", "-c", ctx.config_file("")])
    check(r.returncode == 2 and "option --warn-only: only valid with 'check'" in r.stderr, r.stderr)


def test_drill_reports_and_fails_on_failure(ctx):
    ctx.hook("10-ok", 'echo "drill=$SPOT_DRILL type=$SPOT_EVENT_TYPE"')
    conf = ctx.config_file("")
    base = ["drill", "-c", conf, "--hooks-dir", ctx.hooks, "--hooks-lib-dir", ctx.lib_hooks]
    r = run(base + ["--type", "Terminate", "--notice", "20"])
    check(r.returncode == 0, "drill exit %d: %s %s" % (r.returncode, r.stdout, r.stderr))
    check("10-ok" in r.stdout and "ok" in r.stdout and "passed" in r.stdout, r.stdout)
    check("drill=1 type=Terminate" in r.stderr, "hook env in drill: %r" % r.stderr)
    ctx.hook("20-bad", "exit 4")
    r = run(base)
    check(r.returncode == 1, "failing drill exit %d" % r.returncode)
    check("FAILED" in r.stdout, r.stdout)
    os.unlink(os.path.join(ctx.hooks, "20-bad"))
    ctx.hook("20-slow", "sleep 30")
    r = run(base + ["--notice", "4", "--margin", "1"])
    check(r.returncode == 1 and "timed out" in r.stdout, "overrun drill: %s" % r.stdout)
    check(not os.path.exists(ctx.state), "drill touched the state dir")


def test_sighup_reload_and_invalid_reload_refused(ctx):
    sim = ctx.start_sim()
    conf = ctx.config_file("poll-interval = 200\n", "live.conf")
    args = ctx.base_args(config=conf, poll_interval=None)
    a = ctx.start_agent(args=args)
    a.wait_log(r"this VM is")
    with open(conf, "w") as f:
        f.write("poll-interval = 300\nlog-level = debug\nmargin = 3\n")
    a.signal(signal.SIGHUP)
    a.wait_log(r"config reloaded")
    with open(conf, "w") as f:
        f.write("poll-interval = 5\nbogus-key = 1\n")
    a.signal(signal.SIGHUP)
    a.wait_log(r"%s:1:" % conf)
    a.wait_log(r"reload refused")
    check(a.proc.poll() is None, "agent died on a bad reload")
    ctx.recording_hook("10-hook")
    eid = sim.add_event(type="Preempt", not_before_in=30)
    wait_for(lambda: ctx.recorded(), what="hook after reload")
    check(eid, "id")


def test_unreadable_hook_dir_at_start_exits_2(ctx):
    bad = os.path.join(ctx.dir, "not-a-dir")
    with open(bad, "w") as f:
        f.write("x")
    r = run(["-c", ctx.config_file(""), "--hooks-dir", bad, "--listen", "none",
             "--state-dir", ctx.state, "--imds-url", "http://127.0.0.1:9"])
    check(r.returncode == 2 and "not-a-dir" in r.stderr, "exit %d: %r" % (r.returncode, r.stderr))


def test_drill_interrupted_kills_the_running_hook(ctx):
    pidfile = os.path.join(ctx.out, "pid")
    ctx.hook("10-sleep", "sleep 300 &\necho $! > %s\nwait" % pidfile)
    p = subprocess.Popen([AGENT, "drill", "-c", ctx.config_file(""), "--hooks-dir", ctx.hooks,
                          "--hooks-lib-dir", ctx.lib_hooks], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), what="hook running")
    child = int(open(pidfile).read())
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=30)
    check(p.returncode == 1, "exit %d: %s" % (p.returncode, out))
    check("interrupted" in out, out)
    wait_for(lambda: not os.path.exists("/proc/%d" % child)
             or open("/proc/%d/stat" % child).read().split()[2] == "Z",
             what="the hook's child killed", timeout=10)


def test_missing_hook_dir_refused_missing_lib_dir_fine(ctx):
    missing = os.path.join(ctx.dir, "no-such.d")
    line = ("spot-agent: hooks-dir '%s' does not exist: create it (an empty directory runs no "
            "hooks) or set hooks-dir" % missing)
    refused(run(check_args(ctx, hooks_dir=missing)), line, "check")
    refused(run(daemon_args(ctx, hooks_dir=missing), timeout=TIMEOUT), line, "start")
    refused(run(["drill", "-c", ctx.config_file(""), "--hooks-dir", missing]), line, "drill")
    check(not os.path.exists(ctx.state), "a refused start created the state dir")

    # A file where the directory should be.
    afile = ctx.config_file("x", "a-file")
    refused(run(check_args(ctx, hooks_dir=afile)),
            "spot-agent: hooks-dir '%s' is not a directory" % afile, "check, file")
    refused(run(check_args(ctx, hooks_lib_dir=afile)),
            "spot-agent: hooks-lib-dir '%s' is not a directory" % afile, "check, lib file")

    # The packaged directory may be missing: nothing to merge.
    nolib = os.path.join(ctx.dir, "no-lib.d")
    ctx.hook("10-ok", "true")
    r = run(check_args(ctx, hooks_lib_dir=nolib))
    check(r.returncode == 0 and errors(r) == [], "missing lib dir: %d %r" % (r.returncode, r.stderr))
    check(comments(r, "hooks-dir") == ["hooks-dir '%s' is readable; hooks-lib-dir '%s' does not "
                                       "exist (no packaged hooks)" % (ctx.hooks, nolib)], r.stdout)
    check(comments(r, "run ") == ["run   " + os.path.join(ctx.hooks, "10-ok")], r.stdout)


def as_nobody(args):
    """args run as uid/gid 65534 when we are root (permission bits bind
    only others), else as we are."""
    if os.geteuid() != 0:
        return args
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] + args


def test_permissions_refused(ctx):
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        raise TestFailure("setpriv (util-linux) is needed to drop root")
    # The agent's state directory is its user's, and nobody else's.
    nobody_dir = os.path.join(ctx.hook_dir, "nobody-state")
    os.mkdir(nobody_dir, 0o700)
    if os.geteuid() == 0:
        os.chown(nobody_dir, 65534, 65534)
    ctx.hook("10-ok", "true")

    def check_as_nobody(**over):
        over.setdefault("state_dir", nobody_dir)
        a = check_args(ctx, **over)
        return subprocess.run(as_nobody([AGENT] + a), capture_output=True, text=True, timeout=60)

    r = check_as_nobody()
    check(r.returncode == 0 and errors(r) == [], "as nobody: %d %r" % (r.returncode, r.stderr))
    os.chmod(ctx.hooks, 0o700)
    refused(check_as_nobody(), "spot-agent: hooks-dir '%s' cannot be read: Permission denied"
            % ctx.hooks, "hooks-dir 0700")
    os.chmod(ctx.hooks, 0o711)
    refused(check_as_nobody(), "spot-agent: hooks-dir '%s' cannot be read: Permission denied"
            % ctx.hooks, "hooks-dir 0711")
    os.chmod(ctx.hooks, 0o744)
    refused(check_as_nobody(), "spot-agent: hooks-dir '%s' cannot be read: Permission denied"
            % ctx.hooks, "hooks-dir 0744, not searchable")
    os.chmod(ctx.hooks, 0o755)
    os.mkdir(ctx.state)
    refused(check_as_nobody(state_dir=ctx.state),
            "spot-agent: state-dir '%s' is not writable (Permission denied), so '%s/state.json' "
            "cannot be saved" % (ctx.state, ctx.state), "state-dir of root")
    sub = os.path.join(ctx.state, "sub")
    refused(check_as_nobody(state_dir=sub),
            "spot-agent: state-dir '%s' does not exist and cannot be created in '%s': Permission "
            "denied" % (sub, ctx.state), "state-dir in a parent of root")
    if os.geteuid() == 0:
        # A privileged port that is free now.
        for port in random.sample(range(600, 1024), 100):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                    break
                except OSError:
                    continue
        refused(check_as_nobody(listen="127.0.0.1:%d" % port),
                "spot-agent: listen '127.0.0.1:%d' cannot be bound: Permission denied" % port,
                "privileged port")


def make_immutable(ctx, path):
    """chattr +i: root cannot create files in the directory either. False
    where unsupported."""
    if subprocess.run(["chattr", "+i", path], capture_output=True).returncode != 0:
        return False
    ctx.defer(lambda: subprocess.run(["chattr", "-i", path], capture_output=True))
    return not os.access(path, os.W_OK)


def test_state_dir_created_or_refused(ctx):
    ctx.hook("10-ok", "true")
    # Missing in a writable parent: check says so, the daemon creates it 0700.
    r = run(check_args(ctx))
    check(r.returncode == 0 and errors(r) == [], "exit %d %r" % (r.returncode, r.stderr))
    check(comments(r, "state-dir") == ["state-dir '%s' does not exist yet; the agent creates it "
                                       "(mode 0700)" % ctx.state,
                                       "state-dir '%s' will be the agent's alone, and no agent runs on "
                                       "it" % ctx.state], r.stdout)
    check(not os.path.exists(ctx.state), "check created the state dir")
    a = ctx.start_agent()
    check(stat.S_IMODE(os.stat(ctx.state).st_mode) == 0o700, "mode %o" % os.stat(ctx.state).st_mode)
    a.stop()
    r = run(check_args(ctx))
    check(comments(r, "state-dir") == ["state-dir '%s' is writable" % ctx.state,
                                       "state-dir '%s' is the agent's alone, and no agent runs on it"
                                       % ctx.state], r.stdout)

    # No parent.
    deep = os.path.join(ctx.dir, "no-parent", "state")
    line = ("spot-agent: state-dir '%s' does not exist and cannot be created: its parent '%s' does "
            "not exist either" % (deep, os.path.dirname(deep)))
    refused(run(check_args(ctx, state_dir=deep)), line, "check, no parent")
    refused(run(daemon_args(ctx, state_dir=deep), timeout=TIMEOUT), line, "start, no parent")

    # A file in its place.
    afile = ctx.config_file("x", "a-file")
    refused(run(check_args(ctx, state_dir=afile)),
            "spot-agent: state-dir '%s' is not a directory" % afile, "check, file")

    # Not writable, even for root.
    if make_immutable(ctx, ctx.state):
        line = ("spot-agent: state-dir '%s' is not writable (Operation not permitted), so "
                "'%s/state.json' cannot be saved" % (ctx.state, ctx.state))
        refused(run(check_args(ctx)), line, "check, immutable")
        refused(run(daemon_args(ctx), timeout=TIMEOUT), line, "start, immutable")
        sub = os.path.join(ctx.state, "sub")
        refused(run(check_args(ctx, state_dir=sub)),
                "spot-agent: state-dir '%s' does not exist and cannot be created in '%s': "
                "Operation not permitted" % (sub, ctx.state), "check, immutable parent")


class NotTheAgent(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args):
        pass


def test_check_probes_the_listen_address(ctx):
    ctx.hook("10-ok", "true")
    port = free_port()
    r = run(check_args(ctx, listen="127.0.0.1:%d" % port))
    check(r.returncode == 0, "free port: %d %r" % (r.returncode, r.stderr))
    check(comments(r, "listen") == ["listen '127.0.0.1:%d' can be bound" % port], r.stdout)
    r = run(check_args(ctx, listen="none"))
    check(r.returncode == 0 and comments(r, "listen") == ["listen = none: no HTTP endpoint"], r.stdout)

    # Held by something that is not the agent: an HTTP server...
    srv = http.server.HTTPServer(("127.0.0.1", 0), NotTheAgent)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    ctx.defer(srv.shutdown)
    other = "127.0.0.1:%d" % srv.server_address[1]
    refused(run(check_args(ctx, listen=other)),
            "spot-agent: listen '%s' is in use by another program (it does not answer /healthz as "
            "spot-agent): stop it or set listen" % other, "check, other server")
    # ... or a socket that never answers (the probe gives up in time).
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(4)
    ctx.defer(mute.close)
    held = "127.0.0.1:%d" % mute.getsockname()[1]
    refused(run(check_args(ctx, listen=held)),
            "spot-agent: listen '%s' is in use, and what holds it does not answer /healthz "
            "(Connection timed out): stop it or set listen" % held, "check, mute socket")
    # An address this machine does not have.
    refused(run(check_args(ctx, listen="192.0.2.1:%d" % port)),
            "spot-agent: listen '192.0.2.1:%d' cannot be bound: Cannot assign requested address" % port,
            "check, foreign address")

    # Held by a running agent: fine, and its answers say who it is.
    a = ctx.start_agent()
    with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % ctx.http_port, timeout=10) as resp:
        check(re.match(r"spot-agent/\d", resp.headers.get("Server", "")), "Server %r" % resp.headers)
    mine = "127.0.0.1:%d" % ctx.http_port
    r = run(check_args(ctx, listen=mine))
    check(r.returncode == 0 and errors(r) == [], "own port: %d %r" % (r.returncode, r.stderr))
    check(comments(r, "listen") == ["listen '%s' is in use by a running spot-agent" % mine], r.stdout)
    # The wildcard address on the same port is reached on loopback.
    r = run(check_args(ctx, listen="0.0.0.0:%d" % ctx.http_port))
    check(r.returncode == 0, "wildcard: %d %r" % (r.returncode, r.stderr))
    a.stop()


def test_events_without_preempt_refused_unless_explicit(ctx):
    conf = ctx.config_file("events = Reboot\n", "events.conf")
    line = ("spot-agent: %s:1: events: value 'Reboot' would ignore Preempt notices: write '+Reboot' "
            "to add to the default types, 'Preempt,Reboot' to keep Preempt, or 'Reboot,!Preempt' to "
            "drop it on purpose" % conf)
    refused(run(["check", "-c", conf]), line, "check")
    refused(run(["-c", conf, "--hooks-dir", ctx.hooks, "--state-dir", ctx.state, "--listen", "none"],
                timeout=TIMEOUT), line, "start")
    refused(run(["check", "-c", ctx.config_file(""), "--events", "Preempt,+Reboot"]),
            "spot-agent: option --events: value 'Preempt,+Reboot' mixes plain names with '+Type': "
            "list every type wanted, or only '+Type' and '!Type' items to change the default "
            "(Preempt,Terminate,Shutdown)", "mixed")
    refused(run(["check", "-c", ctx.config_file(""), "--events", "!Preempt,!Terminate,!Shutdown"]),
            "spot-agent: option --events: value '!Preempt,!Terminate,!Shutdown' leaves no event "
            "type to act on", "nothing left")
    ctx.hook("10-ok", "true")
    for value, effective in (("+Reboot", "Preempt,Terminate,Reboot,Shutdown"),
                             ("Reboot,Preempt", "Preempt,Reboot"),
                             ("Reboot,!Preempt", "Reboot,!Preempt"),
                             ("!Preempt", "Terminate,Shutdown,!Preempt"),
                             ("!Shutdown,+Freeze", "Preempt,Terminate,Freeze")):
        r = run(check_args(ctx, events=value))
        check(r.returncode == 0, "%s: exit %d %r" % (value, r.returncode, r.stderr))
        check("\nevents = %s\n" % effective in r.stdout, "%s: %s" % (value, r.stdout))


def test_reload_to_no_hooks_warns(ctx):
    ctx.start_sim()
    ctx.recording_hook("10-hook")
    empty = os.path.join(ctx.dir, "empty.d")
    os.mkdir(empty)
    conf = ctx.config_file("hooks-dir = %s\n" % ctx.hooks, "live.conf")
    a = ctx.start_agent(args=ctx.base_args(config=conf, hooks_dir=None))
    a.wait_log(r"hooks: 1 to run")
    for target in (empty, os.path.join(ctx.dir, "gone.d")):
        with open(conf, "w") as f:
            f.write("hooks-dir = %s\n" % target)
        start = len(a.lines)
        a.signal(signal.SIGHUP)
        a.wait_log(r"config reloaded, but no hook would run: hooks-dir '%s' is missing or has no "
                   r"runnable file" % re.escape(target), start=start)
    with open(conf, "w") as f:
        f.write("hooks-dir = %s\n" % ctx.hooks)
    start = len(a.lines)
    a.signal(signal.SIGHUP)
    a.wait_log(r"config reloaded; 1 hook to run", start=start)
    check(a.proc.poll() is None, "agent died")


def test_check_output_is_a_config_file_that_reads_back(ctx):
    ctx.hook("10-ok", "true")
    ctx.hook("20-noexec", "true", mode=0o644)
    # A file name that would be a config line of its own if printed raw.
    ctx.hook("30-x\nprovider = aws", "true", mode=0o644)
    ctx.hook("05-lib", "true", directory=ctx.lib_hooks)
    conf = ctx.config_file("margin = 7\nevents = !Preempt\nvm-name = \" vm #1 \"\n", "in put.conf")
    # The two files that would not run are only warned about.
    first = check_args(ctx, "--poll-interval", "250", "--no-approve", "--log-level", "debug",
                       "--provider", "gcp", "--warn-only")
    first[2] = conf
    r = run(first)
    check(r.returncode == 0, "exit %d %r" % (r.returncode, r.stderr))
    for line in r.stdout.splitlines():
        check(line == "" or line.startswith("#") or re.match(r"^[a-z-]+ = \S", line),
              "not a config line: %r" % line)
    check("# skip  %s/30-x?provider = aws: not executable" % ctx.hooks in r.stdout, r.stdout)
    check(r.stdout.startswith("# spot-agent effective configuration (file: %s/in put.conf)\n"
                              % ctx.dir), r.stdout)
    for want in ("margin = 7", "events = Terminate,Shutdown,!Preempt", 'vm-name = " vm #1 "',
                 "poll-interval = 250", "approve = no", "log-level = debug", "provider = gcp"):
        check("\n%s\n" % want in r.stdout, "lacks %r: %s" % (want, r.stdout))

    # Fed back on its own, it gives the same output but for the file name.
    out = ctx.config_file(r.stdout, "check-out.conf")
    r2 = run(["check", "-c", out, "--warn-only"])
    check(r2.returncode == 0, "read back: exit %d %r" % (r2.returncode, r2.stderr))
    a, b = r.stdout.splitlines(), r2.stdout.splitlines()
    check(b[0] == "# spot-agent effective configuration (file: %s)" % out, b[0])
    check(a[1:] == b[1:], "differs:\n%s\n---\n%s" % (r.stdout, r2.stdout))


def option_table():
    """--help's options and check's config keys, as test/check-docs.py reads them."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "check_docs", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                   "check-docs.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.parse_help(run(["--help"]).stdout), mod.config_keys(AGENT)


def test_reload_keeps_exactly_the_keys_marked_needs_a_restart(ctx):
    sim = ctx.start_sim()
    opts, keys = option_table()
    marked = sorted(k for k in keys if opts[k].restart)
    check(len(marked) >= 3, "restart marks %r" % marked)
    other_hooks = os.path.join(ctx.dir, "other-hooks.d")
    os.mkdir(other_hooks)
    # A different valid value for every key; a new key must be added here.
    changed = {
        "provider": "gcp",
        "imds-url": "http://127.0.0.1:9",
        "hooks-dir": other_hooks,
        "hooks-lib-dir": "none",
        "state-dir": os.path.join(ctx.dir, "other-state"),
        "listen": "127.0.0.1:%d" % free_port(),
        "expose-metrics": "yes",
        "expose-status": "yes",
        "poll-interval": "300",
        "vm-name": "other-vm",
        "events": "+Reboot",
        "margin": "3",
        "gcp-preempt-notice": "40",
        "aws-imds-fallback": "no",
        "aws-lifecycle-hook": "drain-hook",
        "aws-autoscaling-url": "http://127.0.0.1:9/autoscaling",
        "aws-heartbeat-interval": "60",
        "aws-heartbeat-timeout": "900",
        "hook-timeout": "5",
        "drain": "3",
        "approve-policy": "at-once",
        "approve": "no",
        "log-format": "json",
        "log-level": "info",
        "remote-write-url": "http://127.0.0.1:9/api/v1/write",
        "remote-write-bearer-token-file": ctx.config_file("t0ken\n", "token"),
        # Unset as before: not together with a bearer token file.
        "remote-write-basic-auth-file": "",
        "remote-write-label": "team=ml",
        "push-url": "http://127.0.0.1:9",
    }
    check(sorted(changed) == sorted(keys), "keys to change %r, config keys %r" % (sorted(changed), keys))
    ctx.http_port = free_port()
    first = {"imds-url": sim.url, "hooks-dir": ctx.hooks, "hooks-lib-dir": ctx.lib_hooks,
             "state-dir": ctx.state, "listen": "127.0.0.1:%d" % ctx.http_port,
             "poll-interval": "200", "log-format": "text", "log-level": "debug"}
    conf = ctx.config_file("".join("%s = %s\n" % kv for kv in first.items()), "live.conf")
    a = ctx.start_agent(args=["-c", conf])
    a.wait_log(r"this VM is")
    with open(conf, "w") as f:
        f.write("".join("%s = %s\n" % kv for kv in changed.items()))
    start = len(a.lines)
    a.signal(signal.SIGHUP)
    a.wait_log(r"config reloaded", start=start)
    warned = sorted(set(re.findall(r"changing '([a-z-]+)' needs a restart", "\n".join(a.lines[start:]))))
    check(warned == marked, "a reload kept %r, --help marks %r" % (warned, marked))
    # The kept ones are still in force: the endpoint did not move.
    check(ctx.http_get("/healthz")[0] == 200, "endpoint moved")
