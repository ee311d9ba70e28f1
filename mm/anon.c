/*
 * anon.c - anonymous movable mappings. See anon.h for the contract.
 */
#include <string.h>
#include "mm/anon.h"
#include "klog.h"
#include "kclock.h"

int anon_init(struct anon *a, struct frame_alloc *fa, struct pgtable *pt, uint64_t base, uint64_t size)
{
	if (!a || !fa || !pt || size < 2 * PAGE_SIZE || ((base | size) & (PAGE_SIZE - 1)) ||
	    base + size < base || !pt_canonical(base) || !pt_canonical(base + size - 1))
		return MM_EINVAL;
	memset(a, 0, sizeof *a);
	a->fa = fa;
	a->pt = pt;
	a->base = base;
	a->size = size;
	a->free[0] = (struct anon_extent){ base, size };
	a->nfree = 1;
	return MM_OK;
}

/* First fit. */
static int vs_take(struct anon *a, uint64_t len, uint64_t *va)
{
	for (unsigned i = 0; i < a->nfree; i++) {
		if (a->free[i].len < len)
			continue;
		*va = a->free[i].va;
		a->free[i].va += len;
		a->free[i].len -= len;
		if (a->free[i].len == 0) {
			memmove(&a->free[i], &a->free[i + 1], (a->nfree - i - 1) * sizeof a->free[0]);
			a->nfree--;
		}
		return MM_OK;
	}
	return MM_ENOMEM;
}

static void vs_give(struct anon *a, uint64_t va, uint64_t len)
{
	unsigned i = 0;
	while (i < a->nfree && a->free[i].va < va)
		i++;
	int join_prev = i > 0 && a->free[i - 1].va + a->free[i - 1].len == va;
	int join_next = i < a->nfree && va + len == a->free[i].va;
	if (join_prev && join_next) {
		a->free[i - 1].len += len + a->free[i].len;
		memmove(&a->free[i], &a->free[i + 1], (a->nfree - i - 1) * sizeof a->free[0]);
		a->nfree--;
	} else if (join_prev) {
		a->free[i - 1].len += len;
	} else if (join_next) {
		a->free[i].va = va;
		a->free[i].len += len;
	} else if (a->nfree < ANON_EXTENTS) {
		memmove(&a->free[i + 1], &a->free[i], (a->nfree - i) * sizeof a->free[0]);
		a->free[i] = (struct anon_extent){ va, len };
		a->nfree++;
	} else {
		/* The window is 16 TiB: losing a little virtual space is harmless,
		 * a line per unmap is not (a workload freeing at random would
		 * flood the console): one line a second with the running total. */
		a->dropped += len;
		klog_ratelimited(&a->lim_dropped, NS_PER_S,
		                 "mm: anon: free-extent table full, %llu KiB of virtual space dropped so far",
		                 (unsigned long long)(a->dropped >> 10));
	}
}

static void unmap_pages(struct anon *a, uint64_t va, uint64_t len)
{
	for (uint64_t off = 0; off < len; off += PAGE_SIZE) {
		uint64_t pa;
		if (pt_unmap(a->pt, va + off, &pa, NULL) == MM_OK)
			fa_free(a->fa, pa >> PAGE_SHIFT, 0);
	}
}

int anon_map(struct anon *a, uint64_t bytes, uint64_t *va_out)
{
	if (bytes == 0 || !va_out || bytes > a->size)
		return MM_EINVAL;
	uint64_t len = (bytes + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1), va;
	/* More than all of RAM can never succeed: say so before touching any. */
	if ((len >> PAGE_SHIFT) > a->fa->total)
		return MM_ENOMEM;
	if (a->nlive == ANON_MAPS || vs_take(a, len + PAGE_SIZE, &va) != MM_OK)
		return MM_ENOMEM;
	uint64_t off;
	for (off = 0; off < len; off += PAGE_SIZE) {
		uint64_t pfn;
		if (fa_alloc_movable(a->fa, va + off, &pfn) != MM_OK)
			break;
		memset(a->pt->ops->phys_to_virt(a->pt->ctx, pfn << PAGE_SHIFT), 0, PAGE_SIZE);
		if (pt_map(a->pt, va + off, pfn << PAGE_SHIFT, PTE_W | PTE_NX) != MM_OK) {
			fa_free(a->fa, pfn, 0);
			break;
		}
	}
	if (off < len) {
		unmap_pages(a, va, off);
		vs_give(a, va, len + PAGE_SIZE);
		return MM_ENOMEM;
	}
	a->live[a->nlive++] = (struct anon_extent){ va, len };
	a->pages += len >> PAGE_SHIFT;
	*va_out = va;
	return MM_OK;
}

int anon_unmap(struct anon *a, uint64_t va, uint64_t bytes)
{
	uint64_t len = (bytes + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	for (unsigned i = 0; i < a->nlive; i++) {
		if (a->live[i].va != va || a->live[i].len != len)
			continue;
		unmap_pages(a, va, len);
		vs_give(a, va, len + PAGE_SIZE);
		a->live[i] = a->live[--a->nlive];
		a->pages -= len >> PAGE_SHIFT;
		return MM_OK;
	}
	return MM_EINVAL;
}
