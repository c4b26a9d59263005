# cdnagent — top-level build.
#
#   make          build build/cdnagent (Linux host)
#   make run      the demo: provision a device, push it to the local simulator
#   make test     every test; ends with "N passed, N failed"
#   make firmware     the Cortex-M4 image (QEMU mps2-an386), build/cm-fw/cdnagent.elf
#   make test-target  the on-target tests and firmware scenario under qemu-system-arm
#   make size     flash/RAM of the linked Cortex-M image per component and library
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
PORT_SRCS   := port/port_common.c $(sort $(wildcard port/posix/*.c))
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

.PHONY: all deps npm-deps run test unit-tests cross-check firmware target-images test-target size bench clean help
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

# ------------------------------------------------------ Cortex-M images --
# The Cortex-M build compiles mbedTLS, cJSON, http-parser (and cmocka for
# the on-target tests) from Debian's source packages, fetched into
# $(BUILD)/third_party by tools/fetch_sources.sh. Their file lists are known
# only after the fetch, so the images are built by a second make pass
# (firmware/cortex-m/cortex-m.mk) once the sources are there.
TP := $(BUILD)/third_party
CM_MAKE = $(MAKE) --no-print-directory -f firmware/cortex-m/cortex-m.mk BUILD=$(BUILD) \
          CROSS_CC=$(CROSS_CC) CROSS_SIZE=$(CROSS_SIZE) PYTHON=$(PYTHON)

$(TP)/.fetched: tools/fetch_sources.sh
	tools/fetch_sources.sh $(TP) mbedtls cjson http-parser cmocka
	@touch $@

cross-check firmware: deps $(TP)/.fetched
	@$(CM_MAKE) firmware

target-images: deps $(TP)/.fetched
	@$(CM_MAKE) target-images

test-target: firmware target-images
	@$(PYTHON) tests/run_tests.py --build $(BUILD) --only test_target

size: deps $(TP)/.fetched
	@$(CM_MAKE) size

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
	$(MAKE) --no-print-directory all unit-tests firmware target-images
	@$(PYTHON) tests/run_tests.py --build $(BUILD) $(UNIT_BINS)

run: deps
	$(MAKE) --no-print-directory npm-deps all
	@tools/demo.sh $(BUILD)

bench: $(BENCH_BINS)
	@for b in $(BENCH_BINS); do echo "== $$b"; $$b || exit 1; done

clean:
	rm -rf $(BUILD)

-include $(shell find $(addprefix $(BUILD)/,$(VARIANTS)) -name '*.d' -type f 2>/dev/null)
