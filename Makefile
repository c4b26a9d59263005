# cdnagent — top-level build.
#
#   make          build build/cdnagent (Linux host)
#   make run      the demo: provision a device, push it to the local simulator
#   make test     every test; ends with "N passed, N failed"
#   make size     text/data/bss per component, Cortex-M4 -Os build
#   make bench    build and run the benchmarks under tests/bench/
#   make deps     install what is missing (Debian packages, pinned npm SDKs)
#
# Components, unit tests, benchmarks and CLI sources are found by wildcard:
#   components/NAME/src/*.c  -> part of libcdnagent.a (and the Cortex-M check)
#   tests/unit/test_*.c      -> one cmocka binary each, run plain and under ASan+UBSan
#   tests/support/*.c        -> linked into every unit test and benchmark
#   tests/integration/test_* -> executable scripts printing TAP lines
#   tests/bench/*.c          -> one benchmark binary each
#   tests/tools/*.c          -> helper programs the integration tests run
#   firmware/linux/*.c       -> build/cdnagent

BUILD      ?= build
CC         ?= cc
CROSS_CC   ?= arm-none-eabi-gcc
CROSS_SIZE ?= arm-none-eabi-size
PYTHON     ?= python3

COMPONENTS  := $(patsubst components/%/,%,$(sort $(wildcard components/*/)))
COMP_SRCS   := $(sort $(wildcard components/*/src/*.c))
PORT_SRCS   := $(sort $(wildcard port/posix/*.c))
FW_SRCS     := $(sort $(wildcard firmware/linux/*.c))
SUPPORT_SRCS:= $(sort $(wildcard tests/support/*.c))
UNIT_SRCS   := $(sort $(wildcard tests/unit/test_*.c))
BENCH_SRCS  := $(sort $(wildcard tests/bench/*.c))
TOOL_SRCS   := $(sort $(wildcard tests/tools/*.c))

INCLUDES := -Iport $(addprefix -I,$(wildcard components/*/include))
WARN     := -Wall -Wextra -Werror
# Components are strict C11: no compiler extensions, nothing from POSIX.
COMP_STRICT = $(if $(filter components/%,$<),-pedantic-errors,-D_DEFAULT_SOURCE)
HOST_LIBS := -lmbedtls -lmbedx509 -lmbedcrypto -lcjson -lhttp_parser

CFLAGS_host := -std=c11 $(WARN) -O2 -g
CFLAGS_asan := -std=c11 $(WARN) -O1 -g -fno-omit-frame-pointer \
               -fsanitize=address,undefined -fno-sanitize-recover=all
LDFLAGS_host :=
LDFLAGS_asan := -fsanitize=address,undefined

VARIANTS := host asan

objs = $(patsubst %.c,$(BUILD)/$(1)/obj/%.o,$(2))

.PHONY: all deps npm-deps run test unit-tests cross-check size bench clean help
.DEFAULT_GOAL := all
# Keep intermediate objects so rebuilds stay incremental.
.SECONDARY:

all: $(BUILD)/cdnagent

help:
	@sed -n '3,9p' Makefile

# ------------------------------------------------------------ host build --
define variant_rules
$(BUILD)/$(1)/obj/%.o: %.c
	@mkdir -p $$(@D)
	$$(CC) $$(CFLAGS_$(1)) $$(COMP_STRICT) $$(INCLUDES) -Iport/posix -Itests/support -MMD -MP -c $$< -o $$@

$(BUILD)/$(1)/libcdnagent.a: $(call objs,$(1),$(COMP_SRCS) $(PORT_SRCS))
	@mkdir -p $$(@D)
	rm -f $$@ && ar rcs $$@ $$^

$(BUILD)/$(1)/cdnagent: $(call objs,$(1),$(FW_SRCS)) $(BUILD)/$(1)/libcdnagent.a
	$$(CC) $$(LDFLAGS_$(1)) -o $$@ $$^ $$(HOST_LIBS)

$(BUILD)/$(1)/tests/%: $(BUILD)/$(1)/obj/tests/unit/%.o $(call objs,$(1),$(SUPPORT_SRCS)) $(BUILD)/$(1)/libcdnagent.a
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS_$(1)) -o $$@ $$^ $$(HOST_LIBS) -lcmocka
endef
$(foreach v,$(VARIANTS),$(eval $(call variant_rules,$(v))))

# Replaced by rename, so a running daemon ("text file busy") never blocks it.
$(BUILD)/cdnagent: $(BUILD)/host/cdnagent
	cp $< $@.tmp && mv -f $@.tmp $@

UNIT_BINS := $(foreach v,$(VARIANTS),$(patsubst tests/unit/%.c,$(BUILD)/$(v)/tests/%,$(UNIT_SRCS)))
BENCH_BINS := $(patsubst tests/bench/%.c,$(BUILD)/host/bench/%,$(BENCH_SRCS))

$(BUILD)/host/bench/%: $(BUILD)/host/obj/tests/bench/%.o $(call objs,host,$(SUPPORT_SRCS)) $(BUILD)/host/libcdnagent.a
	@mkdir -p $(@D)
	$(CC) -o $@ $^ $(HOST_LIBS) -lm

TOOL_BINS := $(patsubst tests/tools/%.c,$(BUILD)/host/tools/%,$(TOOL_SRCS))

$(BUILD)/host/tools/%: $(BUILD)/host/obj/tests/tools/%.o $(BUILD)/host/libcdnagent.a
	@mkdir -p $(@D)
	$(CC) -o $@ $^ $(HOST_LIBS)

unit-tests: $(UNIT_BINS) $(TOOL_BINS)

# --------------------------------------------- Cortex-M4 compile + size --
# Every component must build for a bare-metal target. Only the headers of
# the third-party libraries are needed for that, so they are exposed through
# a directory of links instead of the whole host include tree.
CROSS_INC := $(BUILD)/cross-include
# Debian's mbedTLS config enables MBEDTLS_THREADING_PTHREAD, so ssl.h/x509_crt.h
# need pthread_mutex_t; newlib declares it only under _POSIX_THREADS.
CROSS_CFLAGS := -std=c11 -pedantic-errors $(WARN) -mcpu=cortex-m4 -mthumb -Os -D_POSIX_THREADS \
                -ffunction-sections -fdata-sections -Iport $(addprefix -I,$(wildcard components/*/include)) \
                -I$(CROSS_INC)
CM4_OBJS := $(call objs,cm4,$(COMP_SRCS))

$(CROSS_INC)/.stamp:
	@mkdir -p $(CROSS_INC)
	ln -sfn /usr/include/mbedtls $(CROSS_INC)/mbedtls
	ln -sfn /usr/include/psa $(CROSS_INC)/psa
	ln -sfn /usr/include/cjson $(CROSS_INC)/cjson
	ln -sfn /usr/include/http_parser.h $(CROSS_INC)/http_parser.h
	@touch $@

$(BUILD)/cm4/obj/%.o: %.c $(CROSS_INC)/.stamp
	@mkdir -p $(@D)
	$(CROSS_CC) $(CROSS_CFLAGS) -MMD -MP -c $< -o $@

cross-check: $(CM4_OBJS)
	@echo "cross-check: $(words $(CM4_OBJS)) component sources build for Cortex-M4"

size: deps $(CM4_OBJS)
	@$(PYTHON) tools/size_table.py --size $(CROSS_SIZE) $(BUILD)/cm4/obj/components

# ----------------------------------------------------------- the two jobs --
deps:
	@tools/deps.sh

npm-deps: $(BUILD)/npm/.stamp
$(BUILD)/npm/.stamp: tools/npm/package.json tools/npm/package-lock.json
	@mkdir -p $(BUILD)/npm
	cp tools/npm/package.json tools/npm/package-lock.json $(BUILD)/npm/
	cd $(BUILD)/npm && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

test: deps
	$(MAKE) --no-print-directory npm-deps
	$(MAKE) --no-print-directory all unit-tests cross-check
	@$(PYTHON) tests/run_tests.py --build $(BUILD) $(UNIT_BINS)

run: deps
	$(MAKE) --no-print-directory npm-deps all
	@tools/demo.sh $(BUILD)

bench: $(BENCH_BINS)
	@for b in $(BENCH_BINS); do echo "== $$b"; $$b || exit 1; done

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
