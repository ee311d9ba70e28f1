/* test_pci_msix.c - where an MSI-X table may live (pci_msix_locate). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "drivers/pci/msix.h"

static struct pci_bar bars[6];

static int setup(void **state)
{
	memset(bars, 0, sizeof bars);
	bars[1] = (struct pci_bar){ .addr = 0xc1000000, .size = 0x1000 };          /* QEMU: table in BAR1 */
	bars[4] = (struct pci_bar){ .addr = 0xe000000000ull, .size = 0x4000, .mem64 = 1 };
	bars[0] = (struct pci_bar){ .addr = 0xc000, .size = 0x40, .io = 1 };
	return 0;
}

static void test_qemu_layout(void **state)
{
	uint64_t pa; uint16_t n; const char *why = NULL;
	assert_int_equal(pci_msix_locate(0x0002, 0x00000001, bars, &pa, &n, &why), 0);   /* 3 entries, BAR1 + 0 */
	assert_int_equal(pa, 0xc1000000);
	assert_int_equal(n, 3);
	assert_int_equal(pci_msix_locate(0x07ff, 0x00000004 | 0x800, bars, &pa, &n, &why), -1);  /* 2048 x 16 > 16K-2K */
	assert_int_equal(pci_msix_locate(0x00ff, 0x00000004 | 0x800, bars, &pa, &n, &why), 0);
	assert_int_equal(pa, 0xe000000800ull);
	assert_int_equal(n, 256);
}

static void test_bad_tables(void **state)
{
	uint64_t pa = 0; uint16_t n = 0; const char *why = NULL;
	assert_int_equal(pci_msix_locate(0, 6, bars, &pa, &n, &why), -1);          /* BIR 6 */
	assert_non_null(strstr(why, "does not exist"));
	assert_int_equal(pci_msix_locate(0, 0, bars, &pa, &n, &why), -1);          /* I/O BAR */
	assert_non_null(strstr(why, "memory BAR"));
	assert_int_equal(pci_msix_locate(0, 2, bars, &pa, &n, &why), -1);          /* unassigned */
	assert_int_equal(pci_msix_locate(0, 1 | 0x1000, bars, &pa, &n, &why), -1); /* offset at the end */
	assert_non_null(strstr(why, "past the end"));
	assert_int_equal(pci_msix_locate(0, 1 | 0xfff8, bars, &pa, &n, &why), -1); /* offset beyond */
	assert_int_equal(pci_msix_locate(0x00ff, 1, bars, &pa, &n, &why), 0);       /* exactly 4 KiB */
	assert_int_equal(pci_msix_locate(0x0100, 1, bars, &pa, &n, &why), -1);      /* one entry too many */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_qemu_layout, setup),
		cmocka_unit_test_setup(test_bad_tables, setup),
	};
	return cmocka_run_group_tests_name("pci_msix", tests, NULL, NULL);
}
