#!/usr/bin/python3
"""Seals state files: puts the FNV-1a sum of each file's body in its "sum",
as the agent writes it, so a case can be made by editing a file's body.

usage: seal.py FILE...

A file is {"version":V,"seq":N,"sum":"<16 hex>","body":BODY} with BODY
running to the last byte but one (the closing brace). Files whose frame
this does not find are left alone (say so), as are the cases that are
about a wrong sum: do not seal bad-sum-*.json and bad-torn-*.json."""

import re
import sys

FRAME = re.compile(rb'^(\{"version":[^,]*,"seq":[^,]*,"sum":")([0-9a-f]{16})(","body":)')


def fnv1a(data):
    h = 14695981039346656037
    for b in data:
        h ^= b
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def seal(path):
    with open(path, "rb") as f:
        text = f.read()
    m = FRAME.match(text)
    if not m or not text.endswith(b"}"):
        print("seal: %s: no state file frame, left alone" % path, file=sys.stderr)
        return False
    body = text[m.end():-1]
    sealed = m.group(1) + b"%016x" % fnv1a(body) + m.group(3) + body + b"}"
    if sealed != text:
        with open(path, "wb") as f:
            f.write(sealed)
    return True


def main():
    if len(sys.argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    ok = all([seal(p) for p in sys.argv[1:]])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
