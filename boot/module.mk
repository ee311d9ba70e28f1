# boot/module.mk - see the top of Makefile for what these variables mean.
#
# The UEFI loader: thin firmware shells (main, console, file, fwcfg,
# cmdline_source, platform, handoff) around pure logic (elf_check,
# cmdline_text, paging, mmap_convert) that the host unit tests link directly.

BOOT_LOGIC := boot/elf_check.c boot/cmdline_text.c boot/paging.c boot/mmap_convert.c
LOADER_SRCS := boot/main.c boot/console.c boot/file.c boot/fwcfg.c boot/cmdline_source.c \
               boot/platform.c boot/handoff.c $(BOOT_LOGIC)

UNIT_TESTS += test_elf_check test_mmap_convert test_boot_paging test_boot_cmdline
test_elf_check_SRCS     := tests/unit/test_elf_check.c boot/elf_check.c
test_mmap_convert_SRCS  := tests/unit/test_mmap_convert.c boot/mmap_convert.c
test_boot_paging_SRCS   := tests/unit/test_boot_paging.c boot/paging.c
test_boot_cmdline_SRCS  := tests/unit/test_boot_cmdline.c boot/cmdline_text.c
