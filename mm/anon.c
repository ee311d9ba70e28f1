/*
 * anon.c - anonymous movable mappings. See anon.h for the contract.
 */
#include <string.h>
#include "mm/anon.h"
#include "klog.h"
#include "kclock.h"

/* One more page of extent table, backed by a movable frame owned by its
 * address (the compactor may move it: it is only reached through it). */
static int table_grow(struct anon *a)
{
	uint64_t va = (uint64_t)(uintptr_t)(a->free + a->cap), pfn;
	if ((a->cap + PAGE_SIZE / sizeof(struct anon_extent)) * sizeof(struct anon_extent) > ANON_TABLE_BYTES)
		return MM_ENOSPC;
	if (a->ext.mem) {
		if (a->ext.populate(a->ext.ctx, a->free + a->cap, PAGE_SIZE) != MM_OK)
			return MM_ENOMEM;
		a->cap += PAGE_SIZE / sizeof(struct anon_extent);
		a->table_pages++;
		return MM_OK;
	}
	if (fa_alloc_movable(a->fa, va, &pfn) != MM_OK)
		return MM_ENOMEM;
	if (pt_map(a->pt, va, pfn << PAGE_SHIFT, PTE_W | PTE_NX) != MM_OK) {
		fa_free(a->fa, pfn, 0);
		return MM_ENOMEM;
	}
	a->cap += PAGE_SIZE / sizeof(struct anon_extent);
	a->table_pages++;
	return MM_OK;
}

int anon_init(struct anon *a, struct frame_alloc *fa, struct pgtable *pt, uint64_t base, uint64_t size,
              const struct anon_table *table)
{
	uint64_t room = table ? 0 : ANON_TABLE_BYTES;
	if (!a || !fa || !pt || size < room + 2 * PAGE_SIZE || ((base | size) & (PAGE_SIZE - 1)) ||
	    base + size < base || !pt_canonical(base) || !pt_canonical(base + size - 1) ||
	    (table && (!table->mem || !table->populate)))
		return MM_EINVAL;
	memset(a, 0, sizeof *a);
	a->fa = fa;
	a->pt = pt;
	if (table)
		a->ext = *table;
	a->free = table ? table->mem : (struct anon_extent *)(uintptr_t)base;
	a->base = base + room;
	a->size = size - room;
	int err = table_grow(a);
	if (err)
		return err;
	a->free[0] = (struct anon_extent){ a->base, a->size };
	a->nfree = 1;
	return MM_OK;
}

/* First fit. */
static int vs_take(struct anon *a, uint64_t len, uint64_t *va)
{
	for (uint64_t i = 0; i < a->nfree; i++) {
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
	/* Binary search: the first extent at or after va. */
	uint64_t lo = 0, hi = a->nfree;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (a->free[mid].va < va)
			lo = mid + 1;
		else
			hi = mid;
	}
	uint64_t i = lo;
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
	} else if (a->nfree < a->cap || table_grow(a) == MM_OK) {
		memmove(&a->free[i + 1], &a->free[i], (a->nfree - i) * sizeof a->free[0]);
		a->free[i] = (struct anon_extent){ va, len };
		a->nfree++;
	} else {
		/* Out of table room or memory for it: losing a little virtual
		 * space is harmless, a line per unmap is not (a workload freeing
		 * at random would flood the console): one line a second. */
		a->dropped += len;
		klog_ratelimited(&a->lim_dropped, NS_PER_S,
		                 "mm: anon: free-extent table cannot grow, %llu KiB of virtual space dropped so far",
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

static uint64_t guard_marker(uint64_t len) { return ((len >> PAGE_SHIFT) << PAGE_SHIFT) | ANON_GUARD_TAG; }

int anon_map(struct anon *a, uint64_t bytes, uint64_t *va_out)
{
	if (bytes == 0 || !va_out || bytes > a->size)
		return MM_EINVAL;
	uint64_t len = (bytes + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1), va;
	/* More than all of RAM can never succeed: say so before touching any. */
	if ((len >> PAGE_SHIFT) > a->fa->total)
		return MM_ENOMEM;
	if (vs_take(a, len + PAGE_SIZE, &va) != MM_OK)
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
	if (off < len || pt_set_marker(a->pt, va + len, guard_marker(len)) != MM_OK) {
		unmap_pages(a, va, off);
		vs_give(a, va, len + PAGE_SIZE);
		return MM_ENOMEM;
	}
	a->nlive++;
	a->pages += len >> PAGE_SHIFT;
	*va_out = va;
	return MM_OK;
}

int anon_unmap(struct anon *a, uint64_t va, uint64_t bytes)
{
	uint64_t len = (bytes + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1), marker;
	struct pt_walk w;
	/* (va, bytes) names a mapping iff its first page is mapped and the page
	 * after it is a guard marked with exactly this length: a va inside a
	 * mapping, a wrong size or a second unmap all fail one of the two. */
	if (len == 0 || (va & (PAGE_SIZE - 1)) || va < a->base || len > a->base + a->size - va - PAGE_SIZE ||
	    pt_lookup(a->pt, va, &w) != MM_OK ||
	    pt_get_marker(a->pt, va + len, &marker) != MM_OK || marker != guard_marker(len))
		return MM_EINVAL;
	unmap_pages(a, va, len);
	pt_set_marker(a->pt, va + len, 0);
	vs_give(a, va, len + PAGE_SIZE);
	a->nlive--;
	a->pages -= len >> PAGE_SHIFT;
	return MM_OK;
}
