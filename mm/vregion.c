/*
 * vregion.c - grow and shrink a movable virtual region. See vregion.h.
 */
#include <string.h>
#include "mm/vregion.h"

int vregion_init(struct vregion *r, struct frame_alloc *fa, struct pgtable *pt,
                 uint64_t base, uint64_t size)
{
	if (!r || !fa || !pt || size == 0 || ((base | size) & (PAGE_SIZE - 1)) ||
	    !pt_canonical(base) || !pt_canonical(base + size - 1) || base + size < base)
		return MM_EINVAL;
	memset(r, 0, sizeof *r);
	r->fa = fa;
	r->pt = pt;
	r->base = r->brk = r->mapped = base;
	r->limit = base + size;
	r->pte_flags = PTE_W | PTE_NX;
	return MM_OK;
}

/* Unmap and free the pages in [from, to). */
static void unmap_pages(struct vregion *r, uint64_t from, uint64_t to)
{
	for (uint64_t va = from; va < to; va += PAGE_SIZE) {
		uint64_t pa;
		if (pt_unmap(r->pt, va, &pa, NULL) == MM_OK)
			fa_free(r->fa, pa >> PAGE_SHIFT, 0);
	}
}

static int grow(struct vregion *r, uint64_t new_brk)
{
	uint64_t want = (new_brk + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	uint64_t va;
	if (((want - r->mapped) >> PAGE_SHIFT) > r->fa->total)
		return MM_ENOMEM;   /* more than all of RAM: fail before touching any */
	for (va = r->mapped; va < want; va += PAGE_SIZE) {
		uint64_t pfn;
		if (fa_alloc_movable(r->fa, va, &pfn) != MM_OK)
			goto undo;
		memset(r->pt->ops->phys_to_virt(r->pt->ctx, pfn << PAGE_SHIFT), 0, PAGE_SIZE);
		if (pt_map(r->pt, va, pfn << PAGE_SHIFT, r->pte_flags) != MM_OK) {
			fa_free(r->fa, pfn, 0);
			goto undo;
		}
	}
	r->mapped = want;
	r->brk = new_brk;
	return MM_OK;
undo:
	unmap_pages(r, r->mapped, va);
	return MM_ENOMEM;
}

int vregion_sbrk(struct vregion *r, int64_t incr, uint64_t *old_brk)
{
	if (old_brk)
		*old_brk = r->brk;
	if (incr > 0) {
		if ((uint64_t)incr > r->limit - r->brk)
			return MM_ENOMEM;
		uint64_t new_brk = r->brk + (uint64_t)incr;
		if (new_brk <= r->mapped) {
			r->brk = new_brk;
			return MM_OK;
		}
		return grow(r, new_brk);
	}
	if (incr < 0) {
		uint64_t dec = incr == INT64_MIN ? (uint64_t)INT64_MAX + 1 : (uint64_t)-incr;
		if (dec > r->brk - r->base)
			return MM_EINVAL;
		r->brk -= dec;
		uint64_t keep = (r->brk + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
		unmap_pages(r, keep, r->mapped);
		r->mapped = keep;
	}
	return MM_OK;
}
