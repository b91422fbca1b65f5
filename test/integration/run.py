#!/usr/bin/python3
"""Runs every integration test (test_*.py in this directory, functions
named test_*), each in its own context, and prints a summary line
'N passed, N failed'. Logs are kept only for failures.

usage: run.py [-k SUBSTRING] [-j JOBS]"""

import argparse
import concurrent.futures
import importlib.util
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def discover(pattern):
    here = os.path.dirname(os.path.abspath(__file__))
    tests = []
    for fn in sorted(os.listdir(here)):
        if not (fn.startswith("test_") and fn.endswith(".py")):
            continue
        spec = importlib.util.spec_from_file_location(fn[:-3], os.path.join(here, fn))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        for name in sorted(vars(mod)):
            if name.startswith("test_") and callable(getattr(mod, name)):
                full = "%s.%s" % (fn[:-3], name)
                if not pattern or pattern in full:
                    tests.append((full, getattr(mod, name)))
    return tests


def run_one(full, fn):
    ctx = harness.Context(full.split(".")[-1][5:40])
    t0 = time.monotonic()
    ok, detail = True, ""
    try:
        fn(ctx)
    except Exception:
        ok = False
        detail = traceback.format_exc()
    keep = not ok
    if not ok:
        detail += "\n" + ctx.logs() + "\n(kept in %s and %s)" % (ctx.dir, ctx.hook_dir)
    try:
        ctx.cleanup(keep)
    except Exception:
        pass
    return full, ok, time.monotonic() - t0, detail


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", default="")
    ap.add_argument("-j", type=int, default=int(os.environ.get("SPOT_TEST_JOBS", "2")))
    args = ap.parse_args()
    if not os.access(harness.AGENT, os.X_OK):
        print("integration: agent binary '%s' not found" % harness.AGENT)
        return 1
    tests = discover(args.k)
    passed = failed = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.j)) as ex:
        for full, ok, secs, detail in ex.map(lambda t: run_one(*t), tests):
            print("%s %s (%.1f s)" % ("ok  " if ok else "FAIL", full, secs), flush=True)
            if ok:
                passed += 1
            else:
                failed += 1
                print(detail, flush=True)
    print("integration: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
