/*
 * balloon_early_mem.c - BRING-UP ONLY: balloon memory ops over the boot
 * memory map, for proving the driver against QEMU before mm/ is bound.
 *
 * Enabled by `balloon.earlymem` on the command line, and only when no
 * allocator called virtio_balloon_bind_memory(). It assumes nobody else
 * uses BOOT_MEM_USABLE RAM, which holds while the kernel's early memory is
 * all in .bss (kernel/early_mem.c, kernel/sbrk_early.c) and is FALSE once
 * mm/ manages RAM: never combine the two. Delete this file when mm/ binds.
 *
 * A bitmap says which usable frames are free; blocks are wholly free
 * 2 MiB-aligned groups; runs avoid breaking wholly free blocks if they can.
 */
#include <string.h>
#include "balloon.h"
#include "kernel/boot.h"
#include "kernel/cmdline.h"
#include "klog.h"

#define EM_MAX_PFN (16ull << 18)            /* 16 GiB of address space */
#define PPB        BALLOON_PAGES_PER_BLOCK

int balloon_earlymem;
CMDLINE_FLAG(balloon_earlymem, "balloon.earlymem", &balloon_earlymem,
             "bring-up: balloon takes boot-map RAM directly (never with mm/)");

static uint64_t freemap[EM_MAX_PFN / 64];   /* 1 = usable and free */
static uint64_t max_pfn, nfree, ntotal;

static int is_free(uint64_t p) { return (freemap[p / 64] >> (p % 64)) & 1; }

static int range_free(uint64_t pfn, uint64_t n)
{
	for (uint64_t p = pfn; p < pfn + n; p++)
		if (!is_free(p))
			return 0;
	return 1;
}

static void mark(uint64_t pfn, uint64_t n, int free)
{
	for (uint64_t p = pfn; p < pfn + n; p++) {
		if (free)
			freemap[p / 64] |= 1ull << (p % 64);
		else
			freemap[p / 64] &= ~(1ull << (p % 64));
	}
	if (free)
		nfree += n;
	else
		nfree -= n;
}

static int block_free(uint64_t blk)
{
	for (unsigned w = 0; w < PPB / 64; w++)
		if (freemap[blk * (PPB / 64) + w] != ~0ull)
			return 0;
	return 1;
}

static unsigned em_take_blocks(void *ctx, uint64_t *pfns, unsigned max)
{
	unsigned n = 0;
	for (uint64_t blk = 0; blk < max_pfn / PPB && n < max; blk++) {
		if (block_free(blk)) {
			mark(blk * PPB, PPB, 0);
			pfns[n++] = blk * PPB;
		}
	}
	return n;
}

static int em_take_run(void *ctx, unsigned order, uint64_t *pfn)
{
	uint64_t n = 1ull << order;
	for (int pass = 0; pass < 2; pass++) {
		for (uint64_t p = 0; p + n <= max_pfn; p += n) {
			if (pass == 0 && block_free(p / PPB))
				continue;   /* keep whole blocks whole while we can */
			if (range_free(p, n)) {
				mark(p, n, 0);
				*pfn = p;
				return 0;
			}
		}
	}
	return -1;
}

static void em_give_back(void *ctx, uint64_t pfn, unsigned order)
{
	uint64_t n = 1ull << order;
	int any_free = 0;
	for (uint64_t p = pfn; p < pfn + n && p < max_pfn; p++)
		any_free |= is_free(p);
	if (pfn + n > max_pfn || any_free) {
		klog("balloon-earlymem: bad give_back pfn %#llx order %u", (unsigned long long)pfn, order);
		return;
	}
	mark(pfn, n, 1);
}

static uint64_t em_free_pages(void *ctx) { return nfree; }
static uint64_t em_total_pages(void *ctx) { return ntotal; }

static const struct balloon_mem_ops em_ops = {
	.take_blocks = em_take_blocks, .compact = NULL, .take_run = em_take_run,
	.give_back = em_give_back, .free_pages = em_free_pages, .total_pages = em_total_pages,
};

const struct balloon_mem_ops *balloon_early_mem(void **ctx, uint64_t *maxp)
{
	const struct boot_info *bi = boot_info_get();
	if (!bi)
		return NULL;
	memset(freemap, 0, sizeof freemap);
	nfree = ntotal = max_pfn = 0;
	for (uint32_t i = 0; i < bi->mmap_count; i++) {
		const struct boot_mem_region *r = &bi->mmap[i];
		if (r->type != BOOT_MEM_USABLE)
			continue;
		uint64_t start = r->base >> 12, end = start + r->pages;
		if (start < 256)
			start = 256;            /* leave the first MiB alone */
		if (end > EM_MAX_PFN)
			end = EM_MAX_PFN;
		if (end <= start)
			continue;
		mark(start, end - start, 1);
		ntotal += end - start;
		if (end > max_pfn)
			max_pfn = end;
	}
	klog("balloon-earlymem: BRING-UP allocator over %llu usable frames (%llu MiB); not for use with mm/",
	     (unsigned long long)ntotal, (unsigned long long)(ntotal >> 8));
	*ctx = NULL;
	*maxp = max_pfn;
	return &em_ops;
}
