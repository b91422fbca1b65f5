"""Integration test harness: runs the real spot-agent binary against the
project's IMDS simulator with real hook scripts in temporary directories.

Tests wait for events (a log line, a notify message, a file written by a
hook, a request seen by the simulator) with generous timeouts; they never
rely on a fixed sleep for correctness."""

import datetime
import email.utils
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AGENT = os.path.join(TOP, os.environ.get("SPOT_AGENT", "agent/spot-agent"))
SIM = os.path.join(TOP, "test", "imds-sim")
SCHEMA = os.path.join(TOP, "doc", "spot-agent.schema.json")
PYTHON = "/usr/bin/python3"
# Generous: the tests must pass on a loaded 2-core machine and under ASan.
TIMEOUT = float(os.environ.get("SPOT_TEST_TIMEOUT", "30"))


class TestFailure(Exception):
    pass


def trusted_base():
    """A directory for hook directories: the agent runs a hook only when
    every directory from / to it is root's (or the agent's user's) and
    writable by nobody else, so not below /tmp. $SPOT_TEST_HOOKS_BASE, or
    the build tree's it-hooks/ when its whole way passes, else
    /var/lib/spot-agent-test/it-hooks (build-aux/trusted-dir). 0755: tests
    that run the agent as nobody need to reach their hooks."""
    base = os.environ.get("SPOT_TEST_HOOKS_BASE")
    if not base:
        r = subprocess.run(["sh", os.path.join(TOP, "build-aux", "trusted-dir"),
                            os.path.join(TOP, "build", "it-hooks")], capture_output=True, text=True)
        if r.returncode != 0:
            raise TestFailure(r.stderr.strip() or "build-aux/trusted-dir failed")
        base = r.stdout.strip()
    os.makedirs(base, mode=0o755, exist_ok=True)
    d = os.path.realpath(base)
    while True:
        st = os.stat(d)
        if st.st_uid not in (0, os.geteuid()) or st.st_mode & 0o022:
            raise TestFailure("hook directories cannot go below '%s': '%s' is writable by others "
                              "or not ours; set SPOT_TEST_HOOKS_BASE" % (base, d))
        if d == "/":
            return os.path.realpath(base)
        d = os.path.dirname(d)


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def wait_for(cond, timeout=TIMEOUT, what="condition", interval=0.01):
    """Waits until cond() is truthy and returns its value."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise TestFailure("timed out waiting for " + what)
        time.sleep(interval)


# ---- the JSON contract: every /v1/status document the tests fetch, every
# state.json an agent run leaves and every hook stdin they look at is checked
# against doc/spot-agent.schema.json ----

_validators = {}


def _validator(definition):
    if definition not in _validators:
        try:
            import jsonschema   # python3-jsonschema (Debian 12: 4.10, draft 2020-12)
        except ImportError:
            raise TestFailure("python3-jsonschema is missing (apt-get install python3-jsonschema; "
                              "make check installs it)")
        with open(SCHEMA) as f:
            schema = json.load(f)
        root = {"$schema": schema["$schema"], "$defs": schema["$defs"],
                "$ref": "#/$defs/" + definition}
        jsonschema.Draft202012Validator.check_schema(root)
        _validators[definition] = jsonschema.Draft202012Validator(
            root, format_checker=jsonschema.FormatChecker())
    return _validators[definition]


def _rfc3339(usec):
    secs, frac = divmod(usec, 1000000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + ".%06dZ" % frac


def _check_pairs(o, where):
    """Every instant is a pair: "x" must be the RFC 3339 form of "x_usec"."""
    if isinstance(o, list):
        for i, v in enumerate(o):
            _check_pairs(v, "%s[%d]" % (where, i))
        return
    if not isinstance(o, dict):
        return
    for k, v in o.items():
        base = k[:-len("_usec")]
        if k.endswith("_usec") and base in o and (o[base] is None or isinstance(o[base], str)):
            want = None if v is None else _rfc3339(v)
            if o[base] != want:
                raise TestFailure("%s.%s is %r, not %r (%s.%s = %r)" % (where, base, o[base], want,
                                                                       where, k, v))
        _check_pairs(v, "%s.%s" % (where, k))


def validate(doc, definition, what):
    """Raises TestFailure unless doc is a valid $defs/<definition>."""
    import jsonschema.exceptions
    errors = list(_validator(definition).iter_errors(doc))
    if errors:
        # The deepest error inside a oneOf says what is wrong, not just where.
        e = jsonschema.exceptions.best_match(errors)
        raise TestFailure("%s does not follow doc/spot-agent.schema.json (%d errors), e.g. at %s: %s"
                          % (what, len(errors), "/".join(str(x) for x in e.absolute_path) or "top",
                             e.message[:300]))
    _check_pairs(doc, what)
    return doc


def status_document(text):
    """A /v1/status body, parsed and checked."""
    return validate(json.loads(text), "status_document", "/v1/status")


def event_document(text):
    """A hook's standard input, parsed and checked."""
    return validate(json.loads(text), "event", "the hook's stdin")


def state_file(path):
    """A state.json, parsed and checked."""
    with open(path, "rb") as f:
        return validate(json.loads(f.read().decode()), "state_file", path)


def _fnv1a(data):
    h = 14695981039346656037
    for b in data:
        h ^= b
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def read_state_body(path):
    """The body of a state file ({"records": [...], "extra": ...}) and its
    save counter, without any check."""
    with open(path, "rb") as f:
        frame = json.loads(f.read().decode())
    return frame["body"], frame["seq"]


def write_state_body(path, body, seq=1):
    """Writes a state file in the agent's frame around body, its sum made
    right, as the agent would have saved it."""
    text = json.dumps(body, separators=(",", ":")).encode()
    with open(path, "wb") as f:
        f.write(b'{"version":3,"seq":%d,"sum":"%016x","body":' % (seq, _fnv1a(text)) + text + b"}")


def _file_id(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def pid_alive(pid):
    """Whether a process runs (a zombie, killed and not yet reaped, counts
    as dead)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except (OSError, ValueError):
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Sim:
    def __init__(self, workdir, *args):
        self.port_file = os.path.join(workdir, "sim.port")
        self.log_path = os.path.join(workdir, "sim.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [PYTHON, SIM, "--port", "0", "--port-file", self.port_file] + list(args),
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: os.path.exists(self.port_file) or self.proc.poll() is not None,
                 what="simulator port file")
        check(self.proc.poll() is None, "simulator exited early")
        with open(self.port_file) as f:
            self.port = int(f.read().strip())
        self.url = "http://127.0.0.1:%d" % self.port

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read().decode()
        return json.loads(text) if text else None

    def add_event(self, **kw):
        return self.call("POST", "/__sim/events", kw)["id"]

    def remove_event(self, eid):
        self.call("DELETE", "/__sim/events/" + eid)

    def fault(self, **kw):
        self.call("POST", "/__sim/faults", kw)

    def clear_faults(self):
        self.call("DELETE", "/__sim/faults")

    def config(self, **kw):
        self.call("POST", "/__sim/config", kw)

    def requests(self):
        return self.call("GET", "/__sim/requests")

    def approvals(self):
        return self.call("GET", "/__sim/approvals")

    def state(self):
        return self.call("GET", "/__sim/state")

    def polls(self):
        return [r for r in self.requests()
                if r["method"] == "GET" and r["path"] == "/metadata/scheduledevents"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class NotifySocket:
    """A $NOTIFY_SOCKET that records every sd_notify message."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.messages = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return
            with self.lock:
                self.messages.extend(data.decode(errors="replace").split("\n"))

    def has(self, prefix):
        with self.lock:
            return any(m.startswith(prefix) for m in self.messages)

    def count(self, prefix):
        with self.lock:
            return sum(1 for m in self.messages if m.startswith(prefix))

    def close(self):
        self.sock.close()


class Agent:
    """One run of the agent binary; stderr is collected line by line."""

    def __init__(self, ctx, args, env=None, notify=True, prefix=None):
        self.ctx = ctx
        self.lines = []
        self.cond = threading.Condition()
        e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
             "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0",
             "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
        self.notify = None
        if notify:
            self.notify = NotifySocket(os.path.join(ctx.dir, "notify-%d.sock" % len(ctx.agents)))
            e["NOTIFY_SOCKET"] = self.notify.path
        if env:
            e.update(env)
        # The state file as it was: the one this run leaves is checked.
        self.state_path = os.path.join(ctx.state, "state.json")
        self.state_before = _file_id(self.state_path)
        self.log_path = os.path.join(ctx.dir, "agent-%d.log" % len(ctx.agents))
        self.log = open(self.log_path, "w")
        # prefix: a command that execs the agent in the end (unshare ...),
        # so that the process is the agent's.
        self.proc = subprocess.Popen((prefix or []) + [AGENT] + args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=e)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.log.write(line + "\n")
            self.log.flush()
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_log(self, pattern, timeout=TIMEOUT, start=0):
        """Waits for a line matching the regex; returns the match."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        i = start
        with self.cond:
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    if m:
                        return m
                    i += 1
                left = end - time.monotonic()
                if left <= 0:
                    raise TestFailure("timed out waiting for log line /%s/" % pattern)
                if self.proc.poll() is not None and not self.reader.is_alive():
                    raise TestFailure("agent exited (%s) before log line /%s/"
                                      % (self.proc.returncode, pattern))
                self.cond.wait(min(left, 0.2))

    def log_has(self, pattern):
        rx = re.compile(pattern)
        with self.cond:
            return any(rx.search(l) for l in self.lines)

    def output(self):
        with self.cond:
            return "\n".join(self.lines)

    def wait_ready(self):
        wait_for(lambda: self.notify.has("READY=1") or self.proc.poll() is not None,
                 what="READY=1")
        check(self.proc.poll() is None, "agent exited before READY=1:\n" + self.output())

    def signal(self, sig):
        self.proc.send_signal(sig)

    def kill9(self):
        """SIGKILL, as a crash: waits until the process is gone."""
        self.proc.kill()
        return self.wait_exit()

    def wait_exit(self, timeout=TIMEOUT):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure("agent did not exit")
        self.reader.join(5)
        self.check_state()
        return rc

    def check_state(self):
        """The state.json this run wrote (if it wrote one) follows the schema."""
        now = _file_id(self.state_path)
        if now is not None and now != self.state_before:
            state_file(self.state_path)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(5)
        self.log.close()
        if self.notify:
            self.notify.close()


class Context:
    """A test's world: temp dir, hook dirs, state dir, simulator, agents."""

    def __init__(self, name):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="spot-it-%s-" % name)
        os.chmod(self.dir, 0o755)
        self.hook_dir = tempfile.mkdtemp(prefix="%s-" % name, dir=trusted_base())
        os.chmod(self.hook_dir, 0o755)
        self.hooks = os.path.join(self.hook_dir, "hooks.d")
        self.lib_hooks = os.path.join(self.hook_dir, "lib-hooks.d")
        # The agent refuses a state directory others can change, the whole
        # way up: not below /tmp either.
        self.state = os.path.join(self.hook_dir, "state")
        self.out = os.path.join(self.dir, "out")
        for d in (self.hooks, self.lib_hooks, self.out):
            os.mkdir(d)
        self.record = os.path.join(self.out, "record")
        self.sim = None
        self.agents = []
        self.http_port = None
        self.deferred = []

    def start_sim(self, *args):
        self.sim = Sim(self.dir, *args)
        return self.sim

    def hook(self, name, body, mode=0o755, directory=None):
        path = os.path.join(directory or self.hooks, name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\n" + body + "\n")
        os.chmod(path, mode)
        return path

    def recording_hook(self, name, extra="", mode=0o755):
        """A hook that appends 'NAME start/end' lines to the record file."""
        return self.hook(name, 'echo "%s start $SPOT_EVENT_ID" >> %s\n%s\necho "%s end" >> %s'
                         % (name, self.record, extra, name, self.record), mode)

    def recorded(self):
        try:
            with open(self.record) as f:
                return [l.rstrip("\n") for l in f]
        except FileNotFoundError:
            return []

    def config_file(self, text, name="spot-agent.conf"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def base_args(self, **over):
        if self.http_port is None:
            self.http_port = free_port()
        args = {
            "config": self.config_file("# test config\n", "empty.conf"),
            "imds-url": self.sim.url if self.sim else "http://127.0.0.1:9",
            "hooks-dir": self.hooks,
            "hooks-lib-dir": self.lib_hooks,
            "state-dir": self.state,
            "listen": "127.0.0.1:%d" % self.http_port,
            "poll-interval": "200",
            # Approvals at once after the chain; the drain's tests set it.
            "drain": "0",
            "log-format": "text",
            "log-level": "debug",
        }
        args.update({k.replace("_", "-"): v for k, v in over.items()})
        out = []
        for k, v in args.items():
            if v is None:
                continue
            if v is True:
                out.append("--" + k)
            else:
                out += ["--" + k, str(v)]
        return out

    def start_agent(self, args=None, env=None, notify=True, wait_ready=True, prefix=None, **over):
        a = Agent(self, args if args is not None else self.base_args(**over), env, notify, prefix)
        self.agents.append(a)
        if wait_ready and notify:
            a.wait_ready()
        return a

    def http_get(self, path, method="GET"):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.http_port, path), method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, body = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        if method == "GET" and path == "/v1/status" and status == 200:
            status_document(body)
            # And the state file as the agent has it now (renamed into
            # place whole, so never half-written).
            for a in self.agents:
                a.check_state()
        return status, body

    def saved_state(self):
        """state.json, parsed and checked against the schema."""
        return state_file(os.path.join(self.state, "state.json"))

    def defer(self, fn):
        """Runs fn at cleanup, after the agents and the simulator stopped
        (kill what a test left running, undo a chattr, ...)."""
        self.deferred.append(fn)

    def cleanup(self, keep):
        for a in self.agents:
            a.stop()
        if self.sim:
            self.sim.stop()
        for fn in reversed(self.deferred):
            try:
                fn()
            except Exception:
                pass
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)
            shutil.rmtree(self.hook_dir, ignore_errors=True)

    def logs(self):
        out = []
        for a in self.agents:
            out.append("--- %s" % a.log_path)
            try:
                with open(a.log_path) as f:
                    out.append(f.read()[-20000:])
            except OSError:
                pass
        if self.sim:
            out.append("--- %s (tail)" % self.sim.log_path)
            try:
                with open(self.sim.log_path) as f:
                    out.append(f.read()[-4000:])
            except OSError:
                pass
        return "\n".join(out)


def gate_wait(gate):
    """A hook body that waits until the file gate exists."""
    return "while [ ! -e %s ]; do sleep 0.02; done" % gate


def touch(path):
    with open(path, "w"):
        pass


def rfc3339(text):
    """Unix time of an RFC 3339 (or RFC 1123) time."""
    if "," in text:
        return email.utils.parsedate_to_datetime(text).timestamp()
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def event_not_before(sim, eid):
    """The event's NotBefore as served (whole seconds), Unix time."""
    for ev in sim.call("GET", "/__sim/events"):
        if ev["EventId"].lower() == eid.lower():
            return rfc3339(ev["NotBefore"])
    raise TestFailure("no event %s in the simulator" % eid)


def gets(sim, path, since_mono=0.0):
    """The simulator's GETs of path since since_mono."""
    return [r for r in sim.requests() if r["method"] == "GET" and r["path"].startswith(path)
            and r["mono"] >= since_mono]


def wait_polls(sim, path, n, since_mono, what="polls", timeout=TIMEOUT):
    """Waits until n more GETs of path arrived after since_mono."""
    return wait_for(lambda: len(gets(sim, path, since_mono)) >= n, timeout=timeout,
                    what="%d %s" % (n, what))


def http_status(ctx, path):
    """The status of GET path, None while the endpoint does not answer."""
    try:
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (ctx.http_port, path))
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (OSError, urllib.error.URLError):
        return None


def approvals_for(sim, eid):
    """The simulator's approvals that name eid (any case)."""
    return [a for a in sim.approvals() if any(x.lower() == eid.lower() for x in a["event_ids"])]
