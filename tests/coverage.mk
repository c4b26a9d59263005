# make coverage: line and branch coverage of components/ by the host tests
# (unit tests and the integration tests that drive the CLI), measured with
# gcov and reported by gcovr, with a floor that fails the target.
#
# Included by the top-level Makefile; uses its variables and variant_rules.

COV_LINES    ?= 98
COV_BRANCHES ?= 95
COV_DIR      := $(BUILD)/cov
# Integration tests that do not run the host CLI (the QEMU images and their
# recording, the network images, the simulator and its SDK referee, the
# package) add nothing to components/, nor does the fleet (its daemons run what test_agent
# and test_delivery measure already).
COV_SKIP     := test_target test_target_recording test_target_net test_target_e2e test_cdnsim \
                test_cdnsim_referee test_package test_fleet

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

.PHONY: coverage coverage-report coverage-bins
# Everything the instrumented pass runs (make test builds it too).
coverage-bins: $(COV_HELPERS) $(COV_UNIT_BINS) $(COV_DIR)/cdnagent

# The instrumented pass alone: unit tests, then the integration tests with
# the instrumented CLI, then the floor (make test runs the same pass after
# its own, so CI holds the floor).
coverage: deps
	$(MAKE) --no-print-directory npm-deps all coverage-bins
	@$(PYTHON) tests/run_tests.py --build $(BUILD) --cov-only --cov-dir $(COV_DIR) \
	    --cov-floor $(COV_LINES),$(COV_BRANCHES) $(addprefix --cov-skip ,$(COV_SKIP)) \
	    $(COV_UNIT_BINS)

# The report and floor alone, from the counts of the last run.
coverage-report: deps
	@$(PYTHON) tests/coverage_floor.py --cov-dir $(COV_DIR) --lines $(COV_LINES) \
	    --branches $(COV_BRANCHES)

# Header dependencies of the instrumented objects (the top-level Makefile
# reads those of its own variants only): a changed header rebuilds them.
-include $(shell find $(COV_DIR)/obj -name '*.d' -type f 2>/dev/null)
