# packaging/monitoring.mk - checks of the example hooks (hooks/) and of the
# fleet monitoring files (packaging/monitoring/). Included by the top Makefile;
# check-hooks, check-monitoring and check-fleet-rules run as part of
# `make check` through check-extra, check-fleet-console as part of
# `make check-system`.

MON_DIR    := packaging/monitoring
MON_RULES  := $(MON_DIR)/spot-agent.rules.yml $(MON_DIR)/spot-fleet.rules.yml
MON_TESTS  := $(MON_DIR)/spot-agent.rules.test.yml $(MON_DIR)/spot-fleet.rules.test.yml \
              $(MON_DIR)/spot-fleet-7d.rules.test.yml
MON_DASH   := $(MON_DIR)/grafana-dashboard.json
MON_SCRAPE := $(MON_DIR)/prometheus-scrape.yml
MON_PAGES  := $(wildcard $(MON_DIR)/consoles/*.html)
PROMTOOL   ?= promtool

.PHONY: check-monitoring check-hooks check-fleet-rules check-fleet-console

check-extra:: check-monitoring check-hooks check-fleet-rules

# The example hooks against stub commands; shellcheck when it is installed.
check-hooks:
	@if command -v shellcheck >/dev/null 2>&1; then \
		shellcheck hooks/[0-9][0-9]-* test/hooks/run.sh && shellcheck -s sh hooks/*.env && \
		echo "check-hooks: shellcheck clean"; \
	else echo "check-hooks: shellcheck not installed, skipped"; fi
	@sh test/hooks/run.sh

# Rules: syntax and unit tests (promtool). Dashboard: valid JSON, every query
# parses. Rules, dashboard and console pages: only series the agent exports
# or pushes and recording rules that exist; every rule and alert has a unit
# test. Scrape example: a valid Prometheus configuration.
check-monitoring:
	@command -v $(PROMTOOL) >/dev/null 2>&1 || { \
		echo "check-monitoring: $(PROMTOOL) not found (Debian: apt-get install prometheus)" >&2; exit 1; }
	@$(PROMTOOL) check rules $(MON_RULES)
	@cd $(MON_DIR) && $(PROMTOOL) test rules $(notdir $(MON_TESTS))
	@$(PROMTOOL) check config --syntax-only $(MON_SCRAPE)
	@$(PYTHON) -m json.tool $(MON_DASH) >/dev/null && echo "check-monitoring: $(MON_DASH) is valid JSON"
	@tmp=$$(mktemp) && \
		$(PYTHON) $(MON_DIR)/check-metrics.py --promql-out $$tmp $(MON_RULES) $(MON_TESTS) $(MON_DASH) $(MON_PAGES) && \
		$(PROMTOOL) check rules $$tmp >/dev/null && \
		echo "check-monitoring: every dashboard query parses"; \
		rc=$$?; rm -f $$tmp; exit $$rc

# The fleet rules in a real Prometheus (loopback, temporary TSDB) holding
# eviction records pushed by remote-write: every recording rule's value and
# every alert's state (a few seconds).
check-fleet-rules:
	@command -v prometheus >/dev/null 2>&1 || { \
		echo "check-fleet-rules: prometheus not found (Debian: apt-get install prometheus)" >&2; exit 1; }
	@$(PYTHON) test/fleet/rules-test.py

# The console page served by that Prometheus, rendered by headless Chromium:
# the numbers in its DOM; the DOM and a screenshot go to $(BUILD)/fleet/.
# Installs chromium when missing (root); SPOT_SKIP_SYSTEM=1 skips the test
# where it cannot run.
check-fleet-console:
	@sh build-aux/install-deps fleet || [ "$${SPOT_SKIP_SYSTEM:-0}" = 1 ]
	@$(PYTHON) test/fleet/console-test.py --out $(BUILD)/fleet

check-system: check-fleet-console
