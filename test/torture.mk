# test/torture.mk - kill -9 torture of the hook chain (test/torture.py):
# Azure Preempts, AWS spot notices (some with an Auto Scaling lifecycle
# hook to complete) and GCP preemptions, each round's cloud picked by its
# plan. Included by the top Makefile; check-torture runs as part of
# `make check` through check-extra.
#
#   make torture                       the engine's exhaustive check at a greater
#                                      depth (chains of up to 2 hooks), then 500
#                                      rounds, a fresh seed (printed)
#   make torture TORTURE_ROUNDS=2000 TORTURE_SEED=7
#   make check-torture                 50 rounds, fixed seed, every cloud (under 90 s
#                                      on 2 cores)
# A failing round names its seed and round: test/torture.py --seed S --round R
# replays its plan (--cloud aws runs only a seed's AWS rounds).

TORTURE_ROUNDS ?= 500
TORTURE_JOBS   ?= 2
TORTURE_SEED   ?= $(shell date +%s)
# The exhaustive check's depth (on 2 cores): chains of up to 2 hooks take
# some 3.5 min and 3.3 GB; with one input more each (EXTRA=1) 11.5 min and
# 7.6 GB; chains of 3 with it ran out of 24 GB after 15 min.
TORTURE_ENGINE_HOOKS ?= 2
TORTURE_ENGINE_EXTRA ?= 0

.PHONY: torture check-torture

check-extra:: check-torture

torture: $(BIN) $(BUILD)/test/test-engine
	@SPOT_ENGINE_HOOKS=$(TORTURE_ENGINE_HOOKS) SPOT_ENGINE_EXTRA=$(TORTURE_ENGINE_EXTRA) \
		$(BUILD)/test/test-engine
	@SPOT_AGENT=$(BIN) $(PYTHON) test/torture.py --rounds $(TORTURE_ROUNDS) \
		--seed $(TORTURE_SEED) --jobs $(TORTURE_JOBS)

check-torture: $(BIN)
	@SPOT_AGENT=$(BIN) $(PYTHON) test/torture.py --rounds 50 --seed 1 --jobs $(TORTURE_JOBS)
