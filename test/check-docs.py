#!/usr/bin/python3
"""The option docs in step with the one option table (agent/config/options.c).

--help is generated from the table, and so is check's effective config
(the list of config keys). This compares them with the README's option
table, spot-agent(8)'s OPTIONS and spot-agent.conf(5)'s KEYS: option names,
arguments, defaults, ranges, choices, the "needs a restart" marks and the
two listen forms. One line per mismatch, then a summary; exit 1 on any.

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
MAN8 = os.path.join(TOP, "man", "spot-agent.8")
MAN5 = os.path.join(TOP, "man", "spot-agent.conf.5")
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


def compare(agent, readme_text=None, man8_text=None, man5_text=None, conf_text=None):
    """Every mismatch, as lines."""
    bad = []
    r = subprocess.run([agent, "--help"], capture_output=True, text=True, timeout=60)
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
    return bad


def self_test(agent):
    """Each way of breaking the docs must be caught."""
    readme = open(README).read()
    man8 = open(MAN8).read()
    man5 = open(MAN5).read()
    conf = open(PACKAGED_CONF).read()
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
    ]
    failed = 0
    originals = dict(readme_text=readme, man8_text=man8, man5_text=man5, conf_text=conf)
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
          "config agree on every option")
    return 0


if __name__ == "__main__":
    sys.exit(main())
