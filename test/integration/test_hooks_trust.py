"""Which hook files the agent trusts and can run: every directory on the way
to a hook must be root's and writable by nobody else, what runs is the file
that was checked, and a file the kernel could not execute is refused up
front; by `spot-agent check`, by a drill and by the daemon alike."""

import json
import os
import subprocess

from harness import AGENT, approvals_for, check, wait_for

NOBODY = 65534


def run(args, **kw):
    return subprocess.run([AGENT] + args, capture_output=True, text=True, timeout=120, **kw)


def mkdir(path, mode=0o755, uid=0):
    os.mkdir(path)
    os.chmod(path, mode)
    os.chown(path, uid, uid)
    return path


def script(path, body, mode=0o755):
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body + "\n")
    os.chmod(path, mode)
    return path


def recorder(ctx, path):
    """A root 0755 hook that would leave its name in the record."""
    return script(path, 'echo "%s ran" >> %s' % (os.path.basename(path), ctx.record))


def attacks(ctx):
    """Hook directories an attacker could have planted a hook in, each with
    the reason `check` must give. Returns [(hooks_dir, name, reason)]."""
    top = ctx.hook_dir
    out = []

    d = mkdir(os.path.join(top, "open"), 0o777)
    recorder(ctx, os.path.join(d, "10-in-open"))
    out.append((d, "10-in-open", "directory '%s' is world-writable" % d))

    d = mkdir(os.path.join(top, "nobodys"), 0o755, NOBODY)
    recorder(ctx, os.path.join(d, "10-in-nobodys"))
    out.append((d, "10-in-nobodys", "directory '%s' is owned by uid %d" % (d, NOBODY)))

    p = mkdir(os.path.join(top, "nobody-parent"), 0o755, NOBODY)
    d = mkdir(os.path.join(p, "hooks"))
    recorder(ctx, os.path.join(d, "10-below-nobodys"))
    out.append((d, "10-below-nobodys", "directory '%s' is owned by uid %d" % (p, NOBODY)))

    # A link to a good root binary, planted where nobody may write.
    d = mkdir(os.path.join(top, "planted"), 0o755, NOBODY)
    os.symlink("/usr/bin/id", os.path.join(d, "05-planted"))
    out.append((d, "05-planted", "directory '%s' is owned by uid %d" % (d, NOBODY)))

    # A link in a good directory to a file in a world-writable one.
    ww = mkdir(os.path.join(top, "ww-target"), 0o1777)
    recorder(ctx, os.path.join(ww, "target"))
    d = mkdir(os.path.join(top, "good-with-link"))
    os.symlink(os.path.join(ww, "target"), os.path.join(d, "10-link-out"))
    out.append((d, "10-link-out", "link target '%s/target': directory '%s' is world-writable" % (ww, ww)))

    # A root hook whose interpreter sits where a service account may write
    # (#!/opt/venv/bin/python with /opt/venv/bin group-writable), named
    # directly or through env.
    venv = mkdir(os.path.join(top, "venv-bin"), 0o775)
    interp = os.path.join(venv, "python")
    with open(interp, "w") as f:
        f.write('#!/bin/sh\nexec /bin/sh "$@"\n')
    os.chmod(interp, 0o755)
    for name, line, label in (("10-venv", "#!" + interp, "interpreter"),
                              ("10-env-venv", "#!/usr/bin/env " + interp, "env's interpreter")):
        d = mkdir(os.path.join(top, "uses-" + name))
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write('%s\necho "%s ran" >> %s\n' % (line, name, ctx.record))
        os.chmod(path, 0o755)
        out.append((d, name, "%s '%s': directory '%s' is group-writable" % (label, interp, venv)))
    return out


def plan_of(stdout):
    """check's '# run   PATH' and '# skip  PATH: reason' comments."""
    runs = [l.split()[2] for l in stdout.splitlines() if l.startswith("# run ")]
    skips = [l[len("# skip  "):] for l in stdout.splitlines() if l.startswith("# skip  ")]
    return runs, skips


def test_check_refuses_untrusted_ways(ctx):
    conf = ctx.config_file("")
    for d, name, reason in attacks(ctx):
        r = run(["check", "-c", conf, "--hooks-dir", d, "--hooks-lib-dir", "none"])
        # A hook that would not run fails check.
        check(r.returncode == 2, "check exit %d: %s" % (r.returncode, r.stderr))
        check("hooks: '%s/%s' would not run: %s" % (d, name, reason) in r.stderr,
              "%s: check does not say why: %s" % (d, r.stderr))
        runs, skips = plan_of(r.stdout)
        check(runs == [], "%s: would run %r" % (d, runs))
        check(skips == ["%s/%s: %s" % (d, name, reason)], "%s: skips %r" % (d, skips))
    # The same hooks run once the way to them is fixed.
    recorder(ctx, os.path.join(ctx.hooks, "10-fine"))
    r = run(["check", "-c", conf, "--hooks-dir", ctx.hooks, "--hooks-lib-dir", "none"])
    check(r.returncode == 0, "check exit %d: %s" % (r.returncode, r.stderr))
    check(plan_of(r.stdout) == ([os.path.join(ctx.hooks, "10-fine")], []), r.stdout)


def test_hooks_below_tmp_are_refused(ctx):
    # ctx.dir is below /tmp, which anybody may write to (sticky or not).
    d = mkdir(os.path.join(ctx.dir, "hooks-in-tmp"))
    recorder(ctx, os.path.join(d, "10-x"))
    r = run(["check", "-c", ctx.config_file(""), "--hooks-dir", d, "--hooks-lib-dir", "none"])
    runs, skips = plan_of(r.stdout)
    check(runs == [] and skips == ["%s/10-x: directory '/tmp' is world-writable" % d],
          "hooks below /tmp: %r %r" % (runs, skips))


def test_drill_runs_no_untrusted_hook(ctx):
    conf = ctx.config_file("")
    for d, name, reason in attacks(ctx):
        r = run(["drill", "-c", conf, "--hooks-dir", d, "--hooks-lib-dir", ctx.lib_hooks,
                 "--notice", "20"])
        # Not run, but listed as skipped with its reason, and the drill fails.
        rows = [l.split()[0] for l in r.stdout.splitlines()]
        check(name not in rows, "%s: drill ran %s:\n%s" % (d, name, r.stdout))
        check("skipped %s/%s: %s\n" % (d, name, reason) in r.stdout,
              "%s: drill does not list the skip:\n%s" % (d, r.stdout))
        check(r.returncode == 1 and "drill: FAILED" in r.stdout, "%s: drill exit %d" % (d, r.returncode))
        check("uid=0(" not in r.stderr, "the planted link ran: %s" % r.stderr)
        check(reason in r.stderr, "%s: drill does not say why (%s):\n%s" % (d, reason, r.stderr))
    check(ctx.recorded() == [], "refused hooks ran: %r" % ctx.recorded())


def test_daemon_runs_no_untrusted_hook(ctx):
    """An eviction with an untrusted hook directory (etc) and a trusted one
    (lib) holding a good hook and a link out to an untrusted target: only
    the good hook runs, the refusals are logged with their reasons."""
    sim = ctx.start_sim()
    top = ctx.hook_dir
    etc = mkdir(os.path.join(top, "etc-open"), 0o777)
    recorder(ctx, os.path.join(etc, "10-planted"))
    os.symlink("/usr/bin/id", os.path.join(etc, "20-planted-id"))
    ww = mkdir(os.path.join(top, "ww"), 0o777)
    recorder(ctx, os.path.join(ww, "target"))
    os.symlink(os.path.join(ww, "target"), os.path.join(ctx.lib_hooks, "30-link-out"))
    recorder(ctx, os.path.join(ctx.lib_hooks, "50-good"))
    a = ctx.start_agent(hooks_dir=etc)
    a.wait_log(r"this VM is")
    eid = sim.add_event(type="Preempt", not_before_in=30)
    wait_for(lambda: approvals_for(sim, eid), what="approval")
    check(ctx.recorded() == ["50-good ran"], "ran: %r" % ctx.recorded())
    check(not a.log_has(r"uid=0\("), "the planted link ran")
    for name in ("10-planted", "20-planted-id"):
        check(a.log_has(r"skipping '%s/%s': directory '%s' is world-writable" % (etc, name, etc)),
              "no skip line for %s" % name)
    check(a.log_has(r"skipping '%s/30-link-out': link target '%s/target': directory '%s' is "
                    r"world-writable" % (ctx.lib_hooks, ww, ww)), "no skip line for the link")
    st = json.loads(ctx.http_get("/v1/status")[1])
    check([h["name"] for h in st["hooks"]] == ["50-good"], "status hooks %r" % st["hooks"])


def release(fifo):
    """Lets a hook blocked in `read x < fifo` go on."""
    def go():
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return False   # ENXIO: the hook has not opened it yet
        os.write(fd, b"go\n")
        os.close(fd)
        return True
    wait_for(go, what="the first hook reading the fifo")


def test_file_swapped_after_the_scan_does_not_run(ctx):
    """The plan keeps the files it checked open, and runs those: a file
    renamed over a hook after the scan does not run, the checked one does;
    a hook made group-writable after the scan is refused at its start."""
    sim = ctx.start_sim()
    ready = os.path.join(ctx.out, "ready")
    fifo = os.path.join(ctx.out, "go")
    os.mkfifo(fifo)
    script(os.path.join(ctx.hooks, "10-first"), "touch %s\nread x < %s" % (ready, fifo))
    second = script(os.path.join(ctx.hooks, "20-second"),
                    'echo "second original $0 $SPOT_HOOK_PATH" >> %s' % ctx.record)
    third = script(os.path.join(ctx.hooks, "30-third"), 'echo "third ran" >> %s' % ctx.record)
    evil = script(os.path.join(ctx.hook_dir, "evil"), 'echo "EVIL $0" >> %s' % ctx.record)
    a = ctx.start_agent()
    a.wait_log(r"this VM is")
    eid = sim.add_event(type="Preempt", not_before_in=30)
    wait_for(lambda: os.path.exists(ready), what="the first hook running")
    os.rename(evil, second)
    os.chmod(third, 0o775)

    release(fifo)
    wait_for(lambda: approvals_for(sim, eid), what="approval")
    check(ctx.recorded() == ["second original /dev/fd/3 %s" % second], "ran: %r" % ctx.recorded())
    a.wait_log(r"hook '30-third' refused at its start: group-writable, not run")
    st = json.loads(ctx.http_get("/v1/status")[1])
    results = [(h["name"], h["result"]) for h in st["hooks"]]
    check(results == [("10-first", "ok"), ("20-second", "ok"), ("30-third", "failed")],
          "results %r" % results)


def write(path, data, mode=0o755):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def test_check_refuses_what_cannot_be_executed(ctx):
    d = ctx.hooks
    write(os.path.join(d, "10-text"), b"echo no interpreter line\n")
    write(os.path.join(d, "20-missing"), b"#!/nonexistent/sh\necho never\n")
    noexec = write(os.path.join(ctx.hook_dir, "interp"), b"#!/bin/sh\n", 0o644)
    write(os.path.join(d, "30-noexec-interp"), b"#!" + noexec.encode() + b"\n")
    with open("/bin/true", "rb") as f:
        elf = bytearray(f.read())
    elf[18:20] = (43).to_bytes(2, "little" if elf[5] == 1 else "big")   # SPARC V9
    write(os.path.join(d, "40-foreign-elf"), bytes(elf))
    write(os.path.join(d, "50-true"), open("/bin/true", "rb").read())
    r = run(["check", "-c", ctx.config_file(""), "--hooks-dir", d, "--hooks-lib-dir", "none"])
    runs, skips = plan_of(r.stdout)
    bits = "64" if elf[4] == 2 else "32"
    check(runs == [os.path.join(d, "50-true")], "runs %r" % runs)
    check(skips == [os.path.join(d, "10-text") + ": not an executable format (no '#!' line, not ELF)",
                    os.path.join(d, "20-missing") + ": interpreter '/nonexistent/sh' does not exist",
                    os.path.join(d, "30-noexec-interp") + ": interpreter '%s' is not executable" % noexec,
                    os.path.join(d, "40-foreign-elf") +
                    ": ELF executable for another machine (e_machine 43, %s-bit)" % bits],
          "skips %r" % skips)


def test_check_accounts_for_100000_files(ctx):
    d = ctx.hooks
    src = None
    for i in range(100000):
        p = os.path.join(d, "h%06d" % i)
        if i % 50000 == 0:   # below the file system's limit of links to one file
            src = script(p, "exit 0")
        else:
            os.link(src, p)
    r = run(["check", "-c", ctx.config_file(""), "--hooks-dir", d, "--hooks-lib-dir", "none"])
    runs, skips = plan_of(r.stdout)
    check(len(runs) == 64 and runs[-1].endswith("/h000063"), "runs %d" % len(runs))
    check("# skipped files (99936)" in r.stdout, "no total of the skips")
    check(len(skips) == 257 and all(x.endswith(": too many hooks") for x in skips[:256]),
          "skips listed %d: %r" % (len(skips), skips[:3]))
    check(skips[256] == "... and 99680 more", "last line %r" % skips[256])


def test_daemon_refuses_what_cannot_be_executed_and_counts_every_skip(ctx):
    sim = ctx.start_sim()
    write(os.path.join(ctx.hooks, "10-missing"), b"#!/nonexistent/sh\necho never >> %s\n"
          % ctx.record.encode())
    recorder(ctx, os.path.join(ctx.hooks, "20-good"))
    for i in range(300):
        recorder(ctx, os.path.join(ctx.hooks, "junk%03d~" % i))
    a = ctx.start_agent()
    a.wait_log(r"this VM is")
    eid = sim.add_event(type="Preempt", not_before_in=30)
    wait_for(lambda: approvals_for(sim, eid), what="approval")
    check(ctx.recorded() == ["20-good ran"], "ran: %r" % ctx.recorded())
    check(a.log_has(r"skipping '%s/10-missing': interpreter '/nonexistent/sh' does not exist" % ctx.hooks),
          "no skip line for the missing interpreter")
    # 301 skips: 256 listed, the rest counted.
    check(a.log_has(r"hooks: skipping 45 more files, not listed"), "the skips beyond the list not logged")


def test_grace_comes_out_of_the_budget(ctx):
    """A first hook that ignores SIGTERM and would run on: its SIGKILL comes
    at the end of its budget (8 s), not a grace after it, so the second
    hook still gets its turn before the deadline (about 9.5 s away)."""
    sim = ctx.start_sim()
    script(os.path.join(ctx.hooks, "10-stubborn"),
           "trap '' TERM\necho \"stubborn $SPOT_HOOK_TIMEOUT\" >> %s\nwhile :; do sleep 1; done" % ctx.record)
    recorder(ctx, os.path.join(ctx.hooks, "20-next"))
    a = ctx.start_agent(hook_timeout=8)
    a.wait_log(r"this VM is")
    eid = sim.add_event(type="Preempt", not_before_in=11.5)
    wait_for(lambda: approvals_for(sim, eid), what="approval", timeout=60)
    check(ctx.recorded() == ["stubborn 8", "20-next ran"], "ran: %r" % ctx.recorded())
    check(not a.log_has(r"not run: deadline"), "the second hook was skipped for the deadline")
    a.wait_log(r"hook '10-stubborn' still running 2.0 s after SIGTERM, sending SIGKILL")
    st = json.loads(ctx.http_get("/v1/status")[1])
    results = [(h["name"], h["result"]) for h in st["hooks"]]
    check(results == [("10-stubborn", "timeout"), ("20-next", "ok")], "results %r" % results)


def test_exec_error_is_logged_with_the_interpreter(ctx):
    """A hook whose interpreter goes away after the scan fails to execute:
    the log says why, naming the interpreter, and the chain goes on."""
    sim = ctx.start_sim()
    ready = os.path.join(ctx.out, "ready")
    fifo = os.path.join(ctx.out, "go")
    os.mkfifo(fifo)
    interp = os.path.join(ctx.hook_dir, "mysh")
    with open("/bin/sh", "rb") as f:
        write(interp, f.read())
    script(os.path.join(ctx.hooks, "10-first"), "touch %s\nread x < %s" % (ready, fifo))
    write(os.path.join(ctx.hooks, "20-needs-mysh"), b"#!%s\necho never >> %s\n"
          % (interp.encode(), ctx.record.encode()))
    recorder(ctx, os.path.join(ctx.hooks, "30-after"))
    a = ctx.start_agent()
    a.wait_log(r"this VM is")
    eid = sim.add_event(type="Preempt", not_before_in=30)
    wait_for(lambda: os.path.exists(ready), what="the first hook running")
    os.unlink(interp)
    release(fifo)
    wait_for(lambda: approvals_for(sim, eid), what="approval")
    check(ctx.recorded() == ["30-after ran"], "ran: %r" % ctx.recorded())
    a.wait_log(r"hook '20-needs-mysh' cannot execute: No such file or directory \(interpreter '%s'\)"
               % interp)
    st = json.loads(ctx.http_get("/v1/status")[1])
    results = [(h["name"], h["result"]) for h in st["hooks"]]
    check(results == [("10-first", "ok"), ("20-needs-mysh", "failed"), ("30-after", "ok")],
          "results %r" % results)


def test_check_and_drill_fail_on_windows_line_endings_and_too_many_hooks(ctx):
    """A script saved with Windows line endings, and hooks beyond the 64
    that run, would not run: check exits 2 naming each with its reason,
    a drill fails and lists them; --warn-only lets check pass. A README and
    a text file next to the hooks fail nothing."""
    d = ctx.hooks
    write(os.path.join(d, "05-crlf"), b"#!/bin/sh\r\necho hi\r\n")
    write(os.path.join(d, "README"), b"Hooks for this machine.\n", 0o644)
    write(os.path.join(d, "notes.txt"), b"not a hook\n", 0o644)
    conf = ctx.config_file("")
    r = run(["check", "-c", conf, "--hooks-dir", d, "--hooks-lib-dir", "none"])
    check(r.returncode == 2, "check exit %d: %s" % (r.returncode, r.stderr))
    crlf = "%s/05-crlf: Windows line endings (CRLF): convert it with dos2unix" % d
    check("hooks: '%s/05-crlf' would not run: Windows line endings (CRLF)" % d in r.stderr, r.stderr)
    check("no hook would run from '%s'" % d in r.stderr, "no 'no hook would run': %s" % r.stderr)
    runs, skips = plan_of(r.stdout)
    check(skips == [crlf, "%s/notes.txt: not executable" % d], "skips %r" % skips)
    check("notes.txt" not in r.stderr and "README" not in r.stderr + r.stdout, r.stderr)
    r = run(["drill", "-c", conf, "--hooks-dir", d, "--hooks-lib-dir", "none", "--notice", "10"])
    check(r.returncode == 1 and "drill: FAILED" in r.stdout, "drill exit %d: %s" % (r.returncode, r.stdout))
    check("skipped " + crlf + "\n" in r.stdout, "drill does not list the CRLF file:\n%s" % r.stdout)
    check("skipped %s/notes.txt: not executable (ignored)\n" % d in r.stdout, r.stdout)
    check("drill: no hooks to run" in r.stdout, r.stdout)

    # Fixed, plus 65 more: 64 run, the last two would not.
    write(os.path.join(d, "05-crlf"), b"#!/bin/sh\necho hi\n")
    for i in range(65):
        script(os.path.join(d, "h%03d" % i), "exit 0")
    r = run(["check", "-c", conf, "--hooks-dir", d, "--hooks-lib-dir", "none"])
    check(r.returncode == 2, "too many: check exit %d" % r.returncode)
    runs, skips = plan_of(r.stdout)
    check(len(runs) == 64 and runs[0].endswith("/05-crlf"), "runs %d %r" % (len(runs), runs[:2]))
    too_many = ["%s/h%03d: too many hooks" % (d, i) for i in (63, 64)]
    check(skips[:2] == too_many, "skips %r" % skips)
    for i in (63, 64):
        check("hooks: '%s/h%03d' would not run: too many hooks" % (d, i) in r.stderr, r.stderr)
    r = run(["check", "-c", conf, "--hooks-dir", d, "--hooks-lib-dir", "none", "--warn-only"])
    check(r.returncode == 0, "--warn-only: exit %d %s" % (r.returncode, r.stderr))
    r = run(["drill", "-c", conf, "--hooks-dir", d, "--hooks-lib-dir", "none", "--notice", "60"])
    check(r.returncode == 1, "too many: drill exit %d" % r.returncode)
    for line in too_many:
        check("skipped %s\n" % line in r.stdout, "drill lacks %r:\n%s" % (line, r.stdout))
    check("drill: 2 hook files would not run" in r.stdout, r.stdout)


def test_packaged_readme_is_passed_over_without_a_word(ctx):
    """The package's /etc/spot-agent.d/README drew a warning at every
    start: it is passed over, neither logged nor listed."""
    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                           "packaging", "spot-agent.d.README"), "rb") as f:
        write(os.path.join(ctx.hooks, "README"), f.read(), 0o644)
    recorder(ctx, os.path.join(ctx.hooks, "10-ok"))
    a = ctx.start_agent()
    a.wait_log(r"hooks: 1 to run")
    check(not a.log_has(r"README"), "README in the log: %s" % a.output())


def test_drill_sandbox_needs_systemd_and_the_unit(ctx):
    """drill --sandbox without systemd (or without the installed unit) says
    it cannot and exits 2; it runs nothing."""
    recorder(ctx, os.path.join(ctx.hooks, "10-ok"))
    if os.path.isdir("/run/systemd/system") and subprocess.run(
            ["systemctl", "cat", "spot-agent.service"], capture_output=True).returncode == 0:
        return   # the unit is installed here: make check-system drives that case
    r = run(["drill", "--sandbox", "-c", ctx.config_file(""), "--hooks-dir", ctx.hooks,
             "--hooks-lib-dir", "none"])
    check(r.returncode == 2, "exit %d: %s %s" % (r.returncode, r.stdout, r.stderr))
    if os.path.isdir("/run/systemd/system"):
        check("spot-agent.service is not installed" in r.stderr or "systemd-run" in r.stderr,
              "stderr %r" % r.stderr)
    else:
        check("drill --sandbox: systemd is not running here" in r.stderr, "stderr %r" % r.stderr)
    check(ctx.recorded() == [], "a hook ran: %r" % ctx.recorded())
    r = run(["check", "--sandbox", "-c", ctx.config_file("")])
    check(r.returncode == 2 and "option --sandbox: only valid with 'drill'" in r.stderr, r.stderr)
