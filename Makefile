# cdnagent — top-level build.
#
#   make          build build/cdnagent (Linux host)
#   make run      the demo: provision a device, push it to the local simulator
#   make test     every test; ends with "N passed, N failed"
#   make firmware     the Cortex-M4 image (QEMU mps2-an386), build/cm-fw/cdnagent.elf
#   make test-target  the on-target tests and firmware scenario under qemu-system-arm
#   make size     flash/RAM of the linked Cortex-M image per component and library
#   make bench    build and run the benchmarks under tests/bench/ (bench-scale last)
#   make bench-scale  cdnagent sync beside @alicloud/pop-core at 100..5,000 changes
#   make fleet    200 cdnagent daemons under one account against cdnsim: the fleet figures
#   make fuzz     the libFuzzer harnesses of tests/fuzz/, FUZZ_SECONDS each (needs clang)
#   make coverage components/ line and branch coverage of the host tests (gcovr);
#                 make test runs it too and fails below the floor (tests/COVERAGE.md)
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

# Declared dependencies (ESP-IDF's REQUIRES): components/NAME/component.mk
# sets NAME_REQUIRES (components whose public headers and functions NAME
# uses) and NAME_LIBS (third-party libraries: mbedtls cjson http_parser). A
# component compiles with its own include/ and src/, the public headers of
# what it requires (and what those require: public headers include them),
# and the port's contract, port.h, alone ($(PORT_API)); never port/posix nor
# tests/support. tools/check_layering.py, run by make test, checks the
# includes each file names and the functions each object calls.
include $(sort $(wildcard components/*/component.mk))
PORT_API     := $(BUILD)/port-api
# (a visited list, so a cycle, which check_layering.py reports, cannot
# recurse for ever here)
reqs_walk     = $(foreach r,$(filter-out $(2),$($(1)_REQUIRES)),$(r) $(call reqs_walk,$(r),$(2) $(1) $(r)))
reqs_closure  = $(sort $(call reqs_walk,$(1),$(1)))
comp_inc      = -I$(PORT_API) -Icomponents/$(1)/include -Icomponents/$(1)/src \
                $(foreach r,$(call reqs_closure,$(1)),-Icomponents/$(r)/include)
comp_of       = $(word 2,$(subst /, ,$(1)))
# What the source being compiled may see: a component its declaration,
# everything else (port, firmware, tests) every public header.
src_inc       = $(if $(filter components/%,$(1)),$(call comp_inc,$(call comp_of,$(1))),$(INCLUDES) -Iport/posix -Itests/support)

$(PORT_API)/port.h: port/port.h
	@mkdir -p $(@D)
	ln -sfn $(abspath port/port.h) $@
WARN     := -Wall -Wextra -Werror
# Components are strict C11: no compiler extensions, nothing from POSIX.
COMP_STRICT = $(if $(filter components/%,$<),-pedantic-errors,-D_DEFAULT_SOURCE)
HOST_LIBS := -lmbedtls -lmbedx509 -lmbedcrypto -lcjson -lhttp_parser

# The Linux daemon and CLI mount images of thousands of records: the store's
# 1 KB byte-table CRC there, and a due cache of 256 queue entries (5.4 KB of
# heap: a walk of the queue every 256 deliveries instead of every 32); the
# unit tests (asan) keep the small defaults the Cortex-M image is near, so
# both are tested.
CFLAGS_host := -std=c11 $(WARN) -O2 -g -DUTIL_CRC32_TABLE=256 -DQUEUE_DUE_CACHE=256u
CFLAGS_asan := -std=c11 $(WARN) -O1 -g -fno-omit-frame-pointer \
               -fsanitize=address,undefined -fno-sanitize-recover=all
LDFLAGS_host :=
LDFLAGS_asan := -fsanitize=address,undefined

VARIANTS := host asan

objs = $(patsubst %.c,$(BUILD)/$(1)/obj/%.o,$(2))

.PHONY: all deps npm-deps run test unit-tests cross-check firmware target-images test-target size bench bench-scale clean help fleet
.DEFAULT_GOAL := all
# Keep intermediate objects so rebuilds stay incremental.
.SECONDARY:

all: $(BUILD)/cdnagent

help:
	@sed -n '3,11p' Makefile

# ------------------------------------------------------------ host build --
define variant_rules
$(BUILD)/$(1)/obj/%.o: %.c | $(PORT_API)/port.h
	@mkdir -p $$(@D)
	$$(CC) $$(CFLAGS_$(1)) $$(COMP_STRICT) $$(call src_inc,$$<) -MMD -MP -c $$< -o $$@

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
	tools/fetch_sources.sh $(TP) mbedtls cjson http-parser cmocka lwip
	@touch $@

cross-check firmware: deps $(TP)/.fetched
	@$(CM_MAKE) firmware

target-images: deps $(TP)/.fetched
	@$(CM_MAKE) target-images

test-target: firmware target-images
	@$(PYTHON) tests/run_tests.py --build $(BUILD) --only test_target

size: deps $(TP)/.fetched
	@$(CM_MAKE) size

# --------------------------------------------------------------- fuzzing --
# make fuzz: one libFuzzer harness per tests/fuzz/fuzz_NAME.c, built with
# clang (-fsanitize=fuzzer,address,undefined) into $(BUILD)/fuzz/, each run
# FUZZ_SECONDS on its corpus $(BUILD)/fuzz/corpus/NAME (seeded from
# tests/fuzz/corpus/NAME); crashes land in $(BUILD)/fuzz/crashes/NAME/.
# http-parser and cJSON are compiled from the fetched Debian sources with
# the same instrumentation, so the fuzzer sees inside them; mbedTLS is the
# system library. make test replays tests/fuzz/corpus and tests/fuzz/regress
# through replay binaries built with $(CC) like the asan variant (no clang
# needed there). Details: tests/fuzz/README.md.
#   make fuzz FUZZ_TARGETS="http sign" FUZZ_SECONDS=600 FUZZ_FLAGS="-fork=1 -ignore_crashes=1"
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 120
FUZZ_FLAGS   ?=
FUZZ_NAMES   := $(patsubst tests/fuzz/fuzz_%.c,%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_TARGETS ?= $(FUZZ_NAMES)
# Largest input per harness: a store image up to 64 KB plus its script; a
# settings record up to one store value; the rest replies and manifests.
FUZZ_MAXLEN_store    := 66000
FUZZ_MAXLEN_settings := 20000
FUZZ_MAXLEN_http     := 16384
FUZZ_MAXLEN_cdnapi   := 16384
FUZZ_MAXLEN_manifest := 16384
FUZZ_MAXLEN_sign     := 8192
# A refused secret logs one line per input: discard the harness's stderr
# (libFuzzer's own output and the sanitizer reports are kept).
FUZZ_OPTS_settings   := -close_fd_mask=2
# Objects a harness needs beyond the components (the manifest harness
# includes firmware/linux/cmd_provision.c, which calls cli_flash.c and cli_opts.c).
FUZZ_EXTRA_manifest  := firmware/linux/cli_flash.c firmware/linux/cli_opts.c firmware/linux/cli_rule.c

FZ          := $(BUILD)/fuzz
FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_COV    := -fsanitize=fuzzer-no-link -fsanitize-coverage-ignorelist=tests/fuzz/coverage-ignore.txt
CFLAGS_fuzz := -std=c11 $(WARN) -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) $(FUZZ_COV)
# Third-party code is compiled as its upstream does: no -Werror on it.
CFLAGS_fuzz_tp := -std=gnu99 -w -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) $(FUZZ_COV)
FUZZ_INC    := -I$(FZ)/include $(INCLUDES) -Iport/posix -Itests/support
FUZZ_LIBS   := -lmbedtls -lmbedx509 -lmbedcrypto
FUZZ_BINS   := $(addprefix $(FZ)/fuzz_,$(FUZZ_NAMES))
FUZZ_REPLAY_BINS := $(addprefix $(BUILD)/replay/bin/fuzz_,$(FUZZ_NAMES))
fobjs = $(patsubst %.c,$(FZ)/obj/%.o,$(1))

.PHONY: fuzz fuzz-build fuzz-replay fuzz-check

# The fetched headers shadow the system's, so the instrumented cJSON and
# http-parser are what every object is compiled against.
$(FZ)/include/.stamp: | $(TP)/.fetched
	@mkdir -p $(FZ)/include
	ln -sfn $(abspath $(TP)/cjson) $(FZ)/include/cjson
	ln -sfn $(abspath $(TP)/http-parser/http_parser.h) $(FZ)/include/http_parser.h
	@touch $@

# Components see only what they declare here too (src_inc), besides the
# instrumented third-party headers.
$(FZ)/obj/%.o: %.c | $(FZ)/include/.stamp $(PORT_API)/port.h
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CFLAGS_fuzz) $(COMP_STRICT) $(if $(filter components/%,$<),-I$(FZ)/include $(call src_inc,$<),$(FUZZ_INC)) -MMD -MP -c $< -o $@

$(FZ)/obj/third_party/http_parser.o: | $(FZ)/include/.stamp
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CFLAGS_fuzz_tp) -I$(FZ)/include -c $(TP)/http-parser/http_parser.c -o $@

$(FZ)/obj/third_party/cJSON.o: | $(FZ)/include/.stamp
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CFLAGS_fuzz_tp) -I$(FZ)/include -c $(TP)/cjson/cJSON.c -o $@

$(FZ)/libcdnagent.a: $(call fobjs,$(COMP_SRCS) $(PORT_SRCS) $(SUPPORT_SRCS)) \
                     $(FZ)/obj/third_party/http_parser.o $(FZ)/obj/third_party/cJSON.o
	rm -f $@ && ar rcs $@ $^

define fuzz_rules
$(FZ)/fuzz_$(1): $(FZ)/obj/tests/fuzz/fuzz_$(1).o $(call fobjs,$(FUZZ_EXTRA_$(1))) $(FZ)/libcdnagent.a
	$$(FUZZ_CC) -fsanitize=fuzzer,address,undefined -o $$@ $$^ $$(FUZZ_LIBS)

$(BUILD)/replay/bin/fuzz_$(1): $(BUILD)/asan/obj/tests/fuzz/fuzz_$(1).o \
        $(BUILD)/asan/obj/tests/fuzz/replay_main.o \
        $(call objs,asan,$(FUZZ_EXTRA_$(1)) $(SUPPORT_SRCS)) $(BUILD)/asan/libcdnagent.a
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS_asan) -o $$@ $$^ $$(HOST_LIBS)
endef
$(foreach n,$(FUZZ_NAMES),$(eval $(call fuzz_rules,$(n))))

# clang from Debian (libFuzzer comes with it), installed on first use.
fuzz-check: deps
	@command -v $(FUZZ_CC) >/dev/null 2>&1 || { echo "fuzz: installing clang"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends clang; }

fuzz-build: fuzz-check $(FUZZ_BINS)

fuzz-replay: $(FUZZ_REPLAY_BINS)

# One harness at a time, each for FUZZ_SECONDS; a crash does not stop the
# others, the status says whether any harness crashed.
fuzz: fuzz-build
	@rc=0; $(foreach n,$(FUZZ_TARGETS),tests/fuzz/run.sh $(FZ) $(FUZZ_SECONDS) $(n) \
	  $(FUZZ_MAXLEN_$(n)) $(FUZZ_OPTS_$(n)) $(FUZZ_FLAGS) || rc=1;) exit $$rc

-include $(shell find $(FZ)/obj -name '*.d' -type f 2>/dev/null)

include tests/coverage.mk

# ----------------------------------------------------------- the two jobs --
deps:
	@tools/deps.sh

# The fleet figures (tools/fleet/fleet.py; README "Fleets"): FLEET_DEVICES daemons under
# one account, a burst of edits, then a 10-minute outage. Not part of make test (which
# runs a 20-device fleet for exactness only: tests/integration/test_fleet).
FLEET_DEVICES ?= 200
FLEET_ARGS    ?=
# Debian's own Python, where python3-matplotlib installs (a python3 of pyenv or a venv
# earlier on PATH would not see it)
FLEET_PYTHON  ?= /usr/bin/python3
fleet: deps all
	@DEPS_EXTRA=python3-matplotlib tools/deps.sh
	$(FLEET_PYTHON) tools/fleet/fleet.py --devices $(FLEET_DEVICES) --cdnagent $(BUILD)/cdnagent \
	    --out $(BUILD)/fleet $(FLEET_ARGS)

npm-deps: $(BUILD)/npm/.stamp
$(BUILD)/npm/.stamp: tools/npm/package.json tools/npm/package-lock.json
	@mkdir -p $(BUILD)/npm
	cp tools/npm/package.json tools/npm/package-lock.json $(BUILD)/npm/
	cd $(BUILD)/npm && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The CLI's tests that run a second time against the CLI built under ASan.
ASAN_CLI_TESTS := test_cli test_cdnapi test_provision

test: deps
	$(MAKE) --no-print-directory npm-deps
	$(MAKE) --no-print-directory all unit-tests fuzz-replay firmware target-images coverage-bins \
	    $(BUILD)/asan/cdnagent
	@$(PYTHON) tests/run_tests.py --build $(BUILD) $(UNIT_BINS) $(FUZZ_REPLAY_BINS) \
	    $(COV_UNIT_BINS) --cov-dir $(COV_DIR) --cov-floor $(COV_LINES),$(COV_BRANCHES) \
	    $(addprefix --cov-skip ,$(COV_SKIP)) --asan-cli $(BUILD)/asan/cdnagent \
	    $(addprefix --asan-test ,$(ASAN_CLI_TESTS))

run: deps
	$(MAKE) --no-print-directory npm-deps all
	@tools/demo.sh $(BUILD)

# The C benchmarks, then cdnagent beside the official SDK (bench-scale).
bench: deps
	$(MAKE) --no-print-directory npm-deps all $(BENCH_BINS)
	@for b in $(BENCH_BINS); do echo "== $$b"; $$b || exit 1; done
	@CDNAGENT_BUILD=$(BUILD) $(PYTHON) tests/bench/scale.py

# cdnagent beside @alicloud/pop-core at 100, 1,000 and 5,000 queued changes
# (tests/bench/scale.py; about two minutes, loopback only)
bench-scale: deps
	$(MAKE) --no-print-directory npm-deps all $(BENCH_BINS)
	@CDNAGENT_BUILD=$(BUILD) $(PYTHON) tests/bench/scale.py

# ------------------------------------------------------------ packaging --
# make install [DESTDIR=...] [PREFIX=/usr/local]: the binary, its man page
# (made from every command's --help: tools/mkman.py), the systemd unit, an
# example configuration and the state directory. make deb: the same staged
# with PREFIX=/usr and packed by Debian's dpkg-deb (tools/mkdeb.sh).
PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
LOCALSTATEDIR ?= /var
DIST       := firmware/linux/dist

$(BUILD)/man/cdnagent.1: $(BUILD)/cdnagent $(DIST)/cdnagent.1.in tools/mkman.py
	@mkdir -p $(@D)
	$(PYTHON) tools/mkman.py $(BUILD)/cdnagent $(DIST)/cdnagent.1.in $@

man: $(BUILD)/man/cdnagent.1

install: $(BUILD)/cdnagent $(BUILD)/man/cdnagent.1
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(UNITDIR) \
	    $(DESTDIR)$(SYSCONFDIR)/cdnagent
	install -m 0755 $(BUILD)/cdnagent $(DESTDIR)$(PREFIX)/bin/cdnagent
	gzip -9n < $(BUILD)/man/cdnagent.1 > $(DESTDIR)$(PREFIX)/share/man/man1/cdnagent.1.gz
	chmod 0644 $(DESTDIR)$(PREFIX)/share/man/man1/cdnagent.1.gz
	sed 's|/usr/bin/cdnagent|$(PREFIX)/bin/cdnagent|' $(DIST)/cdnagent.service \
	    > $(DESTDIR)$(UNITDIR)/cdnagent.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/cdnagent.service
	test -e $(DESTDIR)$(SYSCONFDIR)/cdnagent/cdnagent.conf || \
	    install -m 0644 $(DIST)/cdnagent.conf $(DESTDIR)$(SYSCONFDIR)/cdnagent/cdnagent.conf
	install -d -m 0700 $(DESTDIR)$(LOCALSTATEDIR)/lib/cdnagent

deb: $(BUILD)/cdnagent $(BUILD)/man/cdnagent.1
	sh tools/mkdeb.sh $(BUILD)

.PHONY: man install deb

clean:
	rm -rf $(BUILD)

-include $(shell find $(addprefix $(BUILD)/,$(VARIANTS)) -name '*.d' -type f 2>/dev/null)
