# test/docs.mk - the option docs against the option table (test/check-docs.py).
# Included by the top Makefile; check-docs runs as part of `make check`
# through check-extra. It compares --help with the README's option table,
# spot-agent(8)'s OPTIONS and spot-agent.conf(5)'s KEYS, and holds the prose
# (kill timing, descriptor 3, the hooks' environment, the README's start)
# to what the agent does, then breaks the docs in memory to show that each
# kind of drift is caught.

.PHONY: check-docs

check-extra:: check-docs

check-docs: $(BIN)
	@$(PYTHON) test/check-docs.py --self-test $(BIN)
