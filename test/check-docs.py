#!/usr/bin/python3
"""The option docs in step with the one option table (agent/config/options.c).

--help is generated from the table, and so is check's effective config
(the list of config keys). This compares them with the README's option
table, spot-agent(8)'s OPTIONS and spot-agent.conf(5)'s KEYS: option names,
arguments, defaults, ranges, choices, the "needs a restart" marks and the
two listen forms. It also holds the prose to what the agent does: the kill
timing (SIGTERM before a hook's timeout, SIGKILL at it) in the README,
hooks/README.md, the unit's comments and spot-agent-hooks(7); a script's
descriptor 3 staying open; the hooks' environment table of hooks/README.md
against spot-agent-hooks(7) and SPEC section 4; quoted messages; --help
naming no URL twice; and the README starting with what a new user needs
(install with apt, a first hook, drill, check). One line per mismatch,
then a summary; exit 1 on any.

usage: check-docs.py [--self-test] AGENT
  --self-test also breaks the docs in memory, one way at a time, and
  fails unless each break is caught."""

import os
import re
import subprocess
import sys
import tempfile

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(TOP, "README.md")
HOOKS_README = os.path.join(TOP, "hooks", "README.md")
UNIT = os.path.join(TOP, "packaging", "systemd", "spot-agent.service")
MAN8 = os.path.join(TOP, "man", "spot-agent.8")
MAN5 = os.path.join(TOP, "man", "spot-agent.conf.5")
MAN7 = os.path.join(TOP, "man", "spot-agent-hooks.7")
# The hooks' environment as SPEC section 4 has it, and the values of two
# variables every reader looks for.
HOOK_ENV = {"PATH", "LANG", "TZ", "SPOT_EVENT_ID", "SPOT_EVENT_TYPE", "SPOT_EVENT_STATUS",
            "SPOT_EVENT_SOURCE", "SPOT_NOT_BEFORE", "SPOT_DEADLINE", "SPOT_HOOK_TIMEOUT",
            "SPOT_PROVIDER", "SPOT_VM_NAME", "SPOT_DRILL", "SPOT_HOOK_PATH", "SPOT_PHASE",
            "SPOT_REPORT", "SPOT_RECOVER_REASON", "SPOT_DOWNTIME"}
HOOK_ENV_VALUES = {"SPOT_EVENT_TYPE": ["Shutdown"], "SPOT_EVENT_SOURCE": ["OS", "Drill"],
                   "SPOT_PHASE": ["evict", "recover"]}
# Messages the agent prints, as docs must not misquote them.
MISQUOTES = ["cannot execute: such file or directory"]
PACKAGED_CONF = os.path.join(TOP, "packaging", "spot-agent.conf")
HELP_COLUMN = 32


class Option:
    def __init__(self, name):
        self.name = name
        self.short = None
        self.metavar = None     # None for flags
        self.text = ""
        self.default = None
        self.range = None       # "MIN to MAX"
        self.choices = []
        self.restart = False
        self.drill = False


def last_parenthetical(text):
    """The parts of the "(...)" that ends text, split at "; "."""
    if not text.endswith(")"):
        return []
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        if text[i] == ")":
            depth += 1
        elif text[i] == "(":
            depth -= 1
            if depth == 0:
                return text[i + 1:-1].split("; ")
    return []


def parse_help(text):
    """Options of --help, in order."""
    opts = {}
    cur = None
    drill = False
    head = re.compile(r"^  (?:-(?P<short>\w), |    )--(?P<name>[a-z][a-z-]*)(?:, --no-[a-z-]+)?"
                      r"(?: (?P<meta>[^ ]+))?(?: {2,}(?P<text>.*))?$")
    for line in text.splitlines():
        if line == "Drill options:":
            drill = True
            continue
        if line == "":
            cur = None
            continue
        m = head.match(line)
        if m:
            cur = Option(m.group("name"))
            cur.short = m.group("short")
            cur.metavar = m.group("meta")
            cur.text = m.group("text") or ""
            cur.drill = drill and m.group("name") not in ("help", "version")
            opts[cur.name] = cur
        elif cur and line.startswith(" " * HELP_COLUMN):
            cur.text = (cur.text + " " + line.strip()).strip()
    for o in opts.values():
        for part in last_parenthetical(o.text):
            if re.fullmatch(r"\d+ to \d+", part):
                o.range = part
            elif re.match(r"(one|any) of: ", part):
                o.choices = part.split(": ", 1)[1].split(", ")
            elif part.startswith("default: "):
                o.default = part[len("default: "):]
            elif part == "needs a restart":
                o.restart = True
    return opts


def config_keys(agent):
    """The keys of check's effective config (set or not), in order."""
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run([agent, "check", "-c", "/dev/null", "--hooks-dir", d, "--hooks-lib-dir",
                            "none", "--state-dir", d, "--listen", "none"],
                           capture_output=True, text=True, timeout=60)
    keys = []
    for line in r.stdout.splitlines()[1:]:
        if line == "":
            break
        m = re.match(r"^(?:# )?([a-z][a-z-]*) = ", line)
        if m:
            keys.append(m.group(1))
    return keys


def parse_readme(text):
    """README's option table: name -> (metavar, default cell, whole row)."""
    rows = {}
    section = text.split("\n## Running it", 1)[-1].split("\n## ", 1)[0]
    for line in section.splitlines():
        if not line.startswith("| `-"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) != 3:
            rows["?" + line] = None
            continue
        opt = cells[0].replace("`", "").replace("\\|", "|")
        m = re.match(r"^(?:-\w, )?--([a-z][a-z-]*)(?:, --no-[a-z-]+)?(?: (\S+))?$", opt)
        if not m:
            rows["?" + opt] = None
            continue
        rows[m.group(1)] = (m.group(2), cells[1], line)
    return rows


def render_man(path, source=None):
    """The page as plain text, one line per paragraph."""
    r = subprocess.run(["mandoc", "-Tascii", "-O", "width=1000"], input=source if source is not None
                       else open(path).read(), capture_output=True, text=True, timeout=60)
    return re.sub(r".\x08", "", r.stdout)


def man_section(text, name):
    out, inside = [], False
    for line in text.splitlines():
        if re.fullmatch(r"[A-Z][A-Z ]*", line):
            inside = line == name
            continue
        if inside:
            out.append(line)
    return out


def man_items(lines, head_rx):
    """{key: (head argument, body)} of a tag list whose heads match head_rx
    (a regex with groups 'name' and 'arg', at the list's indent)."""
    items, cur = {}, None
    for line in lines:
        m = re.match(r"^ {5}(\S.*)$", line)
        if m:
            h = re.match(head_rx, m.group(1))
            cur = None
            if h:
                cur = h.group("name")
                items[cur] = [(h.group("arg") or "").strip(), ""]
            continue
        if cur and line.strip():
            items[cur][1] += " " + line.strip()
    return {k: (a, " ".join(b.split())) for k, (a, b) in items.items()}


def squash(s):
    return re.sub(r"\s+", "", s).lower()


def flat(text):
    return " ".join(text.split())


def unit_comments(text):
    return "\n".join(l[1:] for l in text.splitlines() if l.startswith("#"))


def kill_timing(page, text):
    """SIGTERM a grace before the hook's timeout, SIGKILL at it: said, and
    not the old 'SIGKILL 2 seconds later'."""
    t = flat(text)
    bad = []
    if re.search(r"SIGKILL,? (?:\d+ (?:s|seconds?)|a grace|the grace) later", t):
        bad.append("%s: says SIGKILL comes a grace after SIGTERM at the timeout; it comes at the "
                   "timeout, SIGTERM a grace before it" % page)
    if not (re.search(r"SIGTERM[^.;]*before (?:its|the|that) timeout", t) or
            re.search(r"before (?:its|the|that) timeout[^.;]*SIGTERM", t)):
        bad.append("%s: does not say that SIGTERM comes before the hook's timeout" % page)
    if not re.search(r"SIGKILL[^.;]*at (?:its|the) timeout", t):
        bad.append("%s: does not say that SIGKILL comes at the hook's timeout" % page)
    return bad


def env_table(text):
    """hooks/README.md's environment table: {variable: value cell}."""
    section = text.split("\n### Environment", 1)[-1].split("\n### ", 1)[0]
    out = {}
    for line in section.splitlines():
        m = re.match(r"^\| `([A-Z_]+)` \| (.*) \|$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def man7_env(source):
    """spot-agent-hooks(7)'s environment list: {variable: its text}."""
    out, cur = {}, None
    for line in source.splitlines():
        m = re.match(r"^\.It Ev (\w+)$", line)
        if m:
            cur = m.group(1)
            out[cur] = ""
        elif line.startswith(".It ") or line.startswith(".El"):
            cur = None
        elif cur:
            out[cur] += " " + re.sub(r"^\.\w+ ", "", line)
    return out


def compare_prose(help_text, readme, hooks_readme, man7_source, unit, man8_source):
    bad = []
    man7 = render_man(MAN7, man7_source)
    for page, text in (("README.md", readme), ("hooks/README.md", hooks_readme),
                       ("spot-agent.service's comments", unit_comments(unit)),
                       ("spot-agent-hooks(7)", man7)):
        bad += kill_timing(page, text)
    # As rendered: mdoc takes a capitalised word such as "No" for a macro.
    for page, text in (("README.md", readme), ("hooks/README.md", hooks_readme),
                       ("spot-agent-hooks(7)", man7), ("spot-agent(8)", render_man(MAN8, man8_source))):
        for q in MISQUOTES:
            if q in flat(text).lower():
                bad.append("%s: misquotes a message as '%s'" % (page, q))

    # A script's descriptor 3 (the checked file it runs as) stays open.
    if not re.search(r"stays open as descriptor 3|descriptor 3[^.]*stays open", flat(readme)):
        bad.append("README.md: does not say that a script's descriptor 3 stays open")
    for page, text in (("README.md", readme), ("hooks/README.md", hooks_readme)):
        if re.search(r"every file descriptor but 0, 1 and 2 closed", flat(text)):
            bad.append("%s: says every descriptor but 0, 1 and 2 is closed; a script keeps 3" % page)

    # The environment: hooks/README.md's table, spot-agent-hooks(7), SPEC.
    table, man = env_table(hooks_readme), man7_env(man7_source)
    for name in sorted(HOOK_ENV - set(table)):
        bad.append("hooks/README.md: the environment table lacks %s" % name)
    for name in sorted(HOOK_ENV - set(man)):
        bad.append("spot-agent-hooks(7): the environment lacks %s" % name)
    for name in sorted(set(table) ^ set(man)):
        bad.append("%s: %s is in one of hooks/README.md and spot-agent-hooks(7) only"
                   % ("hooks/README.md" if name in table else "spot-agent-hooks(7)", name))
    for name, values in HOOK_ENV_VALUES.items():
        for v in values:
            for page, cell in (("hooks/README.md", table.get(name, "")), ("spot-agent-hooks(7)",
                                                                          man.get(name, ""))):
                if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(v), cell):
                    bad.append("%s: %s does not name the value '%s'" % (page, name, v))

    # --help: one address is one address.
    m = re.search(r"^      --imds-url URL(.*?)(?=^      --|^  -|\Z)", help_text, re.M | re.S)
    urls = re.findall(r"https?://[^\s,;)]+", m.group(1)) if m else []
    for u in sorted(set(u for u in urls if urls.count(u) > 1)):
        bad.append("--help: --imds-url names %s more than once" % u)

    # The README opens with the two commands that work from a checkout.
    block = re.search(r"^```sh\n(.*?)^```", readme, re.M | re.S)
    cmds = [l.split("#")[0].strip() for l in block.group(1).splitlines()] if block else []
    if cmds[:2] != ["make demo", "make check"]:
        bad.append("README.md: the first commands are %r, not 'make demo' and 'make check'" % cmds[:2])
    # The README starts with what a new user needs, before the internals.
    heads = re.findall(r"^## (.*)$", readme, re.M)
    if not heads or heads[0] != "Install":
        bad.append("README.md: the first section is %r, not 'Install'" % (heads[0] if heads else None))
    if "apt install ./build/spot-agent_*.deb" not in readme or re.search(r"dpkg -i \S*build/", readme):
        bad.append("README.md: installs the .deb otherwise than with 'apt install ./build/spot-agent_*.deb' "
                   "(dpkg -i stops at the missing libraries on a fresh image)")
    first_internal = min([readme.find("\n## " + h) for h in ("How it works", "Running it")
                          if "\n## " + h in readme] or [len(readme)])
    head = readme[:first_internal]
    for want, what in (("/etc/spot-agent.d/", "a first hook"), (".env", "the hook's env file"),
                       ("spot-agent drill", "drill"), ("spot-agent check", "check")):
        if want not in head:
            bad.append("README.md: %s (%s) comes only after the internals" % (what, want))
    return bad


def compare(agent, readme_text=None, man8_text=None, man5_text=None, conf_text=None,
            hooks_readme_text=None, man7_text=None, unit_text=None):
    """Every mismatch, as lines."""
    bad = []
    r = subprocess.run([agent, "--help"], capture_output=True, text=True, timeout=60)
    help_text = r.stdout
    opts = parse_help(r.stdout)
    keys = config_keys(agent)
    if len(opts) < 10 or len(keys) < 10:
        return ["cannot read the options from '%s --help' and 'check'" % agent]
    for k in keys:
        if k not in opts:
            bad.append("--help: config key '%s' is not an option" % k)

    # README.md
    readme = parse_readme(readme_text if readme_text is not None else open(README).read())
    for name in readme:
        if name.startswith("?"):
            bad.append("README.md: cannot read option row %r" % name[1:])
        elif name not in opts:
            bad.append("README.md: --%s is not an option of --help" % name)
    for name, o in opts.items():
        if name not in readme:
            bad.append("README.md: option table lacks --%s" % name)
            continue
        meta, default, row = readme[name]
        if meta != o.metavar:
            bad.append("README.md: --%s takes %s, --help says %s" % (name, meta, o.metavar))
        if o.default is not None and "`%s`" % o.default not in default:
            bad.append("README.md: --%s default is %r, --help says '%s'" % (name, default, o.default))
        if o.range and o.range not in row:
            bad.append("README.md: --%s lacks its range '%s'" % (name, o.range))
        for c in o.choices:
            if not re.search(r"(?<![\w!+])%s(?!\w)" % re.escape(c), row):
                bad.append("README.md: --%s lacks the choice '%s'" % (name, c))
        if o.restart != ("needs a restart" in row):
            bad.append("README.md: --%s %s 'needs a restart'" % (name, "lacks" if o.restart else
                                                                   "wrongly says"))

    # spot-agent(8)
    man8 = man_items(man_section(render_man(MAN8, man8_text), "OPTIONS"),
                     r"^(?:-\w, )?-(?:-(?P<name>[a-z][a-z-]*))(?:, --no-[a-z-]+)?(?: (?P<arg>.*))?$")
    # spot-agent.conf(5)
    man5 = man_items(man_section(render_man(MAN5, man5_text), "KEYS"),
                     r"^(?P<name>[a-z][a-z-]*) = (?P<arg>.*)$")
    for page, items, names in (("spot-agent(8) OPTIONS", man8, list(opts)),
                               ("spot-agent.conf(5) KEYS", man5, keys)):
        for name in items:
            if name not in names:
                bad.append("%s: '%s' is not in --help" % (page, name))
        for name in names:
            o = opts.get(name)
            if o is None:
                continue
            if name not in items:
                bad.append("%s: lacks '%s'" % (page, name))
                continue
            arg, body = items[name]
            want = o.metavar if o.metavar else ("yes | no" if page.startswith("spot-agent.conf")
                                                and name != "help" and name != "version" else "")
            if squash(arg) != squash(want or ""):
                bad.append("%s: '%s' takes '%s', --help says '%s'" % (page, name, arg, want))
            if o.default is not None:
                d = body.find("Default:")
                if d < 0 or o.default not in body[d:]:
                    bad.append("%s: '%s' lacks 'Default: %s'" % (page, name, o.default))
            if o.range and o.range not in body:
                bad.append("%s: '%s' lacks its range '%s'" % (page, name, o.range))
            for c in o.choices:
                if not re.search(r"(?<![\w!+])%s(?!\w)" % re.escape(c), body):
                    bad.append("%s: '%s' lacks the choice '%s'" % (page, name, c))
            if page.startswith("spot-agent.conf") and o.restart != ("Needs a restart" in body):
                bad.append("%s: '%s' %s 'Needs a restart'" % (page, name, "lacks" if o.restart
                                                               else "wrongly says"))

    # The packaged config: every key, commented out, at its default.
    packaged = {}
    for line in (conf_text if conf_text is not None else open(PACKAGED_CONF).read()).splitlines():
        m = re.match(r"^#([a-z][a-z-]*) =(?: (.*))?$", line)
        if m:
            packaged[m.group(1)] = m.group(2) or ""
    if list(packaged) != keys:
        bad.append("packaging/spot-agent.conf: keys %s, the config has %s"
                   % (",".join(packaged), ",".join(keys)))
    for k, v in packaged.items():
        o = opts.get(k)
        if o and v != (o.default or ""):
            bad.append("packaging/spot-agent.conf: '%s = %s', the default is '%s'"
                       % (k, v, o.default or ""))

    # Both listen forms, wherever listen is described.
    if "listen" in opts:
        texts = [("--help", opts["listen"].metavar + " " + opts["listen"].text)]
        if "listen" in readme:
            texts.append(("README.md", readme["listen"][2]))
        for page, items in (("spot-agent(8)", man8), ("spot-agent.conf(5)", man5)):
            if "listen" in items:
                texts.append((page, " ".join(items["listen"])))
        for page, t in texts:
            s = squash(t)
            if "[ipv6]:port" not in s or not ("addr:port" in s or "ipv4:port" in s):
                bad.append("%s: listen does not show both ADDR:PORT and [IPV6]:PORT" % page)

    bad += compare_prose(help_text,
                         readme_text if readme_text is not None else open(README).read(),
                         hooks_readme_text if hooks_readme_text is not None else open(HOOKS_README).read(),
                         man7_text if man7_text is not None else open(MAN7).read(),
                         unit_text if unit_text is not None else open(UNIT).read(),
                         man8_text if man8_text is not None else open(MAN8).read())
    return bad


def self_test(agent):
    """Each way of breaking the docs must be caught."""
    readme = open(README).read()
    man8 = open(MAN8).read()
    man5 = open(MAN5).read()
    conf = open(PACKAGED_CONF).read()
    hooks_readme = open(HOOKS_README).read()
    man7 = open(MAN7).read()
    unit = open(UNIT).read()
    env_row = next(l for l in hooks_readme.splitlines() if l.startswith("| `SPOT_PHASE`"))
    source_row = next(l for l in hooks_readme.splitlines() if l.startswith("| `SPOT_EVENT_SOURCE`"))
    row = next(l for l in readme.splitlines() if l.startswith("| `--margin"))
    breaks = [
        ("a README row dropped", dict(readme_text=readme.replace(row + "\n", ""))),
        ("a README default changed", dict(readme_text=readme.replace(row, row.replace("`2`", "`3`")))),
        ("a README range changed", dict(readme_text=readme.replace(row, row.replace("0 to 600", "0 to 60")))),
        ("a README restart mark added", dict(readme_text=readme.replace(row, row[:-2] + "; needs a restart |"))),
        ("a man 8 option dropped", dict(man8_text=man8.replace(".It Fl -margin Ar seconds", ".It Fl -marg Ar seconds"))),
        ("a man 8 argument changed", dict(man8_text=man8.replace(".It Fl -margin Ar seconds", ".It Fl -margin Ar secs"))),
        ("a man 5 default changed", dict(man5_text=re.sub(r"(\.It Cm margin = Ar seconds\n(?:.*\n)*?Default: )2", r"\g<1>5", man5, count=1))),
        ("a man 5 restart mark dropped", dict(man5_text=man5.replace("Needs a restart.\n", "", 1))),
        ("a man 5 listen form dropped", dict(man5_text=man5.replace("ipv6", "ip6"))),
        ("a packaged default changed", dict(conf_text=conf.replace("#margin = 2\n", "#margin = 4\n"))),
        ("a packaged key dropped", dict(conf_text=conf.replace("#margin = 2\n", ""))),
        ("hooks/README.md's old kill timing", dict(hooks_readme_text=hooks_readme.replace(
            "SIGTERM 2 seconds before that timeout (at most a quarter of it) and\n  SIGKILL at the timeout",
            "SIGTERM at that timeout, and SIGKILL 2 seconds later"))),
        ("the unit's kill timing dropped", dict(unit_text=unit.replace("SIGKILL at its timeout", "SIGKILL"))),
        ("man 7's kill timing dropped", dict(man7_text=man7.replace("before its timeout gets", "gets"))),
        ("README's descriptor 3 dropped", dict(readme_text=readme.replace("stays open as\ndescriptor 3",
                                                                          "is\nopen"))),
        ("an environment row dropped", dict(hooks_readme_text=hooks_readme.replace(env_row + "\n", ""))),
        ("a man 7 variable dropped", dict(man7_text=man7.replace(".It Ev SPOT_DOWNTIME", ".It Ev SPOT_DOWN"))),
        ("the source Drill dropped", dict(hooks_readme_text=hooks_readme.replace(
            source_row, source_row.replace("`Drill` (a drill), ", "")))),
        ("a misquoted message", dict(readme_text=readme + "\ncannot execute: such file or directory\n")),
        ("a message misrendered by mdoc", dict(man8_text=man8.replace("execute: \\&No such", "execute: No such"))),
        ("dpkg -i in the README", dict(readme_text=readme.replace("apt install ./build/spot-agent_*.deb",
                                                                   "dpkg -i build/spot-agent_*.deb"))),
        ("the README opening with the internals", dict(readme_text=readme.replace(
            "## Install\n", "## How it works\n\n## Install\n", 1))),
        ("the README opening without make demo", dict(readme_text=readme.replace(
            "make demo     #", "make deb     #", 1))),
    ]
    failed = 0
    originals = dict(readme_text=readme, man8_text=man8, man5_text=man5, conf_text=conf,
                     hooks_readme_text=hooks_readme, man7_text=man7, unit_text=unit)
    for what, kw in breaks:
        if all(v == originals[k] for k, v in kw.items()):
            print("check-docs: self-test: cannot make %s (the docs changed shape)" % what)
            failed += 1
        elif not compare(agent, **kw):
            print("check-docs: self-test: %s is not caught" % what)
            failed += 1
    return failed


def main():
    args = sys.argv[1:]
    selftest = "--self-test" in args
    args = [a for a in args if a != "--self-test"]
    if len(args) != 1:
        print(__doc__.strip().splitlines()[-3])
        return 2
    agent = args[0]
    bad = compare(agent)
    for line in bad:
        print("check-docs: " + line)
    failed = len(bad)
    if selftest and not bad:
        failed += self_test(agent)
    if failed:
        print("check-docs: %d mismatch%s between --help, README.md, spot-agent(8), "
              "spot-agent.conf(5) and the packaged config" % (failed, "" if failed == 1 else "es"))
        return 1
    print("check-docs: --help, README.md, spot-agent(8), spot-agent.conf(5) and the packaged "
          "config agree on every option; the prose on kill timing, descriptor 3, the hooks' "
          "environment and the README's start holds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
