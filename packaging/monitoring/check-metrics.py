#!/usr/bin/env python3
"""Checks the monitoring files against the series they may use.

- Every spot_agent_* name in the rules, the dashboard and the console page
  is one the agent's /metrics exports (histograms by family name or with
  their _bucket, _sum and _count series).
- Every spot_eviction_* name is one of the eviction record's series the
  agents push by remote-write.
- Every recording-rule name (level:metric:operations) they use is recorded
  by one of the rule files.
- Every recording rule and every alert of the rule files is exercised by a
  unit test file (its name in an expr, or as an alertname).
With --promql-out FILE it also writes each dashboard query, template
variables replaced, as a recording rule to FILE, so that
`promtool check rules FILE` proves they parse.

The files are told apart by their names: *.rules.yml are rules,
*.test.yml unit tests, *.json the dashboard, *.html console pages.
usage: check-metrics.py [--promql-out FILE] FILE...
"""
import json
import re
import sys

GAUGES_COUNTERS = {
    "spot_agent_build_info",
    "spot_agent_start_time_seconds",
    "spot_agent_imds_requests_total",
    "spot_agent_imds_up",
    "spot_agent_imds_consecutive_failures",
    "spot_agent_imds_last_success_timestamp_seconds",
    "spot_agent_events_total",
    "spot_agent_eviction_pending",
    "spot_agent_eviction_deadline_timestamp_seconds",
    "spot_agent_hook_runs_total",
    "spot_agent_chain_overruns_total",
    "spot_agent_approvals_total",
    "spot_agent_rebalance_recommended",
}
HISTOGRAMS = {
    "spot_agent_imds_request_duration_seconds",
    "spot_agent_notice_seconds",
    "spot_agent_detection_to_first_hook_seconds",
    "spot_agent_hook_duration_seconds",
}
KNOWN = GAUGES_COUNTERS | HISTOGRAMS | {h + s for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")}
# The eviction record, pushed by remote-write: one point per eviction.
RECORD = {
    "spot_eviction_detected",
    "spot_eviction_notice_seconds",
    "spot_eviction_first_hook_seconds",
    "spot_eviction_hook_duration_seconds",
    "spot_eviction_chain_seconds",
    "spot_eviction_chain_overrun_seconds",
    "spot_eviction_hooks_failed",
    "spot_eviction_lost_work_seconds",
    "spot_eviction_checkpoint_bytes",
    "spot_eviction_jobs_requeued",
    "spot_eviction_approval_seconds",
    "spot_eviction_recovered",
    "spot_eviction_time_to_recover_seconds",
}
# (Not the metric part of a recording rule's name: hook:spot_eviction_hook_runs:count1d.)
NAME = re.compile(r"(?<![\w:])spot_agent_[a-z0-9_]+")
RECORD_NAME = re.compile(r"(?<![\w:])spot_eviction_[a-z0-9_]+")
# level:metric:operations; not a subquery's [1d:1m] nor a time of day.
RULE_NAME = re.compile(r"(?<![\w:\[])[a-z_][a-z0-9_]*:[a-z_][a-z0-9_]*:[a-z0-9_]+\b")
RECORD_LINE = re.compile(r"^\s*- record:\s*(\S+)\s*$", re.M)
ALERT_LINE = re.compile(r"^\s*- alert:\s*(\S+)\s*$", re.M)
# Grafana's variables, replaced by something PromQL accepts.
VARIABLES = [("$__rate_interval", "1m"), ("$__interval", "5m"), ("$__range", "1d"),
             ("$job", "spot-agent"), ("$instance", ".*"), ("$region", ".*"), ("$vm_size", ".*")]


def dashboard_exprs(node):
    """Yields every "expr" string (and every variable's query) anywhere in the dashboard."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from dashboard_exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from dashboard_exprs(item)


def variable_queries(dash):
    for var in dash.get("templating", {}).get("list", []):
        q = var.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        if var.get("type") == "query" and isinstance(q, str):
            yield q


def main(argv):
    args = argv[1:]
    out = None
    if len(args) >= 2 and args[0] == "--promql-out":
        out, args = args[1], args[2:]
    if not args or any(a.startswith("-") for a in args):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    rules = [a for a in args if a.endswith(".rules.yml")]
    tests = [a for a in args if a.endswith(".test.yml")]
    dashes = [a for a in args if a.endswith(".json")]
    pages = [a for a in args if a.endswith(".html")]
    other = set(args) - set(rules) - set(tests) - set(dashes) - set(pages)
    if other:
        print("check-metrics: unknown kind of file: %s" % " ".join(sorted(other)), file=sys.stderr)
        return 2
    texts = {}
    for path in args:
        with open(path, encoding="utf-8") as f:
            texts[path] = f.read()

    bad = 0

    def complain(msg):
        nonlocal bad
        print(msg, file=sys.stderr)
        bad += 1

    recorded, alerts = {}, {}
    for path in rules:
        for name in RECORD_LINE.findall(texts[path]):
            recorded[name] = path
        for name in ALERT_LINE.findall(texts[path]):
            alerts[name] = path

    exprs = []
    for path in dashes:
        dash = json.loads(texts[path])
        found = list(dashboard_exprs(dash))
        if not found:
            complain(f"{path}: no queries found")
        exprs += found
        # Variable queries name series too (label_values(series, label)).
        texts[path] = "\n".join(found + list(variable_queries(dash)))

    for path in rules + dashes + pages:
        text = texts[path]
        for name in sorted(set(NAME.findall(text)) - KNOWN):
            complain(f"{path}: unknown metric {name} (not in the agent's /metrics)")
        for name in sorted(set(RECORD_NAME.findall(text)) - RECORD):
            complain(f"{path}: unknown series {name} (not in the eviction record)")
        for name in sorted(set(RULE_NAME.findall(text)) - set(recorded) - {"level:metric:operations"}):
            complain(f"{path}: {name} is not recorded by any rule file")

    if tests:
        tested = "\n".join(texts[t] for t in tests)
        for name, path in sorted(recorded.items()):
            if not re.search(r"expr:.*\b%s\b" % re.escape(name), tested):
                complain(f"{path}: recording rule {name} has no unit test (no expr names it)")
        for name, path in sorted(alerts.items()):
            if not re.search(r"alertname: %s\s*$" % re.escape(name), tested, re.M):
                complain(f"{path}: alert {name} has no unit test (no alertname names it)")

    if out:
        with open(out, "w", encoding="utf-8") as f:
            f.write("groups:\n  - name: dashboard\n    rules:\n")
            for i, expr in enumerate(exprs):
                for var, value in VARIABLES:
                    expr = expr.replace(var, value)
                f.write(f"      - record: dashboard_query_{i}\n        expr: {json.dumps(expr)}\n")
    if bad:
        return 1
    print(f"check-metrics: {len(recorded)} recording rules and {len(alerts)} alerts, each tested; "
          f"{len(exprs)} dashboard queries and {len(pages)} console page(s) use only known series")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
