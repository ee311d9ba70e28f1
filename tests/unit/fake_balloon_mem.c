/* fake_balloon_mem.c - ownership-checking guest memory, its hostile knobs and its application; see the header. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fake_balloon_mem.h"
#include "host_support.h"

static void __attribute__((format(printf, 2, 3))) err(struct fake_mem *m, const char *fmt, ...)
{
	char line[sizeof m->first_error];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (!m->errors)
		memcpy(m->first_error, line, sizeof line);
	m->errors++;
	fprintf(stderr, "fake mem: %s\n", line);
}

static unsigned long long ull(uint64_t v) { return (unsigned long long)v; }

/* ------------------------------------------------------------ frames and blocks */

void fake_mem_init(struct fake_mem *m, uint64_t base_pfn, uint64_t npages, uint64_t seed)
{
	memset(m, 0, sizeof *m);
	m->base_pfn = base_pfn;
	m->npages = npages;
	m->st = host_keep_alloc(npages);
	m->taken_order = host_keep_alloc(npages);
	m->word = host_keep_alloc(npages * sizeof *m->word);
	m->app_idx = host_keep_alloc(npages * sizeof *m->app_idx);
	m->nblk = (base_pfn + npages) / PAGES_PER_BLOCK + 1;
	m->blk = host_keep_alloc(m->nblk);   /* never written: not resident */
	if (!m->st || !m->taken_order || !m->word || !m->app_idx || !m->blk) {
		fake_mem_destroy(m);
		return;
	}
	memset(m->taken_order, 0xff, npages);
	memset(m->app_idx, 0xff, npages * sizeof *m->app_idx);   /* FM_NO_APP */
	m->nfree = npages;
	rng_seed(&m->rng, seed);
}

void fake_mem_destroy(struct fake_mem *m)
{
	host_keep_free(m->st, m->npages);
	host_keep_free(m->taken_order, m->npages);
	host_keep_free(m->word, m->npages * sizeof *m->word);
	host_keep_free(m->app_idx, m->npages * sizeof *m->app_idx);
	host_keep_free(m->blk, m->nblk);
	free(m->app);
	memset(m, 0, sizeof *m);
}

void fake_mem_touch_all(struct fake_mem *m)
{
	for (uint64_t i = 0; i < m->nblk; i++)
		m->blk[i] |= FB_RESIDENT;
}

static uint8_t *blkf(const struct fake_mem *m, uint64_t pfn) { return &m->blk[pfn / PAGES_PER_BLOCK]; }

unsigned fake_mem_block_flags(const struct fake_mem *m, uint64_t pfn) { return *blkf(m, pfn); }

static uint8_t *st(const struct fake_mem *m, uint64_t pfn) { return &m->st[pfn - m->base_pfn]; }

/* [pfn, pfn + n) lies wholly in managed memory. */
static int in_range(const struct fake_mem *m, uint64_t pfn, uint64_t n)
{
	return pfn >= m->base_pfn && pfn - m->base_pfn < m->npages && n <= m->npages - (pfn - m->base_pfn);
}

static uint64_t end_pfn(const struct fake_mem *m) { return m->base_pfn + m->npages; }

static uint64_t first_block(const struct fake_mem *m)
{
	return (m->base_pfn + PAGES_PER_BLOCK - 1) / PAGES_PER_BLOCK * PAGES_PER_BLOCK;
}

/* All of [pfn, pfn + n) free? FM_FREE is 0: eight owners at a time, without
 * ASan's per-byte checks (the allocator's searches below run this all the
 * time over nearly full memory; they were a fifth of fuzz_balloon_device's time). */
__attribute__((no_sanitize("address")))
static uint64_t first_busy(const struct fake_mem *m, uint64_t pfn, uint64_t n)
{
	const uint8_t *s = m->st + (pfn - m->base_pfn);   /* st() is not inlined into a no_sanitize function */
	uint64_t i = 0, w;
	for (; i + 8 <= n; i += 8) {
		memcpy(&w, s + i, 8);
		if (w)
			break;
	}
	for (; i < n; i++)
		if (s[i] != FM_FREE)
			return i;
	return n;
}

static int range_free(const struct fake_mem *m, uint64_t pfn, uint64_t n)
{
	return first_busy(m, pfn, n) == n;
}

/* Written by the guest: resident, and no longer what the host was told. */
static void touch(struct fake_mem *m, uint64_t pfn)
{
	*blkf(m, pfn) = (uint8_t)((*blkf(m, pfn) | FB_RESIDENT) & ~FB_REPORTED);
}

/* A free frame becomes USED or PINNED. */
static void occupy(struct fake_mem *m, uint64_t pfn, uint8_t owner)
{
	*st(m, pfn) = owner;
	m->nfree--;
	if (owner == FM_PINNED)
		m->npinned++;
	else
		m->nused++;
	touch(m, pfn);
}

/* A USED or PINNED frame becomes free. */
static void release(struct fake_mem *m, uint64_t pfn)
{
	if (*st(m, pfn) == FM_PINNED)
		m->npinned--;
	else
		m->nused--;
	*st(m, pfn) = FM_FREE;
	m->nfree++;
}

int fake_mem_alloc_at(struct fake_mem *m, uint64_t pfn, int pinned)
{
	if (!in_range(m, pfn, 1) || *st(m, pfn) != FM_FREE)
		return -1;
	occupy(m, pfn, pinned ? FM_PINNED : FM_USED);
	return 0;
}

int fake_mem_free_at(struct fake_mem *m, uint64_t pfn)
{
	if (!in_range(m, pfn, 1) || (*st(m, pfn) != FM_USED && *st(m, pfn) != FM_PINNED) ||
	    m->app_idx[pfn - m->base_pfn] != FM_NO_APP)
		return -1;
	release(m, pfn);
	return 0;
}

uint64_t fake_mem_alloc_any(struct fake_mem *m, uint64_t n, int pinned)
{
	uint64_t got = 0;
	for (uint64_t p = m->base_pfn; p < end_pfn(m) && got < n; p++)
		if (fake_mem_alloc_at(m, p, pinned) == 0)
			got++;
	return got;
}

uint64_t fake_mem_balloon_block(const struct fake_mem *m)
{
	for (uint64_t b = first_block(m); b + PAGES_PER_BLOCK <= end_pfn(m); b += PAGES_PER_BLOCK)
		if (m->taken_order[b - m->base_pfn] == 9)
			return b;
	return 0;
}

/* Run after every step of every fuzz input: the recount is its own loop
 * over in-bounds arrays, so ASan's per-byte checks are left out here (they
 * were a fifth of fuzz_balloon_device's time). */
__attribute__((no_sanitize("address")))
int fake_mem_consistent(struct fake_mem *m)
{
	/* four histograms, so that runs of equal owners do not chain one
	 * increment on the previous one's store */
	uint64_t h[4][8] = { { 0 } }, c[8] = { 0 }, iso_blocks = 0, i = 0;
	for (; i + 4 <= m->npages; i += 4) {
		h[0][m->st[i] & 7]++;
		h[1][m->st[i + 1] & 7]++;
		h[2][m->st[i + 2] & 7]++;
		h[3][m->st[i + 3] & 7]++;
	}
	for (; i < m->npages; i++)
		h[0][m->st[i] & 7]++;
	for (unsigned v = 0; v < 8; v++)
		c[v] = h[0][v] + h[1][v] + h[2][v] + h[3][v];
	for (uint64_t i = 0; i < m->nblk; i++)
		iso_blocks += (m->blk[i] & FB_ISOLATED) != 0;
	if (c[FM_FREE] != m->nfree || c[FM_USED] != m->nused || c[FM_PINNED] != m->npinned ||
	    c[FM_BALLOON] != m->nballoon || c[FM_ISOLATED] != m->nisolated || iso_blocks * PAGES_PER_BLOCK != m->nisolated ||
	    m->app_n > m->nused) {
		err(m, "counters disagree with owners: free %llu/%llu used %llu/%llu (app %llu) balloon %llu/%llu "
		    "isolated %llu/%llu",
		    ull(c[FM_FREE]), ull(m->nfree), ull(c[FM_USED]), ull(m->nused), ull(m->app_n),
		    ull(c[FM_BALLOON]), ull(m->nballoon), ull(c[FM_ISOLATED]), ull(m->nisolated));
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ balloon ops */

static void take(struct fake_mem *m, uint64_t pfn, unsigned order)
{
	uint64_t n = 1ull << order;
	m->taken_order[pfn - m->base_pfn] = (uint8_t)order;
	for (uint64_t p = pfn; p < pfn + n; p++)
		*st(m, p) = FM_BALLOON;
	m->nfree -= n;
	m->nballoon += n;
	m->frames_taken += n;
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
	for (uint64_t b = first_block(m); b + PAGES_PER_BLOCK <= end_pfn(m) && n < max; b += PAGES_PER_BLOCK) {
		if (range_free(m, b, PAGES_PER_BLOCK)) {
			take(m, b, 9);
			pfns[n++] = b;
			m->blocks_taken++;
		}
	}
	return n;
}

static int fm_take_run(void *ctx, unsigned order, uint64_t *pfn)
{
	struct fake_mem *m = ctx;
	m->take_run_calls++;
	if (order > BALLOON_MAX_RUN_ORDER) {
		err(m, "take_run order %u too large", order);
		return -1;
	}
	/* the lowest aligned free run (first fit); single frames by memchr */
	uint64_t n = 1ull << order;
	for (uint64_t p = (m->base_pfn + n - 1) / n * n; p + n <= end_pfn(m); ) {
		if (n == 1) {
			const uint8_t *f = memchr(st(m, p), FM_FREE, end_pfn(m) - p);
			if (!f)
				break;
			p = m->base_pfn + (uint64_t)(f - m->st);
		}
		uint64_t busy = first_busy(m, p, n);
		if (busy == n) {
			take(m, p, order);
			*pfn = p;
			m->runs_taken++;
			return 0;
		}
		p = (p + busy + n) / n * n;   /* no aligned run holding the busy frame is free */
	}
	return -1;
}

static void fm_give_back(void *ctx, uint64_t pfn, unsigned order)
{
	struct fake_mem *m = ctx;
	m->give_calls++;
	if (order > 9 || !in_range(m, pfn, 1ull << order)) {
		err(m, "give_back of pfn 0x%llx order %u outside memory", ull(pfn), order);
		return;
	}
	if (m->taken_order[pfn - m->base_pfn] != order) {
		err(m, "give_back of pfn 0x%llx order %u: not a range taken like this (given twice?)", ull(pfn), order);
		return;
	}
	uint64_t n = 1ull << order;
	if (m->device_holds && m->device_holds(m->dctx, pfn, n))
		err(m, "give_back of pfn 0x%llx order %u while the device may still use it", ull(pfn), order);
	m->taken_order[pfn - m->base_pfn] = 0xff;
	for (uint64_t p = pfn; p < pfn + n; p++) {
		if (*st(m, p) != FM_BALLOON) {
			err(m, "give_back of frame 0x%llx the balloon does not own", ull(p));
			continue;
		}
		*st(m, p) = FM_FREE;
		m->nfree++;
		m->nballoon--;
		m->frames_given++;
	}
	if (order == 9)
		*blkf(m, pfn) &= (uint8_t)~FB_RESIDENT;   /* the host dropped it */
}

/* The sparsest block holding only USED frames (UINT64_MAX: none); counts
 * each block's free frames into nfree_of[] on the way. */
static uint64_t sparsest_movable_block(struct fake_mem *m, uint64_t b0, uint64_t nb, uint16_t *nfree_of)
{
	uint64_t best = UINT64_MAX, best_used = PAGES_PER_BLOCK;
	for (uint64_t i = 0; i < nb; i++) {
		uint64_t b = b0 + i * PAGES_PER_BLOCK, used = 0, other = 0, fr = 0;
		for (uint64_t p = b; p < b + PAGES_PER_BLOCK; p++) {
			uint8_t s = *st(m, p);
			used += s == FM_USED;
			other += s == FM_PINNED || s == FM_BALLOON;
			fr += s == FM_FREE;
		}
		nfree_of[i] = (uint16_t)fr;
		if (used && !other && used < best_used) {
			best = b;
			best_used = used;
		}
	}
	return best;
}

/* Move one USED frame, its contents and its application entry with it. */
static void move_frame(struct fake_mem *m, uint64_t from, uint64_t to)
{
	uint32_t ai = m->app_idx[from - m->base_pfn];
	m->word[to - m->base_pfn] = m->word[from - m->base_pfn];
	m->app_idx[to - m->base_pfn] = ai;
	if (ai != FM_NO_APP)
		m->app[ai].pfn = to;
	*st(m, to) = FM_USED;
	touch(m, to);
	*st(m, from) = FM_FREE;
	m->app_idx[from - m->base_pfn] = FM_NO_APP;
	m->word[from - m->base_pfn] = 0;
	m->moved++;
}

/* Move the USED frames out of the sparsest block that holds nothing else,
 * into free frames of blocks that are not wholly free (or lie partly outside
 * the managed blocks): what a compactor does. */
static unsigned fm_compact(void *ctx, unsigned want)
{
	struct fake_mem *m = ctx;
	unsigned made = 0;
	m->compact_calls++;
	if (m->no_compact)
		return 0;
	uint64_t b0 = first_block(m), end = end_pfn(m);
	uint64_t nb = end > b0 ? (end - b0) / PAGES_PER_BLOCK : 0;
	uint16_t *nfree_of = calloc(nb ? nb : 1, sizeof *nfree_of);
	if (!nfree_of)
		return 0;
	while (made < want) {
		uint64_t best = sparsest_movable_block(m, b0, nb, nfree_of);
		if (best == UINT64_MAX)
			break;
		uint64_t dst = m->base_pfn;
		int stuck = 0;
		for (uint64_t p = best; p < best + PAGES_PER_BLOCK && !stuck; p++) {
			if (*st(m, p) != FM_USED)
				continue;
			for (; dst < end; dst++) {
				if (*st(m, dst) != FM_FREE || (dst >= best && dst < best + PAGES_PER_BLOCK))
					continue;
				if (dst < b0 || dst >= b0 + nb * PAGES_PER_BLOCK || nfree_of[(dst - b0) / PAGES_PER_BLOCK] != PAGES_PER_BLOCK)
					break;
			}
			if (dst >= end)
				stuck = 1;
			else
				move_frame(m, p, dst);
		}
		if (stuck)
			break;
		made++;
	}
	free(nfree_of);
	return made;
}

static uint64_t fm_free_pages(void *ctx) { return ((struct fake_mem *)ctx)->nfree; }
static uint64_t fm_total_pages(void *ctx) { return ((struct fake_mem *)ctx)->npages; }

/* ------------------------------------------------------------ free page reporting */

static int reportable(const struct fake_mem *m, uint64_t b)
{
	return (*blkf(m, b) & (FB_RESIDENT | FB_REPORTED | FB_ISOLATED)) == FB_RESIDENT &&
	       range_free(m, b, PAGES_PER_BLOCK);
}

static uint64_t fm_report_pending(void *ctx)
{
	struct fake_mem *m = ctx;
	uint64_t n = 0;
	for (uint64_t b = first_block(m); b + PAGES_PER_BLOCK <= end_pfn(m); b += PAGES_PER_BLOCK)
		n += reportable(m, b);
	return n;
}

static void isolate(struct fake_mem *m, uint64_t b)
{
	for (uint64_t p = b; p < b + PAGES_PER_BLOCK; p++)
		*st(m, p) = FM_ISOLATED;
	*blkf(m, b) |= FB_ISOLATED;
	m->nfree -= PAGES_PER_BLOCK;
	m->nisolated += PAGES_PER_BLOCK;
	m->isolated_blocks++;
}

/* The hostile knob: the bad PFN goes in at its place of the list, once. */
static void slip_bad_isolate(struct fake_mem *m, uint64_t *pfns, unsigned *n, unsigned max)
{
	if (m->bad_isolate_pfn && *n == m->bad_isolate_at && *n < max) {
		pfns[(*n)++] = m->bad_isolate_pfn;
		m->bad_isolate_pfn = 0;
	}
}

static unsigned fm_report_isolate(void *ctx, uint64_t *pfns, unsigned max)
{
	struct fake_mem *m = ctx;
	unsigned n = 0;
	m->isolate_calls++;
	/* from the top down, like a list that is not in address order */
	uint64_t top = end_pfn(m) / PAGES_PER_BLOCK * PAGES_PER_BLOCK;
	for (uint64_t b = top; b >= first_block(m) + PAGES_PER_BLOCK && n < max; ) {
		slip_bad_isolate(m, pfns, &n, max);
		b -= PAGES_PER_BLOCK;
		if (n < max && reportable(m, b)) {
			isolate(m, b);
			pfns[n++] = b;
		}
	}
	slip_bad_isolate(m, pfns, &n, max);
	return n;
}

static void fm_report_done(void *ctx, const uint64_t *pfns, unsigned n, int reported)
{
	struct fake_mem *m = ctx;
	m->done_calls++;
	for (unsigned k = 0; k < n; k++) {
		uint64_t b = pfns[k];
		if (b % PAGES_PER_BLOCK || !in_range(m, b, PAGES_PER_BLOCK) || !(*blkf(m, b) & FB_ISOLATED)) {
			err(m, "report_done of block 0x%llx, which is not isolated", ull(b));
			continue;
		}
		if (m->device_holds && m->device_holds(m->dctx, b, PAGES_PER_BLOCK))
			err(m, "report_done of block 0x%llx while the device may still write it", ull(b));
		for (uint64_t p = b; p < b + PAGES_PER_BLOCK; p++)
			*st(m, p) = FM_FREE;
		*blkf(m, b) &= (uint8_t)~FB_ISOLATED;
		m->nisolated -= PAGES_PER_BLOCK;
		m->nfree += PAGES_PER_BLOCK;
		if (reported) {
			*blkf(m, b) = (uint8_t)((*blkf(m, b) | FB_REPORTED) & ~FB_RESIDENT);
			m->reported_blocks++;
		} else {
			m->unreported_blocks++;
		}
	}
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

/* ------------------------------------------------------------ device side */

static const char *owner_name(uint8_t s)
{
	switch (s) {
	case FM_FREE: return "nobody";
	case FM_USED: return "guest data";
	case FM_PINNED: return "the kernel";
	case FM_ISOLATED: return "a report";
	default: return "the balloon";
	}
}

void fake_mem_device_discard(struct fake_mem *m, uint64_t pfn)
{
	m->discards++;
	if (!in_range(m, pfn, 1))
		return;   /* the device model reports PFNs outside RAM itself */
	if (*st(m, pfn) != FM_BALLOON)
		err(m, "device discarded frame 0x%llx, owned by %s, not the balloon", ull(pfn), owner_name(*st(m, pfn)));
	m->word[pfn - m->base_pfn] = FM_POISON;
}

void fake_mem_device_report(struct fake_mem *m, uint64_t pfn)
{
	m->report_writes++;
	if (!in_range(m, pfn, 1))
		return;
	if (*st(m, pfn) != FM_ISOLATED)
		err(m, "device wrote reported frame 0x%llx, which is not isolated (owned by %s)", ull(pfn),
		    owner_name(*st(m, pfn)));
	m->word[pfn - m->base_pfn] = FM_POISON;
}

/* ------------------------------------------------------------ application */

static uint64_t rnd(struct fake_mem *m) { return rng_next(&m->rng); }

static uint64_t tag_of(uint64_t seq)
{
	uint64_t x = seq * 0x9e3779b97f4a7c15ull + 0x1234567;
	x ^= x >> 31;
	return x == FM_POISON ? x + 1 : x;
}

static int app_grow(struct fake_mem *m)
{
	if (m->app_n < m->app_cap)
		return 0;
	size_t cap = m->app_cap ? m->app_cap * 2 : 256;
	struct fm_app_frame *v = realloc(m->app, cap * sizeof *v);
	if (!v)
		return -1;
	m->app = v;
	m->app_cap = cap;
	return 0;
}

/* Frame index i (free) becomes the application's, with a fresh tag. */
static void app_take(struct fake_mem *m, uint64_t i)
{
	uint64_t tag = tag_of(++m->app_seq);
	m->app[m->app_n] = (struct fm_app_frame){ m->base_pfn + i, tag };
	m->app_idx[i] = (uint32_t)m->app_n;
	m->app_n++;
	occupy(m, m->base_pfn + i, FM_USED);
	m->word[i] = tag;
}

uint64_t fake_mem_app_alloc(struct fake_mem *m, uint64_t n)
{
	uint64_t got = 0;
	if (!m->npages)
		return 0;
	if (m->nfree < n && m->oom) {
		/* the allocator runs dry: ask the balloon, like mm's OOM notifier */
		m->oom_calls++;
		m->oom_pages += m->oom(m->octx, n - m->nfree);
	}
	if (m->nfree < n)
		m->app_alloc_failures++;
	/* the next free frame from i on, wrapping, each frame looked at once
	 * (memchr: the fuzzers run this every millisecond of a nearly full guest) */
	uint64_t i = m->pack ? m->cursor % m->npages : rnd(m) % m->npages;
	for (uint64_t scanned = 0; scanned < m->npages && got < n && m->nfree; scanned++, i++) {
		if (i == m->npages)
			i = 0;
		uint64_t span = m->npages - i < m->npages - scanned ? m->npages - i : m->npages - scanned;
		const uint8_t *f = memchr(m->st + i, FM_FREE, span);
		if (!f) {
			scanned += span - 1;   /* the loop adds the last one */
			i += span - 1;
			continue;
		}
		scanned += (uint64_t)(f - (m->st + i));
		i = (uint64_t)(f - m->st);
		if (app_grow(m) != 0)
			break;
		app_take(m, i);
		got++;
		m->cursor = i + 1;
	}
	m->app_allocs += got;
	return got;
}

uint64_t fake_mem_app_free(struct fake_mem *m, uint64_t n)
{
	uint64_t done = 0;
	while (done < n && m->app_n) {
		size_t k = (size_t)(rnd(m) % m->app_n);
		uint64_t i = m->app[k].pfn - m->base_pfn;
		/* a frame is checked on its way out, like a program reading its data last */
		if (m->word[i] != m->app[k].tag) {
			m->app_corrupt++;
			err(m, "application frame 0x%llx corrupt (0x%llx, expected 0x%llx)", ull(m->app[k].pfn),
			    ull(m->word[i]), ull(m->app[k].tag));
		}
		m->app_idx[i] = FM_NO_APP;
		release(m, m->base_pfn + i);
		m->app_n--;
		if (k != m->app_n) {
			m->app[k] = m->app[m->app_n];
			m->app_idx[m->app[k].pfn - m->base_pfn] = (uint32_t)k;
		}
		done++;
	}
	m->app_frees += done;
	return done;
}

/* Run every few milliseconds of every fuzz input over all the application's
 * frames: like fake_mem_consistent, without ASan's per-load checks (the
 * indexes come from its own records of frames it allocated). */
__attribute__((no_sanitize("address")))
uint64_t fake_mem_app_check(struct fake_mem *m)
{
	uint64_t bad = 0;
	m->app_checks++;
	for (size_t k = 0; k < m->app_n; k++) {
		uint64_t i = m->app[k].pfn - m->base_pfn;
		if (m->st[i] != FM_USED || m->word[i] != m->app[k].tag || m->app_idx[i] != k) {
			if (!bad)
				err(m, "application frame 0x%llx corrupt or lost (owner %u, 0x%llx, expected 0x%llx)",
				    ull(m->app[k].pfn), m->st[i], ull(m->word[i]), ull(m->app[k].tag));
			bad++;
		}
	}
	m->app_corrupt += bad;
	return bad;
}

void fake_mem_app_step(struct fake_mem *m, unsigned step, unsigned check_every)
{
	/* grow and shrink in turns so the application keeps a changing set */
	uint64_t n = 1 + rnd(m) % 16;
	if ((step / 64) % 2 == 0)
		fake_mem_app_alloc(m, n);
	else
		fake_mem_app_free(m, n);
	if (check_every && step % check_every == 0)
		fake_mem_app_check(m);
}
