# agentd — plain Makefile over pkg-config (Debian 12 packages).
#
#   make            build agentd and every test program
#   make run        build and start the daemon on its defaults (127.0.0.1:8080, ./data)
#   make test       build and run the whole test suite
#   make asan       the same suite built with AddressSanitizer + UndefinedBehaviorSanitizer
#   make valgrind   unit tests under valgrind's leak checker
#   make lint       formatting, banned functions, cppcheck
#   make bench      build the benchmarks under bench/
#
# Each module is one folder built into build/lib<module>.a. A module's unit
# tests live in tests/<module>/test_*.c and link only that module and what it
# depends on, so one module's tests build without the others.

CC      ?= cc
BUILD   ?= build
PYTHON  ?= python3
DEPS_OK := $(shell ./scripts/deps.sh >&2 && echo ok)
ifneq ($(DEPS_OK),ok)
$(error missing build dependencies: see the message above)
endif

PKGS    := sqlite3 libcurl libgit2 libpcre2-8 libmicrohttpd openblas jansson libseccomp \
           libsodium libxml-2.0 poppler-glib zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))

OPT     ?= -O2
SAN     ?=
CFLAGS  ?=
CFLAGS  += -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -g $(OPT) -march=x86-64-v2 -mtune=native \
           -fno-strict-aliasing -I. $(PKG_CFLAGS) $(SAN) -MMD -MP
LDLIBS  := $(PKG_LIBS) -lpthread -lm
LDFLAGS += $(SAN)

# Module dependency order: a module may use those listed after it.
MODULES := agentd memory tools policies retrieval engine common
DEPS_common    :=
DEPS_engine    := common
DEPS_retrieval := common
DEPS_policies  := common
DEPS_tools     := retrieval policies common
DEPS_memory    := engine common
DEPS_agentd    := memory tools policies retrieval engine common

lib_srcs = $(filter-out $(1)/main.c $(1)/prog_%.c,$(wildcard $(1)/*.c))
lib_objs = $(patsubst %.c,$(BUILD)/obj/%.o,$(call lib_srcs,$(1)))
lib_file = $(BUILD)/lib$(1).a
libs_for = $(foreach m,$(1) $(DEPS_$(1)),$(call lib_file,$(m)))

ALL_LIBS := $(foreach m,$(MODULES),$(call lib_file,$(m)))

# Programs: agentd itself, <module>/prog_<name>.c helper programs, bench/*.c.
AGENTD      := $(BUILD)/agentd
PROG_SRCS   := $(foreach m,$(MODULES),$(wildcard $(m)/prog_*.c))
PROGS       := $(foreach s,$(PROG_SRCS),$(BUILD)/$(patsubst prog_%,%,$(basename $(notdir $(s)))))
BENCH_SRCS  := $(wildcard bench/*.c)
BENCHES     := $(patsubst %.c,$(BUILD)/%,$(BENCH_SRCS))
TEST_SRCS   := $(wildcard tests/*/test_*.c)
TESTS       := $(patsubst %.c,$(BUILD)/%,$(TEST_SRCS))
FUZZ_SRCS   := $(filter-out tests/fuzz/fuzz_main.c,$(wildcard tests/fuzz/fuzz_*.c))
FUZZERS     := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))
TEST_SUPPORT := $(wildcard tests/support/*.c)
TEST_SUPPORT_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(TEST_SUPPORT))

.SECONDARY:
.PHONY: all libs run model ablation test asan valgrind lint format bench clean fuzz $(foreach m,$(MODULES),test-$(m))

all: $(AGENTD) $(PROGS) $(TESTS) $(FUZZERS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "CC $<"
	@$(CC) $(CFLAGS) -c $< -o $@

define MODULE_RULES
$(call lib_file,$(1)): $(call lib_objs,$(1))
	@mkdir -p $$(dir $$@)
	@rm -f $$@
	@ar rcs $$@ $$^
$(BUILD)/tests/$(1)/test_%: tests/$(1)/test_%.c $(TEST_SUPPORT_OBJS) $(call libs_for,$(1))
	@mkdir -p $$(dir $$@)
	@echo "LD $$@"
	@$$(CC) $$(CFLAGS) $$< $(TEST_SUPPORT_OBJS) $(call libs_for,$(1)) $$(LDFLAGS) $$(LDLIBS) -lcmocka -o $$@
$(BUILD)/%: $(1)/prog_%.c $(call libs_for,$(1))
	@mkdir -p $$(dir $$@)
	@echo "LD $$@"
	@$$(CC) $$(CFLAGS) $$< $(call libs_for,$(1)) $$(LDFLAGS) $$(LDLIBS) -o $$@
test-$(1): $(filter $(BUILD)/tests/$(1)/%,$(TESTS)) $(if $(filter agentd,$(1)),$(AGENTD) $(PROGS))
	BUILD=$(BUILD) PYTHON=$(PYTHON) ./scripts/run-tests.sh $(1)
endef
$(foreach m,$(MODULES),$(eval $(call MODULE_RULES,$(m))))

# agentd's integration tests talk to the daemon; they also need the programs.
$(BUILD)/tests/integration/test_%: tests/integration/test_%.c $(TEST_SUPPORT_OBJS) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	@echo "LD $@"
	@$(CC) $(CFLAGS) $< $(TEST_SUPPORT_OBJS) $(ALL_LIBS) $(LDFLAGS) $(LDLIBS) -lcmocka -o $@

$(AGENTD): agentd/main.c $(ALL_LIBS)
	@mkdir -p $(dir $@)
	@echo "LD $@"
	@$(CC) $(CFLAGS) $< $(ALL_LIBS) $(LDFLAGS) $(LDLIBS) -o $@

# Fuzz harnesses build as plain programs with tests/fuzz/fuzz_main.c (replay or smoke
# fuzz, run by make test); `make fuzz` builds them for libFuzzer with clang.
$(BUILD)/fuzz/%: tests/fuzz/%.c $(BUILD)/obj/tests/fuzz/fuzz_main.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	@echo "LD $@"
	@$(CC) $(CFLAGS) $< $(BUILD)/obj/tests/fuzz/fuzz_main.o $(ALL_LIBS) $(LDFLAGS) $(LDLIBS) -o $@

fuzz:
	$(MAKE) CC=clang BUILD=build-fuzz OPT=-O1 SAN="-fsanitize=fuzzer-no-link,address,undefined" libs
	@for s in $(FUZZ_SRCS); do n=$$(basename $$s .c); echo "LD build-fuzz/fuzz/$$n"; \
	  clang $(filter-out -MMD -MP,$(CFLAGS)) -DAG_LIBFUZZER -fsanitize=fuzzer,address,undefined $$s \
	    $(subst $(BUILD)/,build-fuzz/,$(ALL_LIBS)) $(LDLIBS) -o build-fuzz/fuzz/$$n || exit 1; done

libs: $(ALL_LIBS)

$(BUILD)/bench/%: bench/%.c $(ALL_LIBS)
	@mkdir -p $(dir $@)
	@echo "LD $@"
	@$(CC) $(CFLAGS) $< $(ALL_LIBS) $(LDFLAGS) $(LDLIBS) -o $@

run: $(AGENTD)
	$(AGENTD) serve

# The shipped small model (models/agentd-small.gguf): PyTorch pipeline under
# models/train/, about an hour on two cores. Not part of `make`.
model: $(AGENTD)
	AGENTD_EXTRA_PKGS="python3-torch python3-numpy python3-sentencepiece" ./scripts/deps.sh
	AGENTD_BIN=$(AGENTD) ./models/train/pipeline.sh

# The hybrid-architecture ablation (issue #14, models/ABLATION.md): trains the
# variants into build/ablation/ and measures them through the engine with
# build/bench/ablation. ABLATION_TOKENS: training tokens per variant (1000000:
# 26 minutes for all six on one core here); ABLATION_SEEDS: e.g. 1,2. Not part of `make`.
ablation: $(AGENTD) $(BUILD)/bench/ablation
	AGENTD_EXTRA_PKGS="python3-torch python3-numpy python3-sentencepiece" ./scripts/deps.sh
	cd models/train && /usr/bin/python3 ablation.py run --build "$(abspath $(BUILD))" \
	  --out "$(abspath $(BUILD))/ablation"

# JavaScript packages the integration tests use (the openai client), from package-lock.json.
JS_DEPS := tests/integration/js/node_modules/.package-lock.json
$(JS_DEPS): tests/integration/js/package.json tests/integration/js/package-lock.json
	cd tests/integration/js && npm ci --no-audit --no-fund --loglevel=error

test: all $(JS_DEPS)
	BUILD=$(BUILD) PYTHON=$(PYTHON) ./scripts/run-tests.sh

asan:
	$(MAKE) BUILD=build-asan OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" test

valgrind: all
	BUILD=$(BUILD) VALGRIND=1 ./scripts/run-tests.sh unit

bench: $(BENCHES) $(PROGS)

lint:
	./scripts/lint.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
