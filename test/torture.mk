# test/torture.mk - kill -9 torture of the hook chain (test/torture.py).
# Included by the top Makefile; check-torture runs as part of `make check`
# through check-extra.
#
#   make torture                       the engine's exhaustive check at a greater
#                                      depth, then 500 rounds, a fresh seed (printed)
#   make torture TORTURE_ROUNDS=2000 TORTURE_SEED=7
#   make check-torture                 50 rounds, fixed seed (under 90 s)
# A failing round names its seed and round: test/torture.py --seed S --round R
# replays its plan.

TORTURE_ROUNDS ?= 500
TORTURE_JOBS   ?= 2
TORTURE_SEED   ?= $(shell date +%s)

.PHONY: torture check-torture

check-extra:: check-torture

torture: $(BIN) $(BUILD)/test/test-engine
	@SPOT_ENGINE_HOOKS=4 SPOT_ENGINE_EXTRA=1 SPOT_ENGINE_CRASHES=2 $(BUILD)/test/test-engine
	@SPOT_AGENT=$(BIN) $(PYTHON) test/torture.py --rounds $(TORTURE_ROUNDS) \
		--seed $(TORTURE_SEED) --jobs $(TORTURE_JOBS)

check-torture: $(BIN)
	@SPOT_AGENT=$(BIN) $(PYTHON) test/torture.py --rounds 50 --seed 1 --jobs $(TORTURE_JOBS)
