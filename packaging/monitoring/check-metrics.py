#!/usr/bin/env python3
"""Checks the monitoring files against the metrics spot-agent exposes.

Every spot_agent_* name used in the alerting rules and in the Grafana
dashboard must be one the agent exports (histograms with their _bucket,
_sum and _count series). With --promql-out FILE it also writes each
dashboard query, template variables replaced, as a recording rule to FILE,
so that `promtool check rules FILE` proves they parse.
usage: check-metrics.py RULES.yml DASHBOARD.json [--promql-out FILE]
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
}
HISTOGRAMS = {
    "spot_agent_imds_request_duration_seconds",
    "spot_agent_notice_seconds",
    "spot_agent_detection_to_first_hook_seconds",
    "spot_agent_hook_duration_seconds",
}
KNOWN = GAUGES_COUNTERS | {h + s for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")}
NAME = re.compile(r"\bspot_agent_[a-z0-9_]+")
# Grafana's variables, replaced by something PromQL accepts.
VARIABLES = [("$__rate_interval", "1m"), ("$__interval", "5m"), ("$__range", "1d"),
             ("$job", "spot-agent"), ("$instance", ".*")]


def dashboard_exprs(node):
    """Yields every "expr" string anywhere in the dashboard."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from dashboard_exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from dashboard_exprs(item)


def unknown_names(text):
    return sorted(set(NAME.findall(text)) - KNOWN)


def main(argv):
    if len(argv) not in (3, 5) or (len(argv) == 5 and argv[3] != "--promql-out"):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    rules_path, dash_path = argv[1], argv[2]
    bad = 0
    with open(rules_path, encoding="utf-8") as f:
        for name in unknown_names(f.read()):
            print(f"{rules_path}: unknown metric {name}", file=sys.stderr)
            bad += 1
    with open(dash_path, encoding="utf-8") as f:
        exprs = list(dashboard_exprs(json.load(f)))
    for expr in exprs:
        for name in unknown_names(expr):
            print(f"{dash_path}: unknown metric {name} in: {expr}", file=sys.stderr)
            bad += 1
    if not exprs:
        print(f"{dash_path}: no queries found", file=sys.stderr)
        bad += 1
    if len(argv) == 5:
        with open(argv[4], "w", encoding="utf-8") as out:
            out.write("groups:\n  - name: dashboard\n    rules:\n")
            for i, expr in enumerate(exprs):
                for var, value in VARIABLES:
                    expr = expr.replace(var, value)
                out.write(f"      - record: dashboard_query_{i}\n        expr: {json.dumps(expr)}\n")
    if bad:
        return 1
    print(f"metrics: {len(exprs)} dashboard queries and the rules use only exported metrics")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
