# edgegate build. `make` builds the daemons and the reference agent into bin/.
#   make SAN=1      ASan + UBSan build (objects kept apart from the plain build)
#   make CC=clang   clang build
#   make test       deps, build, throwaway PostgreSQL + Redis, every test; last line "N passed, N failed"
#   make run        deps, build, PostgreSQL + Redis under ./.run, migrations, both daemons, demo device
#   make fuzz       libFuzzer targets (clang) into build/fuzz/; FUZZ_SECONDS=N runs each for N s
#   make bench      the performance table
# Sources are found by wildcard: a new module is a new file, not a Makefile edit.
# wslay and mbedtls ship no pkg-config file in Debian; they are named directly.

CC      ?= cc
SAN     ?= 0
PKGS    := libuv hiredis jansson liboath libqrencode libpng libcrypt libpq
LLHTTP_SRC := /usr/share/llhttp
LLHTTP_INC := /usr/share/include/llhttp

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
# DWARF 4: Debian bookworm's valgrind 3.19 cannot read the DWARF 5 forms clang emits.
CFLAGS  ?= -O2 -g -gdwarf-4
# llhttp's strict mode: no leniency about header names, whitespace or line endings.
CFLAGS  += -std=c11 -D_GNU_SOURCE -DLLHTTP_STRICT_MODE=1 $(WARN) -I. -I$(LLHTTP_INC) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lwslay -lmbedtls -lmbedx509 -lmbedcrypto -lm

ifeq ($(SAN),1)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif

CCNAME  := $(notdir $(firstword $(CC)))
BUILD   := build/$(CCNAME)-san$(SAN)
LIB     := $(BUILD)/libedgegate.a

LIB_SRC     := $(wildcard common/*.c proto/*.c)
API_SRC     := $(wildcard api-server/*.c)
PROXY_SRC   := $(wildcard remote-proxy/*.c)
AGENT_SRC   := $(wildcard test/edge-agent/*.c)
UNIT_SRC    := $(wildcard test/unit/test_*.c)
FUZZ_SRC    := $(wildcard test/fuzz/fuzz_*.c)
SUPPORT_SRC := $(wildcard test/support/*.c)

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))
LLHTTP_OBJ  := $(patsubst $(LLHTTP_SRC)/%.c,$(BUILD)/llhttp/%.o,$(wildcard $(LLHTTP_SRC)/*.c))
UNIT_BIN    := $(patsubst test/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRC))
SUPPORT_BIN := $(patsubst test/support/%.c,bin/test/%,$(SUPPORT_SRC))

BINS := bin/api-server bin/remote-proxy $(if $(AGENT_SRC),bin/edge-agent)

.PHONY: all clean test run bench fuzz unit deps format lint FORCE
# Keep objects of programs that are built through pattern rules.
.SECONDARY:
all: $(BINS) $(UNIT_BIN) $(SUPPORT_BIN)

# bin/ is shared by every build flavour; this stamp relinks it when the flavour changes.
$(BUILD)/.flavour: FORCE
	@mkdir -p $(@D)
	@echo '$(CC) $(CFLAGS) $(LDFLAGS)' | cmp -s - $@ || echo '$(CC) $(CFLAGS) $(LDFLAGS)' > $@
bin/.flavour: $(BUILD)/.flavour FORCE
	@mkdir -p $(@D)
	@cmp -s $< $@ || cp $< $@

$(BUILD)/%.o: %.c $(BUILD)/.flavour
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# llhttp is generated C from Debian's node-llhttp; it is not ours, so our warning set stays off it.
$(BUILD)/llhttp/%.o: $(LLHTTP_SRC)/%.c $(BUILD)/.flavour
	@mkdir -p $(@D)
	$(CC) $(filter-out -W% -Werror,$(CFLAGS)) -w -c $< -o $@

$(LIB): $(call obj,$(LIB_SRC)) $(LLHTTP_OBJ)
	@rm -f $@
	ar rcs $@ $^

bin/api-server: $(call obj,$(API_SRC)) $(LIB) bin/.flavour
	$(CC) $(LDFLAGS) -o $@ $(filter %.o %.a,$^) $(LDLIBS)
bin/remote-proxy: $(call obj,$(PROXY_SRC)) $(LIB) bin/.flavour
	$(CC) $(LDFLAGS) -o $@ $(filter %.o %.a,$^) $(LDLIBS)
bin/edge-agent: $(call obj,$(AGENT_SRC)) $(LIB) bin/.flavour
	$(CC) $(LDFLAGS) -o $@ $(filter %.o %.a,$^) $(LDLIBS)

# Programs the integration tests drive (a test HTTP server, ...): one .c each.
bin/test/%: $(BUILD)/test/support/%.o $(LIB) bin/.flavour
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o %.a,$^) $(LDLIBS)

$(BUILD)/unit/%: $(BUILD)/test/unit/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

unit: $(UNIT_BIN)

deps:
	@sh deploy/deps.sh

test: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) SAN=$(SAN) sh test/run.sh

run: deps
	@$(MAKE) --no-print-directory all
	@sh deploy/run-local.sh

bench: deps
	@$(MAKE) --no-print-directory all SAN=0
	@sh test/bench/run.sh

# libFuzzer: every parser gets a target; each links the library sources built with clang.
FUZZ_BUILD  := build/fuzz
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -DLLHTTP_STRICT_MODE=1 -g -O1 -I. -I$(LLHTTP_INC) $(shell pkg-config --cflags $(PKGS) 2>/dev/null) \
               -fsanitize=fuzzer-no-link,address,undefined -DEDGEGATE_FUZZ
FUZZ_BIN    := $(patsubst test/fuzz/%.c,$(FUZZ_BUILD)/%,$(FUZZ_SRC))
FUZZ_LIBOBJ := $(patsubst %.c,$(FUZZ_BUILD)/%.o,$(LIB_SRC)) $(patsubst $(LLHTTP_SRC)/%.c,$(FUZZ_BUILD)/llhttp/%.o,$(wildcard $(LLHTTP_SRC)/*.c))
FUZZ_SECONDS ?= 0

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@
$(FUZZ_BUILD)/llhttp/%.o: $(LLHTTP_SRC)/%.c
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -w -c $< -o $@
# Not intermediate: make would otherwise keep a stale target whose object is gone or whose
# headers changed (the .d files name them).
.SECONDARY: $(patsubst test/fuzz/%.c,$(FUZZ_BUILD)/test/fuzz/%.o,$(FUZZ_SRC))
$(FUZZ_BUILD)/%: $(FUZZ_BUILD)/test/fuzz/%.o $(FUZZ_LIBOBJ)
	clang -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)

# Each target keeps its corpus in build/fuzz/corpus-NAME between runs.
fuzz: $(FUZZ_BIN)
	@if [ "$(FUZZ_SECONDS)" != 0 ]; then for f in $(FUZZ_BIN); do \
	  mkdir -p build/fuzz/corpus-$$(basename $$f); \
	  echo "== $$f ($(FUZZ_SECONDS) s)"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 build/fuzz/corpus-$$(basename $$f) \
	    2>&1 | tail -n 3 || exit 1; done; fi

format:
	clang-format -i $(wildcard */*.c */*.h test/*/*.c test/*/*.h)

lint:
	cppcheck --quiet --enable=warning,performance,portability --error-exitcode=1 \
	  --suppress=missingIncludeSystem -I. common proto api-server remote-proxy test/edge-agent
	@# Annex K "safe" functions are not in glibc; memcpy/snprintf with checked sizes are the norm.
	clang-tidy --quiet --checks=-clang-analyzer-security.insecureAPI.* \
	  $(LIB_SRC) $(API_SRC) $(PROXY_SRC) $(AGENT_SRC) -- $(CFLAGS)

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
