/*
 * kernel.c - the virtio-mem core's memory seam (struct vmem_mem_ops, contract
 * in vmem.h) bound to mm/'s public calls:
 *   hot_add    -> mm_hot_add     (maps the range, frames free, not resident)
 *   hot_remove -> mm_hot_remove  (all-or-nothing, frames moved, range unmapped)
 *   block_info -> mm_block_info
 *   free_pages -> mm_free_pages
 *   overlaps_ram: any region of the boot memory map, or anything below the
 *     allocator's span at start (boot RAM) - the device region must be
 *     memory nobody else describes.
 * mm's error codes become the core's (vmem_mem_err); ctx is unused.
 */
#include <stdint.h>
#include "drivers/virtio_mem/virtio_mem.h"
#include "kernel/lib/boot.h"
#include "mm/mm.h"

_Static_assert((int)VMEM_BK_UNMOVABLE == (int)BK_UNMOVABLE && (int)VMEM_BK_MOVABLE == (int)BK_MOVABLE &&
               (int)VMEM_BK_FREE == (int)BK_FREE && (int)VMEM_BK_BALLOON == (int)BK_BALLOON &&
               (int)VMEM_BK_ISOLATED == (int)BK_ISOLATED && (int)VMEM_BK_ABSENT == (int)BK_ABSENT,
               "vmem block kinds are mm's");

static int err(int mm)
{
	switch (mm) {
	case MM_OK:     return VMEM_MEM_OK;
	case MM_EBUSY:  return VMEM_MEM_BUSY;
	case MM_ENOMEM: return VMEM_MEM_NOMEM;
	case MM_ERANGE: return VMEM_MEM_RANGE;
	case MM_EINVAL: return VMEM_MEM_INVAL;
	case MM_ESTATE: return VMEM_MEM_STATE;
	default:        return VMEM_MEM_OTHER;
	}
}

static int op_hot_add(void *ctx, uint64_t pfn, uint64_t n) { return err(mm_hot_add(pfn, n)); }
static int op_hot_remove(void *ctx, uint64_t pfn, uint64_t n) { return err(mm_hot_remove(pfn, n)); }

static int op_block_info(void *ctx, uint64_t pfn, struct vmem_block_info *out)
{
	struct mm_block_info bi;
	int rc = mm_block_info(pfn, &bi);
	if (rc != MM_OK)
		return err(rc);
	*out = (struct vmem_block_info){ bi.online, bi.kind, bi.nfree, bi.resident };
	return VMEM_MEM_OK;
}

static uint64_t op_free_pages(void *ctx) { return mm_free_pages(); }

static int op_overlaps_ram(void *ctx, uint64_t pa, uint64_t len)
{
	if (pa < (mm_max_pfn() << PAGE_SHIFT))
		return 1;
	const struct boot_info *bi = boot_info_get();
	if (!bi)
		return 1;   /* cannot tell: do not risk it */
	for (uint32_t i = 0; i < bi->mmap_count && i < BOOT_MMAP_MAX; i++) {
		const struct boot_mem_region *r = &bi->mmap[i];
		uint64_t end = r->base + (r->pages << PAGE_SHIFT);
		if (r->base < pa + len && pa < end)
			return 1;
	}
	return 0;
}

const struct vmem_mem_ops vmem_kernel_mem_ops = {
	.hot_add = op_hot_add, .hot_remove = op_hot_remove, .block_info = op_block_info,
	.free_pages = op_free_pages, .overlaps_ram = op_overlaps_ram,
};

/* Physical addresses the kernel can use for plugged memory: the CPU's width
 * (CPUID 0x80000008) and mm's direct map, whichever is smaller. */
uint64_t vmem_kernel_max_phys(void)
{
	uint32_t a, b, c, d;
	__asm__ __volatile__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000000u));
	unsigned bits = 36;   /* the architectural minimum when the leaf is missing */
	if (a >= 0x80000008u) {
		__asm__ __volatile__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000008u));
		if ((a & 0xff) >= 32 && (a & 0xff) <= 52)
			bits = a & 0xff;
	}
	return min_u64(1ull << bits, MM_DIRECT_MAP_SIZE);
}
