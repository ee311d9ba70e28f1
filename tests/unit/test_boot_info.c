/* test_boot_info.c - the kernel's acceptance of the loader's boot_info. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "kernel/lib/boot.h"

static struct boot_info *good(void)
{
	struct boot_info *bi = calloc(1, sizeof *bi);
	bi->magic = BOOT_INFO_MAGIC;
	bi->version = BOOT_INFO_VERSION;
	bi->size = sizeof *bi;
	strcpy(bi->cmdline, "selftest");
	bi->cmdline_len = 8;
	bi->mmap_count = 3;
	bi->mmap[0] = (struct boot_mem_region){ 0x0, 160, BOOT_MEM_USABLE, 7 };
	bi->mmap[1] = (struct boot_mem_region){ 0x100000, 1024, BOOT_MEM_RECLAIMABLE, 4 };
	bi->mmap[2] = (struct boot_mem_region){ 0x600000, 256, BOOT_MEM_BOOTINFO, 0x80000002u };
	return bi;
}

static void test_accepts_and_copies(void **state)
{
	struct boot_info *bi = good();
	const char *why = NULL;
	assert_int_equal(boot_info_save(bi, &why), 0);
	const struct boot_info *copy = boot_info_get();
	assert_ptr_not_equal(copy, bi);
	memset(bi, 0xaa, sizeof *bi);   /* the loader's memory gets reused */
	assert_string_equal(copy->cmdline, "selftest");
	assert_int_equal(boot_info_usable_bytes(copy), (160 + 1024 + 256) * 4096ull);
	free(bi);
}

static void expect_reject(struct boot_info *bi, const char *reason)
{
	const char *why = NULL;
	assert_int_equal(boot_info_save(bi, &why), -1);
	assert_non_null(why);
	assert_non_null(strstr(why, reason));
	free(bi);
}

static void test_rejects(void **state)
{
	const char *why;
	assert_int_equal(boot_info_save(NULL, &why), -1);
	struct boot_info *bi;
	bi = good(); bi->magic ^= 1; expect_reject(bi, "magic");
	bi = good(); bi->version = 99; expect_reject(bi, "version");
	bi = good(); bi->size -= 8; expect_reject(bi, "size");
	bi = good(); bi->mmap_count = 0; expect_reject(bi, "count");
	bi = good(); bi->mmap_count = BOOT_MMAP_MAX + 1; expect_reject(bi, "count");
	bi = good(); bi->cmdline_len = BOOT_CMDLINE_MAX; expect_reject(bi, "command line");
	bi = good(); bi->cmdline_len = 3; expect_reject(bi, "command line");
	bi = good(); bi->mmap[1].type = 0; expect_reject(bi, "malformed");
	bi = good(); bi->mmap[1].type = BOOT_MEM_TYPE_COUNT; expect_reject(bi, "malformed");
	bi = good(); bi->mmap[1].base = 0x100001; expect_reject(bi, "malformed");
	bi = good(); bi->mmap[2].pages = UINT64_MAX / 2; expect_reject(bi, "malformed");
	bi = good(); bi->mmap[1].base = 0x80000; expect_reject(bi, "overlapping");
	bi = good(); bi->mmap[2].base = 0x0; expect_reject(bi, "overlapping");
}

static void test_type_names(void **state)
{
	assert_string_equal(boot_mem_type_name(BOOT_MEM_USABLE), "usable");
	assert_string_equal(boot_mem_type_name(BOOT_MEM_EFI_RUNTIME), "efi-runtime");
	assert_string_equal(boot_mem_type_name(1000), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepts_and_copies),
		cmocka_unit_test(test_rejects),
		cmocka_unit_test(test_type_names),
	};
	return cmocka_run_group_tests_name("boot_info", tests, NULL, NULL);
}
