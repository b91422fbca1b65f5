"""Command line, config file errors, check, drill and SIGHUP reload."""

import os
import signal
import subprocess

from harness import AGENT, check, wait_for


def run(args, **kw):
    return subprocess.run([AGENT] + args, capture_output=True, text=True, timeout=60, **kw)


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
    check(r.returncode == 0, "exit %d: %s" % (r.returncode, r.stderr))
    runs = [l.split()[1] for l in r.stdout.splitlines() if l.startswith("run ")]
    check(runs == [os.path.join(ctx.lib_hooks, "05-lib"), os.path.join(ctx.hooks, "10-ok")],
          "plan %r" % runs)
    out = r.stdout
    check("20-noexec: not executable" in out, out)
    check("30-gw: group-writable" in out, out)
    check("40-x.dpkg-old: package manager leftover" in out, out)
    check("06-masked: masked" in out, out)
    check("poll-interval = 1000" in out, "effective config missing")


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
