# spot-agent - GNU make. Objects go to $(BUILD); a packager's CFLAGS/LDFLAGS add
# to the project's flags. `make check` runs every test.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/spot-agent
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
LIBHOOKDIR ?= $(PREFIX)/lib/spot-agent.d

VERSION    := 0.1.0
BUILD      ?= build
BIN        ?= agent/spot-agent
CC         ?= cc
PKG_CONFIG ?= pkg-config
PYTHON     ?= /usr/bin/python3

PKGS := libsystemd libcurl libcjson libmicrohttpd expat libprotobuf-c snappy
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
        -Wno-unused-parameter
ifeq ($(WERROR),1)
WARN += -Werror
endif
ifeq ($(SAN),1)
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif

# Deferred (=) so pkg-config runs after the dependency check has installed it.
SPOT_CPPFLAGS = -D_GNU_SOURCE -DSPOT_VERSION='"$(VERSION)"' -iquote agent -iquote $(BUILD)/gen \
                $(shell $(PKG_CONFIG) --cflags $(PKGS))
SPOT_CFLAGS   = -std=c11 -O2 -g $(WARN) $(SANFLAGS) -MMD -MP
SPOT_LIBS     = $(shell $(PKG_CONFIG) --libs $(PKGS))
TEST_LIBS     = $(shell $(PKG_CONFIG) --libs cmocka)

# agent/ and one folder per concern below it (README "Layout").
SRCS      := $(wildcard agent/*.c agent/*/*.c)
# The wire formats' code, generated from their .proto by protoc-c into
# $(BUILD)/gen (never committed): agent/evidence/remote-write.proto gives
# evidence/remote-write.pb-c.[ch] there.
PROTOS    := $(wildcard agent/*/*.proto)
GEN_SRCS  := $(patsubst agent/%.proto,$(BUILD)/gen/%.pb-c.c,$(PROTOS))
GEN_HDRS  := $(GEN_SRCS:.c=.h)
GEN_OBJS  := $(GEN_SRCS:.c=.o)
LIB_OBJS  := $(patsubst agent/%.c,$(BUILD)/agent/%.o,$(filter-out agent/main.c,$(SRCS))) $(GEN_OBJS)
MAIN_OBJ  := $(BUILD)/agent/main.o
UNIT_SRCS := $(wildcard test/unit/test-*.c)
UNIT_BINS := $(patsubst test/unit/%.c,$(BUILD)/test/%,$(UNIT_SRCS))
DEPS_OK   := $(BUILD)/.deps-ok

.PHONY: all deps check check-extra check-demo check-sim install-bin uninstall-bin unit integration sanitize lint layers shellcheck manlint install uninstall \
        clean bench demo deb rpm
all: $(BIN)

$(DEPS_OK):
	@sh build-aux/install-deps build
	@mkdir -p $(@D) && touch $@

deps: $(DEPS_OK)

$(BUILD)/agent/%.o: agent/%.c | $(DEPS_OK) $(GEN_HDRS)
	@mkdir -p $(@D)
	$(CC) $(SPOT_CPPFLAGS) $(CPPFLAGS) $(SPOT_CFLAGS) $(CFLAGS) -c -o $@ $<

# The engine is the protocol and nothing else: it is compiled without any
# library's include path, and build-aux/engine-pure fails its build when one
# of its files includes anything but libc's pure headers and the engine's.
ENGINE_CPPFLAGS = -D_GNU_SOURCE -iquote agent
$(BUILD)/agent/engine/%.o: agent/engine/%.c build-aux/engine-pure | $(DEPS_OK)
	@mkdir -p $(@D)
	@sh build-aux/engine-pure
	$(CC) $(ENGINE_CPPFLAGS) $(CPPFLAGS) $(SPOT_CFLAGS) $(CFLAGS) -c -o $@ $<

# Both files at once; the .c names its header as "<folder>/<name>.pb-c.h".
$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: agent/%.proto | $(DEPS_OK)
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=agent --c_out=$(BUILD)/gen $<

# Kept once made: not intermediate files for make to remove.
.SECONDARY: $(GEN_SRCS) $(GEN_HDRS)

# Generated code follows its generator's style, not the project's warnings.
$(BUILD)/gen/%.pb-c.o: $(BUILD)/gen/%.pb-c.c
	$(CC) $(SPOT_CPPFLAGS) $(CPPFLAGS) -std=c11 -O2 -g $(SANFLAGS) -MMD -MP $(CFLAGS) -c -o $@ $<

$(BUILD)/libspot.a: $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(BIN): $(MAIN_OBJ) $(BUILD)/libspot.a
	$(CC) $(SPOT_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(SPOT_LIBS)

$(BUILD)/test/%.o: test/unit/%.c | $(DEPS_OK) $(GEN_HDRS)
	@mkdir -p $(@D)
	$(CC) $(SPOT_CPPFLAGS) $(CPPFLAGS) $(SPOT_CFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/test/test-%: $(BUILD)/test/test-%.o $(BUILD)/libspot.a
	$(CC) $(SPOT_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(SPOT_LIBS) $(TEST_LIBS)

# An LD_PRELOAD shim whose fork() fails on demand (test/shim/failfork.c).
$(BUILD)/test/failfork.so: test/shim/failfork.c | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) -shared -fPIC -O2 -Wall -Wextra -o $@ $< -ldl

# Unit tests run from the top directory so they find test/data.
# Hook directories in tests go where the agent trusts them (build-aux/trusted-dir).
unit: $(UNIT_BINS)
	@SPOT_TEST_HOOKS_BASE=$$(sh build-aux/trusted-dir $(BUILD)/it-hooks) sh build-aux/run-unit $(UNIT_BINS)

integration: $(BIN) $(BUILD)/test/failfork.so
	@SPOT_AGENT=$(BIN) SPOT_FAILFORK_SO=$(abspath $(BUILD)/test/failfork.so) $(PYTHON) test/integration/run.py

# The tests once more with AddressSanitizer and UndefinedBehaviorSanitizer.
# The exhaustive engine check runs at full depth in the plain build; under
# the sanitizers a smaller bound keeps the run short.
sanitize:
	@SPOT_ENGINE_HOOKS=1 $(MAKE) --no-print-directory BUILD=build-san BIN=build-san/spot-agent SAN=1 WERROR=1 \
		unit integration

lint:
	@sh build-aux/lint

# No folder includes a header of a layer above its own (build-aux/layers).
layers:
	@sh build-aux/engine-pure
	@$(PYTHON) build-aux/layers
	@sh test/layers-selftest.sh

shellcheck:
	@sh build-aux/shellcheck-all

manlint:
	@sh build-aux/manlint

check: | $(DEPS_OK)
	@sh build-aux/install-deps check
	@$(MAKE) --no-print-directory WERROR=1 all
	@$(MAKE) --no-print-directory WERROR=1 unit
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory sanitize
	@$(MAKE) --no-print-directory lint layers shellcheck manlint
	@$(MAKE) --no-print-directory check-extra
	@echo "make check: all passed"

bench: $(BIN)
	@sh build-aux/install-deps bench
	@SPOT_AGENT=$(BIN) $(PYTHON) bench/bench.py

demo: $(BIN)
	@sh build-aux/install-deps demo
	@SPOT_AGENT=$(BIN) sh test/demo.sh

install-bin: $(BIN)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/spot-agent.d $(DESTDIR)$(SYSCONFDIR)/spot-agent
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/spot-agent

uninstall-bin:
	rm -f $(DESTDIR)$(BINDIR)/spot-agent

clean:
	rm -rf build build-san $(BIN)

# Fragments in packaging/*.mk add their own checks to this double-colon rule.
check-extra::
	@true

-include $(wildcard packaging/*.mk)
-include $(wildcard test/*.mk)
-include $(LIB_OBJS:.o=.d) $(MAIN_OBJ:.o=.d) $(UNIT_BINS:=.d)

# make demo, run non-interactively, must show the whole story.
check-extra:: check-demo
check-demo: $(BIN)
	@out=$$($(MAKE) --no-print-directory demo 2>&1); rc=$$?; \
	for want in "eviction notice: Preempt" "hook chain done: 4 ok" "event approved" \
		"/readyz already answers 503" '"state":	"done"' "demo complete"; do \
		printf '%s' "$$out" | grep -qF -- "$$want" || { printf '%s\n' "$$out"; \
			echo "check-demo: output lacks '$$want'"; exit 1; }; \
	done; [ $$rc = 0 ] || { printf '%s\n' "$$out"; exit 1; }; echo "check-demo: demo ran end to end"

# The simulator is a test tool with its own self-test.
check-extra:: check-sim
check-sim:
	@out=$$($(PYTHON) test/imds_sim_selftest.py 2>&1); rc=$$?; \
	[ $$rc = 0 ] || printf '%s\n' "$$out"; printf '%s\n' "$$out" | tail -n 1; exit $$rc
