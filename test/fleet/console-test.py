#!/usr/bin/python3
"""The console page rendered for real, by Prometheus and by a browser.

Starts Debian's prometheus on loopback with a temporary TSDB, the remote-write
receiver on and --web.console.templates=packaging/monitoring/consoles (the
standard console libraries beside it when Debian ships them: the page needs
none), pushes the records of fleetlib.FLEET by remote-write, loads
/consoles/spot-fleet.html in headless Chromium and checks the numbers in the
DOM it rendered: the totals, the per-region counts, the last evictions in
order with their notice, first hook, hooks, lost work and recovery. The
DOM and a screenshot go to the output directory.

Run by `make check-fleet-console` (part of `make check-system`). Needs
python3, prometheus and chromium; without chromium it fails, unless
SPOT_SKIP_SYSTEM=1, then it says "skipped". SPOT_TEST_KEEP=1 keeps
Prometheus' directory.
usage: console-test.py [--out DIR]   (default build/fleet)"""

import html.parser
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fleetlib as F  # noqa: E402

PAGE = "/consoles/spot-fleet.html"
# Where Debian (and upstream tarballs) put the standard console libraries.
LIBRARIES = ["/usr/share/prometheus/console_libraries",
             "/usr/share/doc/prometheus/examples/console_libraries",
             "/etc/prometheus/console_libraries"]
# Network is closed and no one is at the screen: these flags keep Chromium
# from waiting on either.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-proxy-server", "--hide-scrollbars", "--window-size=1600,1250"]

TOTALS = {
    "evictions-1d": "8", "evictions-7d": "9", "vms-1d": "8", "vms-7d": "9",
    # 120 + 900 + 1800 + 60 + 600 + 0 + 300 + 240 = 4020 s; with GCP's 3600 s
    "lost-work-1d": "1h 7m 0s", "lost-work-7d": "2h 7m 0s",
    # notices 12, 20, 26, 28, 30, 30, 120, 600: the median 29 s
    "notice-p50-1d": "29s", "notice-p50-7d": "30s",
    # first hooks 0.5 (x6), 1, 1.5: p95 1.325 s
    "first-hook-p95-1d": "1.325s",
    "hooks-failed-1d": "3", "overruns-1d": "1",
    "recovered-1d": "2", "recovered-7d": "3", "not-back-1d": "1",
}
# region -> 1 h, 24 h, 7 d, lost work 7 d
REGIONS = {
    "westeurope": ["5", "6", "6", "58m 0s"],
    "eu-west-1": ["0", "1", "1", "4m 0s"],
    "northeurope": ["0", "1", "1", "5m 0s"],
    "europe-west1": ["0", "0", "1", "1h 0m 0s"],
}
ORDER = ["batch-we-004", "batch-we-003", "batch-we-002", "batch-we-001", "batch-we-005",
         "batch-we-010", "i-0abc1234def567890", "render-ne-007", "spot-gcp-42"]
# instance -> the cells of its row, by class
ROWS = {
    "batch-we-003": {"notice": "12s", "first-hook": "1.5s", "hooks": "1 failed, deadline overrun by 3s",
                     "lost-work": "30m 0s", "recovered": "not yet"},
    "batch-we-004": {"notice": "30s", "first-hook": "500ms", "hooks": "all ok", "lost-work": "1m 0s",
                     "recovered": "not yet"},
    "batch-we-010": {"recovered": "yes: cancelled after 2m 0s", "lost-work": "0s"},
    "i-0abc1234def567890": {"notice": "2m 0s", "first-hook": "1s", "recovered": "yes: boot after 40m 0s"},
    "render-ne-007": {"notice": "10m 0s", "recovered": "no"},
    "spot-gcp-42": {"lost-work": "1h 0m 0s", "recovered": "yes: boot after 2h 0m 0s"},
}


class Dom(html.parser.HTMLParser):
    """The text of every element with an id; the rows of the two tables."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []          # [(tag, id, class)]
        self.by_id = {}
        self.regions = {}        # region -> [cell texts]
        self.evictions = []      # [(instance, row class, {cell class: text})]
        self.title = ""
        self._row = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("br", "meta", "link", "img", "input"):
            return
        self.stack.append((tag, a.get("id"), a.get("class") or ""))
        if a.get("id"):
            self.by_id[a["id"]] = ""
        if tag == "tr" and a.get("data-region"):
            self._row = ("region", a["data-region"])
            self.regions[a["data-region"]] = []
        elif tag == "tr" and a.get("data-instance"):
            self._row = ("eviction", a["data-instance"])
            self.evictions.append((a["data-instance"], a.get("class") or "", {}))
        if tag == "td" and self._row:
            self._cell = a.get("class") or ""
            if self._row[0] == "region":
                self.regions[self._row[1]].append("")

    def handle_endtag(self, tag):
        while self.stack:
            t, _, _ = self.stack.pop()
            if t == tag:
                break
        if tag == "tr":
            self._row = None
        if tag == "td":
            self._cell = None

    def handle_data(self, data):
        for _, ident, _ in self.stack:
            if ident:
                self.by_id[ident] += data
        if any(t == "title" for t, _, _ in self.stack):
            self.title += data
        if self._row and self._cell is not None:
            if self._row[0] == "region":
                self.regions[self._row[1]][-1] += data
            else:
                cells = self.evictions[-1][2]
                for cls in self._cell.split():
                    cells[cls] = cells.get(cls, "") + data


def norm(s):
    return " ".join(s.replace(" ,", ",").replace(" :", ":").split())


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return struct.unpack(">II", head[16:24])


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def main(argv):
    out = "build/fleet"
    if len(argv) == 3 and argv[1] == "--out":
        out = argv[2]
    elif len(argv) != 1:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    chromium = find_chromium()
    if not chromium:
        if os.environ.get("SPOT_SKIP_SYSTEM") == "1":
            print("skipped: chromium is not installed")
            return 0
        print("FAIL chromium is not installed (Debian: apt-get install chromium); "
              "set SPOT_SKIP_SYSTEM=1 to skip this test")
        return 1
    os.makedirs(out, exist_ok=True)
    dom_path = os.path.join(out, "spot-fleet-console.html")
    shot_path = os.path.join(out, "spot-fleet-console.png")
    for p in (dom_path, shot_path):
        if os.path.exists(p):
            os.unlink(p)

    t0 = time.monotonic()
    passed = failed = 0

    def ok(msg):
        nonlocal passed
        passed += 1
        print("ok   " + msg)

    def bad(msg):
        nonlocal failed
        failed += 1
        print("FAIL " + msg)

    libraries = next((d for d in LIBRARIES if os.path.isfile(os.path.join(d, "prom.lib"))), None)
    with F.Prometheus(consoles=F.CONSOLES, libraries=libraries) as prom:
        series = F.fleet_series(time.time())
        prom.push(series)
        ok("prometheus on %s (console libraries: %s); %d series pushed by remote write"
           % (prom.url, libraries or "none", len(series)))
        try:
            body = prom.get(PAGE).decode()
        except urllib.error.HTTPError as e:
            bad("GET %s: HTTP %d: %s" % (PAGE, e.code, e.read().decode(errors="replace")[:2000]))
            return 1
        ok("GET %s: 200, %d bytes rendered by Prometheus' templates" % (PAGE, len(body)))

        with tempfile.TemporaryDirectory(prefix="spot-fleet-chromium.") as profile:
            cmd = [chromium] + CHROMIUM_FLAGS + ["--user-data-dir=" + profile]
            t = time.monotonic()
            try:
                r = subprocess.run(cmd + ["--dump-dom", prom.url + PAGE], capture_output=True, text=True,
                                   timeout=F.TIMEOUT * 4)
            except subprocess.TimeoutExpired:
                bad("chromium --dump-dom did not end in %ds" % (F.TIMEOUT * 4))
                return 1
            if r.returncode != 0 or "<html" not in r.stdout:
                bad("chromium --dump-dom: exit %d: %s" % (r.returncode, r.stderr[-2000:]))
                return 1
            with open(dom_path, "w", encoding="utf-8") as f:
                f.write(r.stdout)
            ok("chromium --dump-dom in %.1fs: %s" % (time.monotonic() - t, dom_path))
            t = time.monotonic()
            try:
                r = subprocess.run(cmd + ["--screenshot=" + os.path.abspath(shot_path), prom.url + PAGE],
                                   capture_output=True, text=True, timeout=F.TIMEOUT * 4)
            except subprocess.TimeoutExpired:
                r = None
            size = png_size(shot_path) if os.path.exists(shot_path) else None
            if r is None or r.returncode != 0 or not size:
                bad("chromium --screenshot: %s" % (r.stderr[-2000:] if r else "timed out"))
            else:
                ok("chromium --screenshot in %.1fs: %s (%dx%d)" % (time.monotonic() - t, shot_path, *size))

    dom = Dom()
    with open(dom_path, encoding="utf-8") as f:
        dom.feed(f.read())
    if "Spot fleet evictions" in dom.title:
        ok("title: %s" % norm(dom.title))
    else:
        bad("title: %r (not the console page)" % dom.title)

    for ident, want in TOTALS.items():
        got = norm(dom.by_id.get(ident, "<missing>"))
        if got == want:
            ok("totals %s: %s" % (ident, got))
        else:
            bad("totals %s: %r, want %r" % (ident, got, want))

    for region, want in REGIONS.items():
        cells = [norm(c) for c in dom.regions.get(region, [])]
        if cells[3:] == want:
            ok("region %s: 1 h %s, 24 h %s, 7 d %s, lost work %s" % (region, *want))
        else:
            bad("region %s: %r, want %r" % (region, cells[3:], want))
    # sort_desc: the busiest first (the order of equal counts is not defined).
    if list(dom.regions)[:1] == ["westeurope"]:
        ok("regions by 7 d count, most first: %s" % ", ".join(dom.regions))
    else:
        bad("regions out of order: %s" % list(dom.regions))

    order = [inst for inst, _, _ in dom.evictions]
    if order == ORDER:
        ok("last evictions, newest first: %s" % ", ".join(order))
    else:
        bad("last evictions: %s, want %s" % (order, ORDER))
    rows = {inst: (cls, cells) for inst, cls, cells in dom.evictions}
    for inst, want in ROWS.items():
        cls, cells = rows.get(inst, ("", {}))
        problems = ["%s %r, want %r" % (k, norm(cells.get(k, "<missing>")), v)
                    for k, v in want.items() if norm(cells.get(k, "<missing>")) != v]
        if problems:
            bad("row %s: %s" % (inst, "; ".join(problems)))
        else:
            ok("row %s: %s" % (inst, ", ".join("%s %s" % kv for kv in want.items())))
    if "warn" in rows.get("render-ne-007", ("", {}))[0].split() and \
            not any("warn" in rows[i][0].split() for i in rows if i != "render-ne-007"):
        ok("only render-ne-007 (not back after 8 h) is marked")
    else:
        bad("warn marks: %s" % {i: rows[i][0] for i in rows})

    print("check-fleet-console: %d passed, %d failed in %.1fs; screenshot %s"
          % (passed, failed, time.monotonic() - t0, shot_path))
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except F.TestFailure as e:
        print("FAIL %s" % e)
        sys.exit(1)
