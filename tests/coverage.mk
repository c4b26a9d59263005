# make coverage: line and branch coverage of components/ by the host tests
# (unit tests and the integration tests that drive the CLI), measured with
# gcov and reported by gcovr, with a floor that fails the target.
#
# Included by the top-level Makefile; uses its variables and variant_rules.

COV_LINES    ?= 95
COV_BRANCHES ?= 90
COV_DIR      := $(BUILD)/cov
# Integration tests that do not run the host CLI (QEMU images, the SDK
# referee, the simulator alone) add nothing to components/ coverage.
COV_SKIP     := test_target test_cdnsim test_sdk_conformance

CFLAGS_cov  := -std=c11 $(WARN) -O0 -g --coverage
LDFLAGS_cov := --coverage
$(eval $(call variant_rules,cov))

COV_UNIT_BINS := $(patsubst tests/unit/%.c,$(COV_DIR)/tests/%,$(UNIT_SRCS))
# The helper programs the integration tests run, instrumented too, so the
# code they drive (the TLS transport, the store image writer) is counted.
COV_HELPERS := $(COV_DIR)/bench/http_tls_calls \
               $(patsubst tests/tools/%.c,$(COV_DIR)/tools/%,$(TOOL_SRCS))

$(COV_DIR)/bench/%: $(COV_DIR)/obj/tests/bench/%.o $(call objs,cov,$(SUPPORT_SRCS)) $(COV_DIR)/libcdnagent.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_cov) -o $@ $^ $(HOST_LIBS) -lm

$(COV_DIR)/tools/%: $(COV_DIR)/obj/tests/tools/%.o $(COV_DIR)/libcdnagent.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_cov) -o $@ $^ $(HOST_LIBS)

.PHONY: coverage coverage-report coverage-deps
# gcovr from Debian, installed on first use like tools/deps.sh does.
coverage-deps: deps
	@command -v gcovr >/dev/null 2>&1 || { echo "coverage: installing gcovr"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends gcovr; }

coverage: coverage-deps
	$(MAKE) --no-print-directory npm-deps all $(COV_HELPERS) $(COV_UNIT_BINS) $(COV_DIR)/cdnagent
	@find $(COV_DIR) -name '*.gcda' -delete
	@$(PYTHON) tests/run_tests.py --build $(BUILD) --cdnagent $(COV_DIR)/cdnagent --helpers $(COV_DIR) \
	    $(addprefix --skip ,$(COV_SKIP)) $(COV_UNIT_BINS)
	@$(MAKE) --no-print-directory coverage-report

# The report alone (after a run): per file, then the uncovered lines, then the
# floor check; COV_LINES / COV_BRANCHES set the floor.
coverage-report: coverage-deps
	@cd $(COV_DIR) && gcovr --root $(CURDIR) --object-directory obj/components \
	    --filter '$(CURDIR)/components/' --exclude-unreachable-branches \
	    --exclude-throw-branches --print-summary --txt $(CURDIR)/$(COV_DIR)/coverage.txt \
	    --fail-under-line $(COV_LINES) \
	    --fail-under-branch $(COV_BRANCHES) $(CURDIR)/$(COV_DIR)/obj/components \
	    > $(CURDIR)/$(COV_DIR)/summary.txt; \
	    rc=$$?; cat $(CURDIR)/$(COV_DIR)/summary.txt; exit $$rc
