/* fake_balloon_mem.c - test frame allocator behind struct balloon_mem_ops; see header. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fake_balloon_mem.h"

#define PPB PAGES_PER_BLOCK

static void err(struct fake_mem *m, const char *what, uint64_t pfn)
{
	m->errors++;
	fprintf(stderr, "fake mem: %s (pfn 0x%llx)\n", what, (unsigned long long)pfn);
}

void fake_mem_init(struct fake_mem *m, uint64_t base_pfn, uint64_t npages)
{
	memset(m, 0, sizeof *m);
	m->base_pfn = base_pfn;
	m->npages = npages;
	m->st = calloc(npages, 1);
	m->taken_order = malloc(npages);
	memset(m->taken_order, 0xff, npages);
	m->nfree = npages;
	m->nblk = (base_pfn + npages) / PPB + 1;
	m->blk = calloc(m->nblk, 1);      /* indexed by pfn / PPB: never written = not resident */
}

void fake_mem_destroy(struct fake_mem *m)
{
	free(m->st);
	free(m->taken_order);
	free(m->blk);
}

static uint8_t *blkf(const struct fake_mem *m, uint64_t pfn) { return &m->blk[pfn / PPB]; }

unsigned fake_mem_block_flags(const struct fake_mem *m, uint64_t pfn) { return *blkf(m, pfn); }

static uint8_t *st(struct fake_mem *m, uint64_t pfn) { return &m->st[pfn - m->base_pfn]; }
static int in_range(const struct fake_mem *m, uint64_t pfn)
{
	return pfn >= m->base_pfn && pfn < m->base_pfn + m->npages;
}

int fake_mem_alloc_at(struct fake_mem *m, uint64_t pfn, int pinned)
{
	if (!in_range(m, pfn) || *st(m, pfn) != FM_FREE)
		return -1;
	*st(m, pfn) = pinned ? FM_PINNED : FM_USED;
	m->nfree--;
	/* written by the guest: resident, and no longer reported */
	*blkf(m, pfn) = (uint8_t)((*blkf(m, pfn) | FB_RESIDENT) & ~FB_REPORTED);
	return 0;
}

int fake_mem_free_at(struct fake_mem *m, uint64_t pfn)
{
	if (!in_range(m, pfn) || (*st(m, pfn) != FM_USED && *st(m, pfn) != FM_PINNED))
		return -1;
	*st(m, pfn) = FM_FREE;
	m->nfree++;
	return 0;
}

uint64_t fake_mem_alloc_any(struct fake_mem *m, uint64_t n, int pinned)
{
	uint64_t got = 0;
	for (uint64_t p = m->base_pfn; p < m->base_pfn + m->npages && got < n; p++)
		if (fake_mem_alloc_at(m, p, pinned) == 0)
			got++;
	return got;
}

static int range_free(struct fake_mem *m, uint64_t pfn, uint64_t n)
{
	for (uint64_t p = pfn; p < pfn + n; p++)
		if (*st(m, p) != FM_FREE)
			return 0;
	return 1;
}

static void take(struct fake_mem *m, uint64_t pfn, uint64_t n)
{
	unsigned order = 0;
	while ((1ull << order) < n)
		order++;
	m->taken_order[pfn - m->base_pfn] = (uint8_t)order;
	for (uint64_t p = pfn; p < pfn + n; p++)
		*st(m, p) = FM_BALLOON;
	m->nfree -= n;
	m->nballoon += n;
}

static uint64_t first_block(const struct fake_mem *m)
{
	return (m->base_pfn + PPB - 1) / PPB * PPB;
}

static unsigned fm_take_blocks(void *ctx, uint64_t *pfns, unsigned max)
{
	struct fake_mem *m = ctx;
	unsigned n = 0;
	m->take_blocks_calls++;
	if (m->bad_block_pfn && max) {
		pfns[n++] = m->bad_block_pfn;
		m->bad_block_pfn = 0;
	}
	for (uint64_t b = first_block(m); b + PPB <= m->base_pfn + m->npages && n < max; b += PPB) {
		if (range_free(m, b, PPB)) {
			take(m, b, PPB);
			pfns[n++] = b;
			m->blocks_taken++;
		}
	}
	return n;
}

static int fm_take_run(void *ctx, unsigned order, uint64_t *pfn)
{
	struct fake_mem *m = ctx;
	uint64_t n = 1ull << order;
	m->take_run_calls++;
	if (order > BALLOON_MAX_RUN_ORDER)
		err(m, "take_run order too large", order);
	uint64_t start = (m->base_pfn + n - 1) / n * n;
	for (uint64_t p = start; p + n <= m->base_pfn + m->npages; p += n) {
		if (range_free(m, p, n)) {
			take(m, p, n);
			*pfn = p;
			m->runs_taken++;
			return 0;
		}
	}
	return -1;
}

static void fm_give_back(void *ctx, uint64_t pfn, unsigned order)
{
	struct fake_mem *m = ctx;
	m->give_calls++;
	if (!in_range(m, pfn)) {
		err(m, "give_back outside memory", pfn);
		return;
	}
	if (m->taken_order[pfn - m->base_pfn] != order) {
		err(m, "give_back of a range not taken like this (pfn/order mismatch)", pfn);
		return;
	}
	m->taken_order[pfn - m->base_pfn] = 0xff;
	for (uint64_t p = pfn; p < pfn + (1ull << order); p++) {
		if (*st(m, p) != FM_BALLOON) {
			err(m, "give_back of a frame the balloon does not own", p);
			continue;
		}
		*st(m, p) = FM_FREE;
		m->nfree++;
		m->nballoon--;
	}
	if (order == 9)
		*blkf(m, pfn) &= (uint8_t)~FB_RESIDENT;   /* the host dropped it */
}

/* Move USED frames out of the sparsest block that has nothing pinned or
 * ballooned, into free frames of other partly used blocks. */
static unsigned fm_compact(void *ctx, unsigned want)
{
	struct fake_mem *m = ctx;
	unsigned made = 0;
	m->compact_calls++;
	while (made < want) {
		uint64_t best = UINT64_MAX, best_used = PPB;
		for (uint64_t b = first_block(m); b + PPB <= m->base_pfn + m->npages; b += PPB) {
			uint64_t used = 0, other = 0;
			for (uint64_t p = b; p < b + PPB; p++) {
				used += *st(m, p) == FM_USED;
				other += *st(m, p) == FM_PINNED || *st(m, p) == FM_BALLOON;
			}
			if (used && !other && used < best_used) {
				best = b;
				best_used = used;
			}
		}
		if (best == UINT64_MAX)
			break;
		/* destination: free frames outside `best` in blocks that are not wholly free */
		uint64_t dst = first_block(m);
		int ok = 1;
		for (uint64_t p = best; p < best + PPB && ok; p++) {
			if (*st(m, p) != FM_USED)
				continue;
			for (;; dst++) {
				if (dst + 1 > m->base_pfn + m->npages) { ok = 0; break; }
				uint64_t db = dst / PPB * PPB;
				if (db == best || range_free(m, db, PPB) || *st(m, dst) != FM_FREE)
					continue;
				break;
			}
			if (!ok)
				break;
			*st(m, dst) = FM_USED;
			*st(m, p) = FM_FREE;
			m->moved++;
		}
		if (!ok || !range_free(m, best, PPB))
			break;
		made++;
	}
	return made;
}

/* ---- free page reporting */

static int reportable(struct fake_mem *m, uint64_t b)
{
	return (*blkf(m, b) & (FB_RESIDENT | FB_REPORTED | FB_ISOLATED)) == FB_RESIDENT &&
	       range_free(m, b, PPB);
}

static uint64_t fm_report_pending(void *ctx)
{
	struct fake_mem *m = ctx;
	uint64_t n = 0;
	for (uint64_t b = first_block(m); b + PPB <= m->base_pfn + m->npages; b += PPB)
		n += reportable(m, b);
	return n;
}

static void isolate(struct fake_mem *m, uint64_t b)
{
	for (uint64_t p = b; p < b + PPB; p++)
		*st(m, p) = FM_ISOLATED;
	*blkf(m, b) |= FB_ISOLATED;
	m->isolated_now++;
}

static unsigned fm_report_isolate(void *ctx, uint64_t *pfns, unsigned max)
{
	struct fake_mem *m = ctx;
	unsigned n = 0;
	m->isolate_calls++;
	if (m->bad_isolate_pfn && max) {
		pfns[n++] = m->bad_isolate_pfn;
		m->bad_isolate_pfn = 0;
	}
	/* from the top down, like a list that is not in address order */
	uint64_t top = (m->base_pfn + m->npages) / PPB * PPB;
	for (uint64_t b = top; b >= first_block(m) + PPB && n < max; ) {
		b -= PPB;
		if (reportable(m, b)) {
			isolate(m, b);
			pfns[n++] = b;
		}
	}
	return n;
}

static void fm_report_done(void *ctx, const uint64_t *pfns, unsigned n, int reported)
{
	struct fake_mem *m = ctx;
	m->done_calls++;
	for (unsigned i = 0; i < n; i++) {
		uint64_t b = pfns[i];
		if (!in_range(m, b) || b % PPB || !(*blkf(m, b) & FB_ISOLATED)) {
			err(m, "report_done of a block that is not isolated", b);
			continue;
		}
		for (uint64_t p = b; p < b + PPB; p++)
			*st(m, p) = FM_FREE;
		*blkf(m, b) &= (uint8_t)~FB_ISOLATED;
		m->isolated_now--;
		if (reported) {
			*blkf(m, b) = (uint8_t)((*blkf(m, b) | FB_REPORTED) & ~FB_RESIDENT);
			m->reported_blocks++;
		} else {
			m->unreported_returns++;
		}
	}
}

static uint64_t fm_free_pages(void *ctx) { return ((struct fake_mem *)ctx)->nfree; }
static uint64_t fm_total_pages(void *ctx) { return ((struct fake_mem *)ctx)->npages; }

int fake_mem_consistent(const struct fake_mem *m)
{
	uint64_t f = 0, bl = 0;
	for (uint64_t i = 0; i < m->npages; i++) {
		f += m->st[i] == FM_FREE || m->st[i] == FM_ISOLATED;
		bl += m->st[i] == FM_BALLOON;
	}
	return f == m->nfree && bl == m->nballoon ? 0 : -1;
}

const struct balloon_mem_ops fake_mem_ops = {
	.take_blocks = fm_take_blocks,
	.compact = fm_compact,
	.take_run = fm_take_run,
	.give_back = fm_give_back,
	.free_pages = fm_free_pages,
	.total_pages = fm_total_pages,
	.report_pending = fm_report_pending,
	.report_isolate = fm_report_isolate,
	.report_done = fm_report_done,
};
