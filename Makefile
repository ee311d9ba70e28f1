# balloon unikernel - the whole build, visible here.
#
#   make deps    install the Debian packages everything below needs (root or sudo)
#   make         newlib, the UEFI loader, the kernel and a bootable GPT disk image
#   make run     boot the image in QEMU (q35, TCG, OVMF, virtio-balloon, QMP socket)
#   make test    host unit tests (cmocka, ASan+UBSan) and QEMU boot tests
#   make bench   benchmarks, JSON on stdout and in build/bench.json
#   make image   just the disk image (build/balloon.img)
#
# Each source directory lists its files in a module.mk fragment (included
# below) so adding a file never means editing this one:
#   KERNEL_SRCS  += files linked into the kernel ELF
#   UNIT_TESTS   += name; name_SRCS := the test plus the logic it links
#   BENCH_HOST   += name; name_SRCS := a host benchmark printing one JSON object

BUILD   ?= build
Q       ?= @
SHELL   := /bin/bash

# ---------------------------------------------------------------- packages
DEBIAN_PKGS := gnu-efi ovmf qemu-system-x86 newlib-source libcmocka-dev mtools \
               dosfstools gdisk python3 make gcc binutils xz-utils clang \
               libclang-rt-14-dev valgrind
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all image run test unit qemu-test bench deps deps-check clean distclean fuzz soak FORCE

all: image

deps:
	$(SUDO) apt-get update -q
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $(DEBIAN_PKGS)

# One file per package we cannot build without. Every build step depends on
# this check (order-only), so `make run` / `make test` on a fresh machine
# install what is missing first instead of failing half-way.
DEPS_FILES := /usr/lib/crt0-efi-x86_64.o /usr/share/OVMF/OVMF_CODE_4M.fd \
              /usr/bin/qemu-system-x86_64 /usr/src/newlib/newlib-3.3.0.tar.xz \
              /usr/include/cmocka.h /usr/bin/mcopy /usr/sbin/mkfs.fat /usr/sbin/sgdisk \
              /usr/bin/python3 /usr/bin/clang-14
deps-check:
	@missing=; for f in $(DEPS_FILES); do [ -e $$f ] || missing="$$missing $$f"; done; \
	if [ -n "$$missing" ]; then echo "missing:$$missing; running 'make deps'"; $(MAKE) --no-print-directory deps; fi

# ---------------------------------------------------------------- newlib
# Debian ships newlib only as a source tarball; build it once for a
# freestanding x86_64 target with the kernel's code model and no red zone
# (interrupts run on the interrupted stack). Cached in $(BUILD)/newlib.
NEWLIB_TARBALL := /usr/src/newlib/newlib-3.3.0.tar.xz
NEWLIB_CFLAGS  := -O2 -ffreestanding -fno-stack-protector -fno-pic -fno-pie \
                  -mno-red-zone -mcmodel=kernel -fno-omit-frame-pointer
NEWLIB_CONF    := --target=x86_64-elf --host=x86_64-elf --disable-multilib \
                  --disable-newlib-supplied-syscalls --enable-newlib-io-long-long \
                  --enable-newlib-io-c99-formats
# The cache is keyed by the flags, so changing them rebuilds newlib.
NEWLIB_ID      := $(shell echo '$(NEWLIB_CFLAGS) $(NEWLIB_CONF)' | md5sum | cut -c1-8)
NEWLIB_DIR     := $(BUILD)/newlib-$(NEWLIB_ID)
NEWLIB_PREFIX  := $(abspath $(NEWLIB_DIR)/install)
NEWLIB_LIBC    := $(NEWLIB_PREFIX)/x86_64-elf/lib/libc.a
NEWLIB_INC     := $(NEWLIB_PREFIX)/x86_64-elf/include

# Built in a private directory and renamed into place at the end, so an
# interrupted or concurrent build never leaves a half-built cache behind.
$(NEWLIB_LIBC): | deps-check
	@test -f $(NEWLIB_TARBALL) || { echo "error: $(NEWLIB_TARBALL) missing: run 'make deps'"; exit 1; }
	@echo "  NEWLIB  (once, ~1 min)"
	$(Q)t=$(abspath $(NEWLIB_DIR)).tmp.$$$$ && rm -rf $$t && mkdir -p $$t/bin $$t/obj && \
	printf '#!/bin/sh\nexec gcc $(NEWLIB_CFLAGS) "$$@"\n' > $$t/bin/x86_64-elf-gcc && chmod +x $$t/bin/x86_64-elf-gcc && \
	for tool in ar as ld nm objcopy objdump ranlib readelf strip; do \
		ln -sf $$(command -v $$tool) $$t/bin/x86_64-elf-$$tool; done && \
	tar -xJf $(NEWLIB_TARBALL) -C $$t && \
	cd $$t/obj && export PATH=$$t/bin:$$PATH && \
	{ ../newlib-salsa/newlib/configure $(NEWLIB_CONF) --prefix=$$t/install \
		CC=x86_64-elf-gcc AR=x86_64-elf-ar RANLIB=x86_64-elf-ranlib > ../configure.log 2>&1 \
		|| { echo "newlib configure failed: see $$t/configure.log"; exit 1; }; } && \
	{ $(MAKE) -j$$(nproc) > ../build.log 2>&1 || { tail -30 ../build.log; exit 1; }; } && \
	$(MAKE) install > ../install.log 2>&1 && cd / && rm -rf $$t/newlib-salsa $$t/obj && \
	rm -rf $(abspath $(NEWLIB_DIR)) && mv $$t $(abspath $(NEWLIB_DIR))

# ---------------------------------------------------------------- modules
KERNEL_SRCS :=
UNIT_TESTS  :=
BENCH_HOST  :=
# Every header, so host binaries rebuild when any contract changes.
ALL_HEADERS := $(shell find include kernel mm drivers app boot tests/unit -name '*.h')
# Lowest layer first (kernel/lib, kernel/arch -> mm -> drivers -> app): the
# link order, and with it the order of initcalls within a level.
include boot/module.mk kernel/lib/module.mk kernel/arch/module.mk mm/module.mk \
        drivers/pci/module.mk drivers/virtio/module.mk drivers/balloon/module.mk \
        drivers/virtio_mem/module.mk app/module.mk kernel/module.mk tests/module.mk

# ---------------------------------------------------------------- loader (GNU-EFI)
EFI_INC    := /usr/include/efi
EFI_CFLAGS := -std=gnu11 -O2 -Wall -Wextra -fpic -ffreestanding -fno-stack-protector \
              -fno-stack-check -fshort-wchar -mno-red-zone -maccumulate-outgoing-args \
              -DGNU_EFI_USE_MS_ABI -I$(EFI_INC) -I$(EFI_INC)/x86_64 -Iinclude -I.
EFI_LDS    := /usr/lib/elf_x86_64_efi.lds
EFI_CRT0   := /usr/lib/crt0-efi-x86_64.o
LOADER_OBJS := $(patsubst %.c,$(BUILD)/efi/%.o,$(LOADER_SRCS))

$(BUILD)/efi/%.o: %.c | deps-check
	@mkdir -p $(dir $@)
	@echo "  EFICC   $<"
	$(Q)gcc $(EFI_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/loader.so: $(LOADER_OBJS)
	$(Q)ld -shared -Bsymbolic -nostdlib -T $(EFI_LDS) $(EFI_CRT0) $^ -L/usr/lib -lgnuefi -lefi -o $@

$(BUILD)/BOOTX64.EFI: $(BUILD)/loader.so
	@echo "  EFI     $@"
	$(Q)objcopy -j .text -j .sdata -j .data -j .rodata -j .dynamic -j .dynsym -j .rel \
		-j .rela -j '.rel.*' -j '.rela.*' -j .reloc --target efi-app-x86_64 --subsystem=10 $< $@

# ---------------------------------------------------------------- kernel
KCFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Wno-unused-parameter -ffreestanding \
           -fno-stack-protector -fno-pic -fno-pie -mno-red-zone -mcmodel=kernel \
           -fno-omit-frame-pointer -fno-strict-aliasing -Iinclude -I. -isystem $(NEWLIB_INC)
KERNEL_OBJS := $(patsubst %,$(BUILD)/k/%.o,$(KERNEL_SRCS))

$(BUILD)/k/%.c.o: %.c | $(NEWLIB_LIBC)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)gcc $(KCFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/k/%.S.o: %.S
	@mkdir -p $(dir $@)
	@echo "  AS      $<"
	$(Q)gcc $(KCFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/kernel.elf: $(KERNEL_OBJS) linker/kernel.ld $(NEWLIB_LIBC)
	@echo "  LD      $@"
	$(Q)ld -nostdlib -static -z max-page-size=4096 -z noexecstack -T linker/kernel.ld \
		-o $@ $(KERNEL_OBJS) $(NEWLIB_PREFIX)/x86_64-elf/lib/libc.a \
		$(NEWLIB_PREFIX)/x86_64-elf/lib/libm.a $$(gcc -print-libgcc-file-name)

# The image carries a stripped copy; build/kernel.elf keeps the symbols for gdb.
$(BUILD)/kernel.stripped: $(BUILD)/kernel.elf
	$(Q)strip --strip-debug -o $@ $<

# ---------------------------------------------------------------- disk image
# GPT disk: 1 MiB head, one EFI system partition (FAT), 1 MiB tail for the
# backup GPT. Built without root: mkfs.fat + mtools on a file, sgdisk on the disk.
ESP_MIB  := 16
IMAGE    := $(BUILD)/balloon.img
CMDLINE_DEFAULT ?=

# Rewritten only when CMDLINE_DEFAULT changes, so the image follows it.
$(BUILD)/cmdline.txt: FORCE
	@mkdir -p $(BUILD)
	$(Q)printf '%s\n' '$(CMDLINE_DEFAULT)' > $@.new; cmp -s $@.new $@ && rm -f $@.new || mv $@.new $@

$(BUILD)/esp.img: $(BUILD)/BOOTX64.EFI $(BUILD)/kernel.stripped $(BUILD)/cmdline.txt | deps-check
	@echo "  ESP     $@"
	$(Q)rm -f $@ && mkfs.fat -C -F 16 -n BALLOON $@ $$(( $(ESP_MIB) * 1024 )) > /dev/null
	$(Q)mmd -i $@ ::/EFI ::/EFI/BOOT
	$(Q)mcopy -i $@ $(BUILD)/BOOTX64.EFI ::/EFI/BOOT/BOOTX64.EFI
	$(Q)mcopy -i $@ $(BUILD)/kernel.stripped ::/kernel.elf
	$(Q)mcopy -i $@ $(BUILD)/cmdline.txt ::/cmdline.txt

$(IMAGE): $(BUILD)/esp.img
	@echo "  IMAGE   $@"
	$(Q)rm -f $@ && truncate -s $$(( ($(ESP_MIB) + 2) * 1024 * 1024 )) $@
	$(Q)sgdisk -o -n 1:2048:+$(ESP_MIB)M -t 1:ef00 -c 1:"EFI system" $@ > /dev/null
	$(Q)dd if=$(BUILD)/esp.img of=$@ bs=1M seek=1 conv=notrunc status=none

image: $(IMAGE)

# ---------------------------------------------------------------- run
QEMU_RUN_MEM ?= 1024
QMP_SOCK     ?= $(BUILD)/qmp.sock
run: $(IMAGE)
	$(Q)cp /usr/share/OVMF/OVMF_VARS_4M.fd $(BUILD)/ovmf_vars.fd
	@echo "Booting $(IMAGE): serial console here, QMP at $(QMP_SOCK). Quit: Ctrl-A X"
	qemu-system-x86_64 -machine q35,accel=tcg -cpu max -m $(QEMU_RUN_MEM) -nodefaults \
		-display none -no-user-config -net none \
		-drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
		-drive if=pflash,format=raw,file=$(BUILD)/ovmf_vars.fd \
		-drive format=raw,file=$(IMAGE),if=virtio \
		-device pcie-root-port,id=rp0,chassis=1 \
		-device virtio-balloon-pci,id=balloon0,bus=rp0,deflate-on-oom=on,free-page-reporting=on \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
		-qmp unix:$(QMP_SOCK),server=on,wait=off \
		-serial mon:stdio $(QEMU_EXTRA)

# ---------------------------------------------------------------- host unit tests
HOST_CC     ?= gcc
HOST_CFLAGS := -std=gnu11 -O1 -g -Wall -Wextra -Wno-unused-parameter -fno-omit-frame-pointer \
               -fsanitize=address,undefined -fno-sanitize-recover=undefined \
               -DHOST_TEST -Iinclude -I. -Itests/unit
HOST_SUPPORT := tests/unit/host_support.c kernel/lib/klog.c kernel/lib/fmt.c

define unit_rule
$(BUILD)/unit/$(1): $$($(1)_SRCS) $(HOST_SUPPORT) $(ALL_HEADERS) | deps-check
	@mkdir -p $$(dir $$@)
	@echo "  HOSTCC  $$@"
	$$(Q)$$(HOST_CC) $$(HOST_CFLAGS) $$($(1)_SRCS) $(HOST_SUPPORT) -lcmocka -o $$@
endef
$(foreach t,$(UNIT_TESTS),$(eval $(call unit_rule,$(t))))

unit: $(addprefix $(BUILD)/unit/,$(UNIT_TESTS))
	$(Q)python3 tests/run_unit.py $(BUILD) $(UNIT_TESTS)

# ---------------------------------------------------------------- QEMU boot tests
qemu-test: $(IMAGE)
	$(Q)python3 tests/qemu/run_boot_tests.py --build $(BUILD) --image $(IMAGE)

test: $(IMAGE) $(addprefix $(BUILD)/unit/,$(UNIT_TESTS))
	$(Q)rm -rf $(BUILD)/results && mkdir -p $(BUILD)/results
	$(Q)python3 tests/run_unit.py $(BUILD) $(UNIT_TESTS); u=$$?; \
	python3 tests/host/run_host_tests.py $(BUILD); h=$$?; \
	python3 tests/qemu/run_boot_tests.py --build $(BUILD) --image $(IMAGE); q=$$?; \
	$(MAKE) --no-print-directory fuzz-smoke; f=$$?; \
	python3 tests/summary.py $(BUILD)/results; s=$$?; \
	[ $$u = 0 ] && [ $$h = 0 ] && [ $$q = 0 ] && [ $$f = 0 ] && [ $$s = 0 ]

# ---------------------------------------------------------------- benchmarks
BENCH_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Wno-unused-parameter -DHOST_TEST -DNDEBUG \
                -Iinclude -I. -Itests/unit

define bench_rule
$(BUILD)/bench/$(1): $$($(1)_SRCS) $(HOST_SUPPORT)
	@mkdir -p $$(dir $$@)
	@echo "  HOSTCC  $$@"
	$$(Q)$$(HOST_CC) $$(BENCH_CFLAGS) $$($(1)_SRCS) $(HOST_SUPPORT) -o $$@
endef
$(foreach b,$(BENCH_HOST),$(eval $(call bench_rule,$(b))))

bench: $(IMAGE) $(addprefix $(BUILD)/bench/,$(BENCH_HOST))
	$(Q)python3 bench/run_bench.py --build $(BUILD) --image $(IMAGE) $(BENCH_HOST)

clean:
	rm -rf $(BUILD)/k $(BUILD)/efi $(BUILD)/unit $(BUILD)/bench $(BUILD)/*.elf \
		$(BUILD)/*.EFI $(BUILD)/*.so $(BUILD)/*.img $(BUILD)/results $(BUILD)/qemu \
		$(BUILD)/fuzz $(BUILD)/soak

distclean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/k $(BUILD)/efi -name '*.d' 2>/dev/null)
