# Cortex-M build (second pass, run by the top-level Makefile after
# tools/fetch_sources.sh has put the third-party sources in $(TP)).
#
# Two variants of every object:
#   fw   the product image (make firmware): mbedTLS as a TLS client only.
#   tgt  the on-target tests and the firmware scenario: mbedTLS also gets the
#        server side for the scenario's in-image TLS peer, which changes
#        mbedTLS's structs, so everything is compiled again for it.
BUILD      ?= build
CROSS_CC   ?= arm-none-eabi-gcc
CROSS_SIZE ?= arm-none-eabi-size
PYTHON     ?= python3
TP         := $(BUILD)/third_party

COMP_SRCS  := $(sort $(wildcard components/*/src/*.c))
PORT_SRCS  := port/port_common.c $(sort $(wildcard port/cortex-m/*.c))
APP_SRCS   := $(filter-out firmware/cortex-m/main.c,$(sort $(wildcard firmware/cortex-m/*.c)))
SUPPORT_SRCS := $(sort $(wildcard tests/support/*.c))
TGT_SRCS   := $(sort $(wildcard tests/target/*.c))
# The unit tests that run on the target (the others need a file system or
# sockets).
TGT_UNITS  := test_sign test_store test_store_powerloss test_queue_agent test_agent_poll test_cdnapi test_retry

MBEDTLS_SRCS := $(sort $(wildcard $(TP)/mbedtls/library/*.c))
CJSON_SRCS   := $(TP)/cjson/cJSON.c
HTTPP_SRCS   := $(TP)/http-parser/http_parser.c
CMOCKA_SRCS  := $(TP)/cmocka/src/cmocka.c
# lwIP 2.1 (raw API, IPv4, NO_SYS; options in port/lwip/lwipopts.h) and
# the port's transport on it, with the LAN9118's netif.
LWIP_DIR     := $(TP)/lwip/src
LWIP_SRCS    := $(addprefix $(LWIP_DIR)/core/,init.c def.c dns.c inet_chksum.c ip.c mem.c memp.c \
                  netif.c pbuf.c stats.c sys.c tcp.c tcp_in.c tcp_out.c timeouts.c udp.c) \
                $(addprefix $(LWIP_DIR)/core/ipv4/,dhcp.c etharp.c icmp.c ip4.c ip4_addr.c ip4_frag.c) \
                $(LWIP_DIR)/netif/ethernet.c
LWIP_PORT_SRCS := $(sort $(wildcard port/lwip/*.c))

ARCH   := -mcpu=cortex-m4 -mthumb -mfloat-abi=soft
OPT    := -Os -g -ffunction-sections -fdata-sections
WARN   := -Wall -Wextra -Werror
CM_INC := $(BUILD)/cm-include
INCS   := -Iport -Iport/cortex-m $(addprefix -I,$(wildcard components/*/include)) \
          -Ifirmware/cortex-m -I$(TP)/mbedtls/include -I$(CM_INC) -I$(TP)/http-parser \
          -Iport/lwip -I$(LWIP_DIR)/include
# The queue's due cache at 8 entries (168 B of heap, not 672): a device's
# queue is short, and the certificate push must stay within 48 KB of RAM.
DEFS_fw  := -DMBEDTLS_CONFIG_FILE='"mbedtls_config.h"' -DQUEUE_DUE_CACHE=8u
DEFS_tgt := $(DEFS_fw) -DCDNAGENT_MBEDTLS_PEER -DCDNAGENT_TARGET
# The scenario once more with the 4 KB incoming TLS record option
# (mbedtls_config.h), to measure what it saves.
DEFS_mfl := $(DEFS_tgt) -DCDNAGENT_TLS_IN_4K
# Declared dependencies, as in the host build (Makefile): a component sees
# its own headers, those of what it requires, port.h alone, and the
# third-party headers of the libraries it declares.
include $(sort $(wildcard components/*/component.mk))
PORT_API     := $(BUILD)/port-api
# (a visited list, so a cycle, which check_layering.py reports, cannot
# recurse for ever here)
reqs_walk     = $(foreach r,$(filter-out $(2),$($(1)_REQUIRES)),$(r) $(call reqs_walk,$(r),$(2) $(1) $(r)))
reqs_closure  = $(sort $(call reqs_walk,$(1),$(1)))
LIB_INC_mbedtls     := -I$(TP)/mbedtls/include -Ifirmware/cortex-m
LIB_INC_cjson       := -I$(CM_INC)
LIB_INC_http_parser := -I$(TP)/http-parser
comp_inc      = -I$(PORT_API) -Icomponents/$(1)/include -Icomponents/$(1)/src \
                $(foreach r,$(call reqs_closure,$(1)),-Icomponents/$(r)/include) \
                $(foreach l,$(sort $(foreach c,$(1) $(call reqs_closure,$(1)),$($(c)_LIBS))),$(LIB_INC_$(l)))
comp_of       = $(word 2,$(subst /, ,$(1)))
src_inc       = $(if $(filter components/%,$(1)),$(call comp_inc,$(call comp_of,$(1))),$(INCS) -Itests/support -I$(TP)/cmocka/include)
# Our code: C11 without extensions in components/, like the host build.
OWN_CFLAGS  = -std=c11 $(WARN) $(if $(filter components/%,$<),-pedantic-errors,) $(ARCH) $(OPT) \
              -fstack-usage $(call src_inc,$<)
# Third-party code is compiled as its upstream does: no -Werror on it.
TP_CFLAGS   = -std=gnu99 -w $(ARCH) $(OPT) -fstack-usage $(INCS) -I$(TP)/cmocka/include \
              -DHAVE_INTTYPES_H -DHAVE_SIGNAL_H -DHAVE_STRINGS_H
# strtod is named undefined from the start, so that the group's first
# archive (ours: strtod_compact.c) gives it, not newlib, which the linker
# meets first when cJSON asks for it.
LDFLAGS := $(ARCH) --specs=nano.specs -nostartfiles -T firmware/cortex-m/mps2.ld \
           -Wl,--gc-sections -Wl,--no-warn-rwx-segments -Wl,--undefined=strtod

# Files built into the images: the device's manifest and the PEM files it
# names (from the throw-away test PKI), the product's hosts file (its
# endpoint's name under QEMU), plus, for the scenario, its own manifest, the
# peer's server certificate and the recorded cdnsim responses.
FW_MANIFEST ?= tests/target/net/manifest.json
FW_HOSTS    ?= tests/target/net/hosts
SCEN_MANIFEST := tests/target/manifest.json
PKI       := $(BUILD)/testpki
GEN       := $(BUILD)/cm-gen
PEM_BLOBS := ca.crt=$(PKI)/ca.crt cdn.example.com.crt=$(PKI)/cdn.example.com.crt \
             cdn.example.com.key=$(PKI)/cdn.example.com.key
FW_BLOBS  := manifest.json=$(FW_MANIFEST) hosts=$(FW_HOSTS) $(PEM_BLOBS)
TGT_BLOBS := manifest.json=$(SCEN_MANIFEST) $(PEM_BLOBS) server.crt=$(PKI)/server.crt \
             server.key=$(PKI)/server.key recorded.json=tests/target/recorded.json

$(PKI)/done.v4: tools/cdnsim/mkcerts.sh
	sh tools/cdnsim/mkcerts.sh $(PKI)

$(GEN)/fw_blobs.c: $(PKI)/done.v4 $(FW_MANIFEST) $(FW_HOSTS) tools/embed.py
	@mkdir -p $(@D)
	$(PYTHON) tools/embed.py $@ $(FW_BLOBS)
$(GEN)/tgt_blobs.c: $(PKI)/done.v4 $(SCEN_MANIFEST) tests/target/recorded.json tools/embed.py
	@mkdir -p $(@D)
	$(PYTHON) tools/embed.py $@ $(TGT_BLOBS)

objs = $(patsubst %.c,$(BUILD)/cm-$(1)/obj/%.o,$(2))

.PHONY: firmware target-images size
.SECONDARY:

$(PORT_API)/port.h: port/port.h
	@mkdir -p $(@D)
	ln -sfn $(abspath port/port.h) $@

$(CM_INC)/.stamp:
	@mkdir -p $(CM_INC)
	ln -sfn $(abspath $(TP)/cjson) $(CM_INC)/cjson
	@touch $@

define cm_variant
$(BUILD)/cm-$(1)/obj/$(TP)/%.o: $(TP)/%.c $(CM_INC)/.stamp
	@mkdir -p $$(@D)
	@echo "  CC[$(1)] $$<"
	@$(CROSS_CC) $$(TP_CFLAGS) $$(DEFS_$(1)) -MMD -MP -c $$< -o $$@

$(BUILD)/cm-$(1)/obj/%.o: %.c $(CM_INC)/.stamp | $(PORT_API)/port.h
	@mkdir -p $$(@D)
	@echo "  CC[$(1)] $$<"
	@$(CROSS_CC) $$(OWN_CFLAGS) $$(DEFS_$(1)) -MMD -MP -c $$< -o $$@

$(BUILD)/cm-$(1)/libmbedtls.a: $(call objs,$(1),$(MBEDTLS_SRCS))
	@rm -f $$@ && $(CROSS_CC:gcc=ar) rcs $$@ $$^
$(BUILD)/cm-$(1)/libcjson.a: $(call objs,$(1),$(CJSON_SRCS))
	@rm -f $$@ && $(CROSS_CC:gcc=ar) rcs $$@ $$^
$(BUILD)/cm-$(1)/libhttp_parser.a: $(call objs,$(1),$(HTTPP_SRCS))
	@rm -f $$@ && $(CROSS_CC:gcc=ar) rcs $$@ $$^
$(BUILD)/cm-$(1)/libcdnagent.a: $(call objs,$(1),$(COMP_SRCS) $(PORT_SRCS) $(APP_SRCS))
	@rm -f $$@ && $(CROSS_CC:gcc=ar) rcs $$@ $$^
$(BUILD)/cm-$(1)/liblwip.a: $(call objs,$(1),$(LWIP_SRCS))
	@rm -f $$@ && $(CROSS_CC:gcc=ar) rcs $$@ $$^
$(BUILD)/cm-$(1)/libport_lwip.a: $(call objs,$(1),$(LWIP_PORT_SRCS))
	@rm -f $$@ && $(CROSS_CC:gcc=ar) rcs $$@ $$^

# (an archive costs an image nothing it does not call: the scenario and the
# unit images link no lwIP)
LIBS_$(1) := $(BUILD)/cm-$(1)/libcdnagent.a $(BUILD)/cm-$(1)/libport_lwip.a \
             $(BUILD)/cm-$(1)/liblwip.a $(BUILD)/cm-$(1)/libmbedtls.a \
             $(BUILD)/cm-$(1)/libcjson.a $(BUILD)/cm-$(1)/libhttp_parser.a
endef
$(eval $(call cm_variant,fw))
$(eval $(call cm_variant,tgt))
$(eval $(call cm_variant,mfl))

# The product image: the agent, the port, the libraries, firmware/cortex-m.
$(BUILD)/cm-fw/cdnagent.elf: $(call objs,fw,firmware/cortex-m/main.c $(GEN)/fw_blobs.c) $(LIBS_fw) firmware/cortex-m/mps2.ld
	@echo "  LD $@"
	@$(CROSS_CC) $(LDFLAGS) -Wl,-Map=$@.map -o $@ $(filter %.o,$^) \
	    -Wl,--start-group $(LIBS_fw) -lc -lgcc -Wl,--end-group
	@$(CROSS_SIZE) $@

firmware: $(BUILD)/cm-fw/cdnagent.elf

# On-target unit tests: each tests/unit/test_X.c with its main renamed, run
# by tests/target/unit_main.c (TAP output over semihosting).
$(BUILD)/cm-tgt/unit/%.o: tests/unit/%.c $(CM_INC)/.stamp
	@mkdir -p $(@D)
	@echo "  CC[tgt] $<"
	@$(CROSS_CC) $(OWN_CFLAGS) $(DEFS_tgt) -Dmain=unit_test_main -MMD -MP -c $< -o $@

TGT_COMMON := $(call objs,tgt,$(GEN)/tgt_blobs.c)
UNIT_OBJS  := $(call objs,tgt,tests/target/unit_main.c $(SUPPORT_SRCS) $(CMOCKA_SRCS))
SCEN_OBJS  := $(call objs,tgt,$(filter-out tests/target/unit_main.c,$(TGT_SRCS)))

$(BUILD)/cm-tgt/%.elf: $(BUILD)/cm-tgt/unit/%.o $(UNIT_OBJS) $(TGT_COMMON) $(LIBS_tgt) firmware/cortex-m/mps2.ld
	@echo "  LD $@"
	@$(CROSS_CC) $(LDFLAGS) -Wl,-Map=$@.map -o $@ $(filter %.o,$^) \
	    -Wl,--start-group $(LIBS_tgt) -lc -lgcc -Wl,--end-group

$(BUILD)/cm-tgt/scenario.elf: $(SCEN_OBJS) $(TGT_COMMON) $(LIBS_tgt) firmware/cortex-m/mps2.ld
	@echo "  LD $@"
	@$(CROSS_CC) $(LDFLAGS) -Wl,-Map=$@.map -o $@ $(filter %.o,$^) \
	    -Wl,--start-group $(LIBS_tgt) -lc -lgcc -Wl,--end-group

$(BUILD)/cm-mfl/scenario.elf: $(call objs,mfl,$(filter-out tests/target/unit_main.c,$(TGT_SRCS)) \
                              $(GEN)/tgt_blobs.c) $(LIBS_mfl) firmware/cortex-m/mps2.ld
	@echo "  LD $@"
	@$(CROSS_CC) $(LDFLAGS) -Wl,-Map=$@.map -o $@ $(filter %.o,$^) \
	    -Wl,--start-group $(LIBS_mfl) -lc -lgcc -Wl,--end-group

# The network test: lwIP and the LAN9118 under QEMU user networking
# (tests/integration/test_target_net runs it).
$(BUILD)/cm-tgt/net_test.elf: $(call objs,tgt,tests/target/net/net_test.c) $(LIBS_tgt) \
                              firmware/cortex-m/mps2.ld
	@echo "  LD $@"
	@$(CROSS_CC) $(LDFLAGS) -Wl,-Map=$@.map -o $@ $(filter %.o,$^) \
	    -Wl,--start-group $(LIBS_tgt) -lc -lgcc -Wl,--end-group

# End to end: the product's objects (fw: the same mbedTLS configuration,
# so the same RAM) with tests/target/net/e2e.c playing the device
# application, against cdnsim on the host (tests/integration/test_target_e2e).
$(BUILD)/cm-fw/e2e.elf: $(call objs,fw,tests/target/net/e2e.c $(GEN)/fw_blobs.c) $(LIBS_fw) \
                        firmware/cortex-m/mps2.ld
	@echo "  LD $@"
	@$(CROSS_CC) $(LDFLAGS) -Wl,-Map=$@.map -o $@ $(filter %.o,$^) \
	    -Wl,--start-group $(LIBS_fw) -lc -lgcc -Wl,--end-group

target-images: $(addprefix $(BUILD)/cm-tgt/,$(addsuffix .elf,$(TGT_UNITS))) $(BUILD)/cm-tgt/scenario.elf \
               $(BUILD)/cm-mfl/scenario.elf $(BUILD)/cm-tgt/net_test.elf $(BUILD)/cm-fw/e2e.elf

# -nic none: the board's LAN9118 would otherwise get a user network that
# reaches anything.
QEMU := qemu-system-arm -M mps2-an386 -nographic -monitor none -serial none -nic none \
        -semihosting-config enable=on,target=native -kernel

# The RAM figures come from a run of the firmware scenario (make
# test-target writes the same log).
$(BUILD)/cm-tgt/scenario.log: $(BUILD)/cm-tgt/scenario.elf
	$(QEMU) $< > $@.tmp 2>&1 || { cat $@.tmp; exit 1; }
	@mv $@.tmp $@

$(BUILD)/cm-mfl/scenario.log: $(BUILD)/cm-mfl/scenario.elf
	$(QEMU) $< > $@.tmp 2>&1 || { cat $@.tmp; exit 1; }
	@mv $@.tmp $@

# The networked image's RAM comes from the end-to-end run against cdnsim
# (make test-target writes the same log).
$(BUILD)/cm-fw/e2e.log: $(BUILD)/cm-fw/e2e.elf
	CDNAGENT_BUILD=$(BUILD) $(PYTHON) tests/integration/test_target_e2e > $@.tap 2>&1 || \
	    { cat $@.tap; rm -f $@; exit 1; }

size: $(BUILD)/cm-fw/cdnagent.elf $(BUILD)/cm-tgt/scenario.log $(BUILD)/cm-mfl/scenario.log \
      $(BUILD)/cm-fw/e2e.log
	@$(PYTHON) tools/size_table.py --size $(CROSS_SIZE) --map $(BUILD)/cm-fw/cdnagent.elf.map \
	    --scenario-log $(BUILD)/cm-tgt/scenario.log --option-log $(BUILD)/cm-mfl/scenario.log \
	    --e2e-log $(BUILD)/cm-fw/e2e.log

-include $(shell find $(BUILD)/cm-fw $(BUILD)/cm-tgt $(BUILD)/cm-mfl -name '*.d' -type f 2>/dev/null)
