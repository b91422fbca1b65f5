"""The state directory: one agent per directory (a second one leaves before
it touches anything, naming the first one's pid), and a directory and
state files only the agent's user can change, refused at start and by
`check` with one line; state.json is never read through a link."""

import ctypes
import ctypes.util
import os
import re
import signal
import subprocess

from harness import AGENT, TIMEOUT, check, read_state_body, wait_for

LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z spot-agent: (error: )?")


def run(args, timeout=60):
    return subprocess.run([AGENT] + args, capture_output=True, text=True, timeout=timeout)


def errors(r):
    lines = [LOG_PREFIX.sub("spot-agent: ", l) for l in r.stderr.splitlines()]
    return [l for l in lines if not l.startswith("spot-agent: warning: logind")]


def refused(r, line, what):
    check(r.returncode == 2, "%s: exit %d, stderr %r" % (what, r.returncode, r.stderr))
    check(errors(r) == [line], "%s: stderr %r, want %r" % (what, errors(r), line))


def daemon(ctx, **over):
    args = {"hooks-dir": ctx.hooks, "hooks-lib-dir": ctx.lib_hooks, "state-dir": ctx.state,
            "listen": "none", "imds-url": "http://127.0.0.1:9", "log-format": "text"}
    args.update({k.replace("_", "-"): v for k, v in over.items()})
    out = ["-c", ctx.config_file("", "daemon.conf")]
    for k, v in args.items():
        out += ["--" + k, v]
    return out


def check_cmd(ctx, **over):
    args = {"hooks-dir": ctx.hooks, "hooks-lib-dir": ctx.lib_hooks, "state-dir": ctx.state,
            "listen": "none"}
    args.update({k.replace("_", "-"): v for k, v in over.items()})
    out = ["check", "-c", ctx.config_file("", "check.conf")]
    for k, v in args.items():
        out += ["--" + k, v]
    return out


def comments(r, prefix):
    return [l[2:] for l in r.stdout.splitlines() if l.startswith("# " + prefix)]


class Watch:
    """inotify on one file: whether anything opened or read it."""
    IN_ACCESS, IN_OPEN, IN_NONBLOCK = 0x1, 0x20, 0o4000

    def __init__(self, path):
        self.libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.fd = self.libc.inotify_init1(self.IN_NONBLOCK)
        check(self.fd >= 0, "inotify_init1: errno %d" % ctypes.get_errno())
        wd = self.libc.inotify_add_watch(self.fd, path.encode(), self.IN_ACCESS | self.IN_OPEN)
        check(wd >= 0, "inotify_add_watch %s: errno %d" % (path, ctypes.get_errno()))

    def touched(self):
        try:
            return len(os.read(self.fd, 4096)) > 0
        except BlockingIOError:
            return False

    def close(self):
        os.close(self.fd)


def test_second_agent_on_one_state_dir_exits_2_naming_the_first(ctx):
    sim = ctx.start_sim()
    pidfile = os.path.join(ctx.out, "hook.pid")
    fifo = os.path.join(ctx.out, "go")
    os.mkfifo(fifo)
    ctx.hook("10-slow", "echo $$ > %s\nread x < %s\necho done >> %s" % (pidfile, fifo, ctx.record))
    first = ctx.start_agent()
    first.wait_log(r"this VM is")
    with open(os.path.join(ctx.state, "agent.lock")) as f:
        check(f.read() == "%d\n" % first.proc.pid, "the lock file does not hold the agent's pid")
    eid = sim.add_event(type="Preempt", not_before_in=60)
    wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), what="the hook running")
    hook_pid = int(open(pidfile).read())

    def start_saved():
        body, _ = read_state_body(os.path.join(ctx.state, "state.json"))
        hooks = body["records"][0]["hooks"] if body["records"] else []
        return hooks and hooks[0].get("started_usec")
    # The first agent saves the hook's start right after the spawn: wait
    # for it, so that only the second agent could change the file now.
    wait_for(start_saved, what="the hook's start in state.json")

    # A second daemon on the same directory: one line, exit 2, nothing touched.
    line = ("spot-agent: state-dir '%s' is in use by another spot-agent (pid %d): one agent per state "
            "directory; stop that one or set another state-dir" % (ctx.state, first.proc.pid))
    before = os.stat(os.path.join(ctx.state, "state.json")).st_mtime_ns
    refused(run(daemon(ctx, imds_url=sim.url), timeout=TIMEOUT), line, "second agent")
    check(os.path.exists("/proc/%d" % hook_pid), "the second agent killed the first one's hook")
    check(os.stat(os.path.join(ctx.state, "state.json")).st_mtime_ns == before,
          "the second agent wrote the state")
    with open(os.path.join(ctx.state, "agent.lock")) as f:
        check(f.read() == "%d\n" % first.proc.pid, "the second agent changed the lock file")

    # check says who runs there, and takes nothing.
    r = run(check_cmd(ctx))
    check(r.returncode == 0, "check beside the agent: %d %r" % (r.returncode, r.stderr))
    check(comments(r, "state-dir '%s' is the" % ctx.state) ==
          ["state-dir '%s' is the agent's alone, and a spot-agent runs on it (pid %d)"
           % (ctx.state, first.proc.pid)], r.stdout)

    # The first agent's chain goes on as if nothing happened.
    with open(fifo, "w") as f:
        f.write("go\n")
    wait_for(lambda: [a for a in sim.approvals() if eid.lower() in [x.lower() for x in a["event_ids"]]],
             what="approval")
    check(ctx.recorded() == ["done"], "hook record %r" % ctx.recorded())
    check(not first.log_has(r"killed \d+ process"), "leftovers killed in the first agent")

    # Once the first is gone, the directory is free again.
    first.signal(signal.SIGTERM)
    check(first.wait_exit() == 0, "first agent exit")
    r = run(check_cmd(ctx))
    check(comments(r, "state-dir '%s' is the" % ctx.state) ==
          ["state-dir '%s' is the agent's alone, and no agent runs on it" % ctx.state], r.stdout)
    second = ctx.start_agent()
    second.wait_log(r"this VM is")


def test_untrusted_state_dir_refused(ctx):
    ctx.hook("10-ok", "true")
    os.mkdir(ctx.state)
    os.chmod(ctx.state, 0o777)
    line = ("spot-agent: state-dir '%s' is not in trusted hands: directory '%s' is world-writable; it "
            "and every directory above it must be owned by root or the agent's user and writable by "
            "no one else" % (ctx.state, ctx.state))
    refused(run(daemon(ctx), timeout=TIMEOUT), line, "start, 0777")
    refused(run(check_cmd(ctx)), line, "check, 0777")
    check(os.listdir(ctx.state) == [], "a refused start left files: %r" % os.listdir(ctx.state))
    os.chmod(ctx.state, 0o770)
    refused(run(check_cmd(ctx)), line.replace("world-writable", "group-writable"), "check, 0770")

    # Below /tmp, which anybody may write to.
    below = os.path.join(ctx.dir, "state")
    refused(run(check_cmd(ctx, state_dir=below)),
            "spot-agent: state-dir '%s' is not in trusted hands: directory '/tmp' is world-writable; "
            "it and every directory above it must be owned by root or the agent's user and writable "
            "by no one else" % below, "check, below /tmp")
    # Another user's.
    if os.geteuid() == 0:
        os.chmod(ctx.state, 0o700)
        os.chown(ctx.state, 65534, 65534)
        refused(run(check_cmd(ctx)),
                "spot-agent: state-dir '%s' is not in trusted hands: directory '%s' is owned by uid "
                "65534; it and every directory above it must be owned by root or the agent's user and "
                "writable by no one else" % (ctx.state, ctx.state), "check, nobody's")


def test_state_json_through_a_link_refused_and_not_read(ctx):
    ctx.hook("10-ok", "true")
    os.mkdir(ctx.state, 0o700)
    secret = os.path.join(ctx.hook_dir, "secret")
    with open(secret, "w") as f:
        f.write('{"version": 2, "records": []} TOPSECRET\n')
    os.chmod(secret, 0o600)
    os.symlink(secret, os.path.join(ctx.state, "state.json"))
    line = ("spot-agent: '%s/state.json' is a symbolic link: the agent never reads its state through "
            "a link; remove it" % ctx.state)
    w = Watch(secret)
    try:
        r = run(daemon(ctx), timeout=TIMEOUT)
        refused(r, line, "start")
        check("TOPSECRET" not in r.stderr + r.stdout, "the secret leaked")
        refused(run(check_cmd(ctx)), line, "check")
        check(not w.touched(), "the secret was opened or read")
    finally:
        w.close()
    check(os.path.islink(os.path.join(ctx.state, "state.json")), "the link was moved or removed")
    check(sorted(os.listdir(ctx.state)) == ["state.json"], "files %r" % os.listdir(ctx.state))

    # The spare, which the next save writes into, the same.
    os.unlink(os.path.join(ctx.state, "state.json"))
    os.symlink(secret, os.path.join(ctx.state, ".state.json.spare"))
    refused(run(daemon(ctx), timeout=TIMEOUT),
            "spot-agent: '%s/.state.json.spare' is a symbolic link: the agent never reads its state "
            "through a link; remove it" % ctx.state, "start, spare")
    with open(secret) as f:
        check("TOPSECRET" in f.read(), "the secret was overwritten")


def test_state_json_fifo_or_another_users_refused(ctx):
    ctx.hook("10-ok", "true")
    os.mkdir(ctx.state, 0o700)
    path = os.path.join(ctx.state, "state.json")
    os.mkfifo(path, 0o600)
    line = "spot-agent: '%s' is a FIFO, not a regular file: remove it" % path
    refused(run(daemon(ctx), timeout=TIMEOUT), line, "start, FIFO")
    refused(run(check_cmd(ctx)), line, "check, FIFO")
    os.unlink(path)
    with open(path, "w") as f:
        f.write('{"version": 2, "records": []}\n')
    os.chmod(path, 0o600)
    if os.geteuid() == 0:
        os.chown(path, 65534, 65534)
        refused(run(daemon(ctx), timeout=TIMEOUT),
                "spot-agent: '%s' is owned by uid 65534, not by the agent's user (uid 0): remove it, "
                "or chown it if it is the agent's" % path, "start, nobody's")
        os.chown(path, 0, 0)
    os.chmod(path, 0o666)
    refused(run(check_cmd(ctx)), "spot-agent: '%s' is world-writable: chmod 0600 it" % path,
            "check, world-writable")
    os.chmod(path, 0o600)
    r = run(check_cmd(ctx))
    check(r.returncode == 0, "fixed: exit %d %r" % (r.returncode, r.stderr))
