# tests/module.mk - the in-guest self-tests, and reliability: the
# hostile-device suite, fuzzing, the soak.
# See the top of Makefile for what KERNEL_SRCS / UNIT_TESTS / name_SRCS mean.

# ---------------------------------------------------------------- in-guest self-tests
# Linked into the kernel; they run in this order with `selftest`.
KERNEL_SRCS += tests/guest/core_tests.c tests/guest/mm_tests.c tests/guest/virtio_balloon_tests.c \
               tests/guest/balloon_feature_tests.c tests/guest/balloon_recovery_tests.c \
               tests/guest/app_tests.c tests/guest/vmem_tests.c

# ---------------------------------------------------------------- hostile devices
# The whole driver stack (the kernel's device shell virtio_balloon.c,
# transport, virtqueues, balloon core) against a simulated device that
# misbehaves, over memory that checks every frame's owner; fake_hostile_sys.c
# is the kernel around the shell (PCI, interrupts, memory, the work loop).
HOSTILE_FAKES := tests/unit/fake_hostile_sys.c tests/unit/fake_hostile_dev.c tests/unit/fake_balloon_mem.c \
                 tests/unit/fake_virtio_dev.c tests/unit/fake_virtio_pci.c

HOSTILE_DRIVERS := $(PCI_LOGIC) drivers/pci/msix.c $(VIRTIO_LOGIC) $(BALLOON_LOGIC) \
                   drivers/balloon/virtio_balloon.c kernel/lib/wake.c

UNIT_TESTS += test_hostile_device test_hostile_reporting test_hostile_virtq
test_hostile_device_SRCS    := tests/unit/test_hostile_device.c tests/unit/hostile_fixture.c $(HOSTILE_DRIVERS) $(HOSTILE_FAKES)
test_hostile_reporting_SRCS := tests/unit/test_hostile_reporting.c tests/unit/hostile_fixture.c $(HOSTILE_DRIVERS) $(HOSTILE_FAKES)
test_hostile_virtq_SRCS     := tests/unit/test_hostile_virtq.c $(PCI_LOGIC) $(VIRTIO_LOGIC) $(BALLOON_LOGIC) \
                               tests/unit/fake_virtio_dev.c tests/unit/fake_virtio_pci.c

# ---------------------------------------------------------------- fuzzing
# libFuzzer targets (clang-14, ASan + UBSan): used-ring processing, config
# and feature handling (with everything a device can do after that), the
# command line, PCI config space (bus walk, capability lists, the virtio
# capability walk, MSI-X) and the ACPI MADT. `make fuzz` runs each until
# FUZZ_RUNS executions (if set) or FUZZ_SECONDS, whichever comes first,
# FUZZ_JOBS libFuzzer runs at a time (a target may be split in parts, below), on a corpus kept in $(BUILD)/fuzz/corpus/
# <target>/, and prints executions, exec/s and the corpus before and after,
# e.g. `nice -n 19 make fuzz FUZZ_RUNS=10000000 FUZZ_SECONDS=3600`; `make fuzz-smoke`
# (part of `make test`) runs each from its seed corpus (tests/fuzz/corpus/
# <target>/) for a fixed number of inputs (<target>_SMOKE_RUNS, else
# FUZZ_SMOKE_RUNS; a few seconds each) and writes $(BUILD)/results/fuzz.txt.
FUZZ_CC         ?= clang-14
FUZZ_SECONDS    ?= 60
FUZZ_RUNS       ?= 0
FUZZ_JOBS       ?= 1
FUZZ_SMOKE_RUNS ?= 2000
# the same as HOST_SUPPORT, which the Makefile defines only after including this file
FUZZ_SUPPORT    := tests/unit/host_support.c kernel/lib/klog.c kernel/lib/fmt.c
FUZZ_CFLAGS     := -std=gnu11 -O2 -g -Wall -Wextra -Wno-unused-parameter -fno-omit-frame-pointer \
                   -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
                   -fsanitize-coverage-ignorelist=tests/fuzz/coverage_ignore.txt \
                   -DHOST_TEST -Iinclude -I. -Itests/unit

FUZZ_TARGETS := fuzz_virtq fuzz_balloon_device fuzz_cmdline fuzz_pci_caps
fuzz_virtq_SRCS          := tests/fuzz/fuzz_virtq.c drivers/virtio/virtq.c
fuzz_balloon_device_SRCS := tests/fuzz/fuzz_balloon_device.c $(HOSTILE_DRIVERS) $(HOSTILE_FAKES)
fuzz_cmdline_SRCS        := tests/fuzz/fuzz_cmdline.c kernel/lib/cmdline.c
fuzz_pci_caps_SRCS       := tests/fuzz/fuzz_pci_caps.c $(PCI_LOGIC) drivers/pci/msix.c drivers/virtio/virtio_pci.c \
                            drivers/virtio/virtq.c
fuzz_pci_caps_SMOKE_RUNS := 20000
fuzz_virtq_SMOKE_RUNS    := 20000
fuzz_cmdline_SMOKE_RUNS  := 50000
fuzz_balloon_device_SMOKE_RUNS := 10000
# Per target (run_fuzz.py): the longest input and, for `make fuzz`, how many
# libFuzzer runs share its executions (the pool runs them like targets, so
# the slow one uses both cores once the others are done). fuzz_balloon_device
# simulates a whole guest per input, about 3 bytes per device action: 128
# bytes are programs of ~40 actions. Capped at 4096 bytes, inputs grew to
# 1300 bytes within two hours and the run slowed from 1700 to 80 inputs/s,
# with the same coverage (869-874 edges from the same corpus at 128, 256, 512
# and 4096); long runs of the driver are the hostile-device suite's and the
# soak's job.
fuzz_balloon_device_FUZZ_OPTS := max_len=128:parts=3
FUZZ_BINS := $(addprefix $(BUILD)/fuzz/,$(FUZZ_TARGETS))

define fuzz_rule
$(BUILD)/fuzz/$(1): $$($(1)_SRCS) $(FUZZ_SUPPORT) $(ALL_HEADERS) tests/fuzz/coverage_ignore.txt | deps-check
	@mkdir -p $$(dir $$@)
	@echo "  FUZZCC  $$@"
	$$(Q)$$(FUZZ_CC) $$(FUZZ_CFLAGS) $$($(1)_SRCS) $(FUZZ_SUPPORT) -o $$@
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call fuzz_rule,$(t))))

.PHONY: fuzz-smoke
fuzz: $(FUZZ_BINS)
	$(Q)python3 tests/fuzz/run_fuzz.py --build $(BUILD) --seconds $(FUZZ_SECONDS) --runs $(FUZZ_RUNS) \
		--jobs $(FUZZ_JOBS) $(foreach t,$(FUZZ_TARGETS),$(t)$(if $($(t)_FUZZ_OPTS),:$($(t)_FUZZ_OPTS)))

# Builds what it can (-k) so a target that does not compile is a FAIL line, not a stop.
fuzz-smoke:
	$(Q)$(MAKE) --no-print-directory -s -k $(FUZZ_BINS) || true
	$(Q)python3 tests/fuzz/run_fuzz.py --build $(BUILD) --smoke --runs $(FUZZ_SMOKE_RUNS) \
		$(foreach t,$(FUZZ_TARGETS),$(t)$(if $($(t)_SMOKE_RUNS),:$($(t)_SMOKE_RUNS))$(if $($(t)_FUZZ_OPTS),:$($(t)_FUZZ_OPTS)))

# ---------------------------------------------------------------- soak
# One guest under SOAK_CYCLES random balloon targets with a checksummed
# workload (about 3 minutes under TCG for the default 500 here); not part of `make test`.
SOAK_CYCLES ?= 500
SOAK_SEED   ?= 1
soak: $(BUILD)/balloon.img
	$(Q)python3 tests/soak/soak.py --build $(BUILD) --image $(BUILD)/balloon.img --cycles $(SOAK_CYCLES) --seed $(SOAK_SEED)
