# test/fuzz.mk - the libFuzzer targets of test/fuzz (see test/fuzz/README.md).
# Included by the top Makefile; check-fuzz runs as part of `make check`
# through check-extra.
#
#   make fuzz-build                     build every target into $(BUILD)/fuzz
#   make check-fuzz                     every target from its seed corpus, all of
#                                       them together in FUZZ_CHECK_SECONDS
#   make fuzz                           every target FUZZ_SECONDS long, keeping
#                                       what it finds in $(BUILD)/fuzz/corpus-*
#   make fuzz FUZZ_TARGETS=state FUZZ_SECONDS=3600
#   make fuzz-crashers                  replays test/fuzz/crashers/<target>/*
#
# The agent's sources are compiled once more with clang, AddressSanitizer,
# UndefinedBehaviorSanitizer and libFuzzer's coverage instrumentation into
# their own archive; each target links what it needs from it.

FUZZ_CC            ?= $(shell command -v clang-14 2>/dev/null || echo clang)
FUZZ_TARGETS       ?= azure aws gcp time event-json config state http evidence
FUZZ_DIR           := $(BUILD)/fuzz
FUZZ_SECONDS       ?= 300
# make check: the wall-clock budget of the whole run (the build aside), shared by
# the targets, and a bound on each target's runs so a slow machine ends too.
FUZZ_CHECK_SECONDS ?= 50
FUZZ_CHECK_RUNS    ?= 500000
FUZZ_SAN           := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                      -fno-omit-frame-pointer
FUZZ_CFLAGS         = -std=c11 -g -O1 $(WARN) -MMD -MP $(FUZZ_SAN)
FUZZ_LIB_OBJS      := $(patsubst agent/%.c,$(FUZZ_DIR)/obj/%.o,$(filter-out agent/main.c,$(SRCS))) \
                      $(patsubst $(BUILD)/gen/%.c,$(FUZZ_DIR)/obj/gen/%.o,$(GEN_SRCS))
FUZZ_BINS           = $(patsubst %,$(FUZZ_DIR)/fuzz-%,$(FUZZ_TARGETS))

.PHONY: fuzz fuzz-build check-fuzz fuzz-crashers fuzz-toolchain

check-extra:: check-fuzz

# One clear line instead of a compiler error when the toolchain is missing
# (build-aux/install-deps fuzz installs it on Debian).
fuzz-toolchain: | $(DEPS_OK)
	@sh build-aux/install-deps fuzz
	@command -v $(FUZZ_CC) >/dev/null 2>&1 || \
		{ echo "fuzz: '$(FUZZ_CC)' not found: install clang-14 and libclang-rt-14-dev"; exit 1; }
	@lib=$$($(FUZZ_CC) -print-file-name=libclang_rt.fuzzer-x86_64.a 2>/dev/null); \
	case "$$lib" in /*) [ -f "$$lib" ] && exit 0 ;; esac; \
	lib=$$($(FUZZ_CC) -print-runtime-dir 2>/dev/null)/libclang_rt.fuzzer-x86_64.a; \
	[ -f "$$lib" ] || { echo "fuzz: $(FUZZ_CC) has no libFuzzer runtime: install libclang-rt-14-dev"; exit 1; }

$(FUZZ_DIR)/obj/%.o: agent/%.c | fuzz-toolchain $(GEN_HDRS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(SPOT_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_DIR)/obj/gen/%.o: $(BUILD)/gen/%.c | fuzz-toolchain
	@mkdir -p $(@D)
	$(FUZZ_CC) $(SPOT_CPPFLAGS) -std=c11 -g -O1 $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_DIR)/libspot-fuzz.a: $(FUZZ_LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(FUZZ_DIR)/fuzz-%: test/fuzz/fuzz-%.c $(FUZZ_DIR)/libspot-fuzz.a | fuzz-toolchain
	$(FUZZ_CC) $(SPOT_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< \
		$(FUZZ_DIR)/libspot-fuzz.a $(SPOT_LIBS)

fuzz-build: $(FUZZ_BINS)

check-fuzz: fuzz-build
	@FUZZ_DIR=$(FUZZ_DIR) sh test/fuzz/run.sh check $(FUZZ_CHECK_SECONDS) $(FUZZ_CHECK_RUNS) $(FUZZ_TARGETS)

fuzz: fuzz-build
	@FUZZ_DIR=$(FUZZ_DIR) sh test/fuzz/run.sh long $(FUZZ_SECONDS) 0 $(FUZZ_TARGETS)

fuzz-crashers: fuzz-build
	@FUZZ_DIR=$(FUZZ_DIR) sh test/fuzz/run.sh crashers 0 0 $(FUZZ_TARGETS)

-include $(FUZZ_LIB_OBJS:.o=.d) $(FUZZ_BINS:=.d)
