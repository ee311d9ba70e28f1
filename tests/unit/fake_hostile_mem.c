/* fake_hostile_mem.c - ownership-checking guest memory and application; see the header. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fake_hostile_mem.h"

#define PPB BALLOON_PAGES_PER_BLOCK

static void __attribute__((format(printf, 2, 3))) err(struct hmem *m, const char *fmt, ...)
{
	if (!m->errors) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(m->first_error, sizeof m->first_error, fmt, ap);
		va_end(ap);
	}
	m->errors++;
}

static uint64_t rnd(struct hmem *m) { return rng_next(&m->rng); }

static uint64_t tag_of(uint64_t seq)
{
	uint64_t x = seq * 0x9e3779b97f4a7c15ull + 0x1234567;
	x ^= x >> 31;
	return x == HM_POISON ? x + 1 : x;
}

void hmem_init(struct hmem *m, uint64_t base_pfn, uint64_t npages, uint64_t seed)
{
	memset(m, 0, sizeof *m);
	m->base_pfn = base_pfn;
	m->npages = npages;
	m->st = calloc(npages, 1);
	m->order = malloc(npages);
	m->word = calloc(npages, sizeof *m->word);
	m->app_idx = malloc(npages * sizeof *m->app_idx);
	m->first_blk = (base_pfn + PPB - 1) / PPB;
	m->nblocks = (base_pfn + npages) / PPB > m->first_blk ? (base_pfn + npages) / PPB - m->first_blk : 0;
	m->reported = calloc(m->nblocks + 1, 1);
	memset(m->order, 0xff, npages);
	for (uint64_t i = 0; i < npages; i++)
		m->app_idx[i] = HM_NO_APP;
	m->nfree = npages;
	rng_seed(&m->rng, seed);
	m->compact_enabled = 1;
}

void hmem_destroy(struct hmem *m)
{
	free(m->st);
	free(m->order);
	free(m->word);
	free(m->app_idx);
	free(m->reported);
	free(m->app);
	memset(m, 0, sizeof *m);
}

static int in_range(const struct hmem *m, uint64_t pfn, uint64_t n)
{
	return pfn >= m->base_pfn && pfn - m->base_pfn < m->npages && n <= m->npages - (pfn - m->base_pfn);
}

static uint8_t *st(struct hmem *m, uint64_t pfn) { return &m->st[pfn - m->base_pfn]; }

int hmem_is_balloon(const struct hmem *m, uint64_t pfn)
{
	return in_range(m, pfn, 1) && m->st[pfn - m->base_pfn] == HM_BALLOON;
}

uint64_t hmem_pin_spread(struct hmem *m, uint64_t n, uint64_t stride)
{
	uint64_t got = 0;
	for (uint64_t i = 0; i < m->npages && got < n; i += stride ? stride : 1) {
		if (m->st[i] != HM_FREE)
			continue;
		m->st[i] = HM_PINNED;
		m->nfree--;
		m->npinned++;
		got++;
	}
	return got;
}

/* ------------------------------------------------------------ balloon ops */

static int range_free(struct hmem *m, uint64_t pfn, uint64_t n)
{
	for (uint64_t p = pfn; p < pfn + n; p++)
		if (*st(m, p) != HM_FREE)
			return 0;
	return 1;
}

/* A block used since it was reported is resident again. */
static void touch(struct hmem *m, uint64_t pfn)
{
	uint64_t blk = pfn / PPB;
	if (blk >= m->first_blk && blk - m->first_blk < m->nblocks)
		m->reported[blk - m->first_blk] = 0;
}

static void take(struct hmem *m, uint64_t pfn, unsigned order)
{
	uint64_t n = 1ull << order;
	touch(m, pfn);
	m->order[pfn - m->base_pfn] = (uint8_t)order;
	for (uint64_t p = pfn; p < pfn + n; p++)
		*st(m, p) = HM_BALLOON;
	m->nfree -= n;
	m->nballoon += n;
	m->take_calls++;
	m->frames_taken += n;
}

static uint64_t first_block(const struct hmem *m)
{
	return (m->base_pfn + PPB - 1) / PPB * PPB;
}

static unsigned hm_take_blocks(void *ctx, uint64_t *pfns, unsigned max)
{
	struct hmem *m = ctx;
	unsigned n = 0;
	for (uint64_t b = first_block(m); b + PPB <= m->base_pfn + m->npages && n < max; b += PPB) {
		if (range_free(m, b, PPB)) {
			take(m, b, 9);
			pfns[n++] = b;
		}
	}
	return n;
}

static int hm_take_run(void *ctx, unsigned order, uint64_t *pfn)
{
	struct hmem *m = ctx;
	if (order > BALLOON_MAX_RUN_ORDER) {
		err(m, "take_run order %u too large", order);
		return -1;
	}
	uint64_t n = 1ull << order;
	for (uint64_t p = (m->base_pfn + n - 1) / n * n; p + n <= m->base_pfn + m->npages; p += n) {
		if (range_free(m, p, n)) {
			take(m, p, order);
			*pfn = p;
			return 0;
		}
	}
	return -1;
}

static void hm_give_back(void *ctx, uint64_t pfn, unsigned order)
{
	struct hmem *m = ctx;
	m->give_calls++;
	if (order > 9 || !in_range(m, pfn, 1ull << order)) {
		err(m, "give_back of pfn 0x%llx order %u outside memory", (unsigned long long)pfn, order);
		return;
	}
	if (m->order[pfn - m->base_pfn] != order) {
		err(m, "give_back of pfn 0x%llx order %u: not a range taken like this (given twice?)",
		    (unsigned long long)pfn, order);
		return;
	}
	uint64_t n = 1ull << order;
	if (m->device_holds && m->device_holds(m->dctx, pfn, n))
		err(m, "give_back of pfn 0x%llx order %u while the device may still use it",
		    (unsigned long long)pfn, order);
	m->order[pfn - m->base_pfn] = 0xff;
	for (uint64_t p = pfn; p < pfn + n; p++) {
		if (*st(m, p) != HM_BALLOON) {
			err(m, "give_back of frame 0x%llx the balloon does not own", (unsigned long long)p);
			continue;
		}
		*st(m, p) = HM_FREE;
		m->nfree++;
		m->nballoon--;
		m->frames_given++;
	}
}

/* Move the application's frames out of the sparsest block that holds only
 * application data, into free frames of blocks that are not wholly free
 * (what a compactor does): contents move with them. */
static unsigned hm_compact(void *ctx, unsigned want)
{
	struct hmem *m = ctx;
	unsigned made = 0;
	m->compact_calls++;
	if (!m->compact_enabled)
		return 0;
	uint64_t b0 = first_block(m), end = m->base_pfn + m->npages;
	uint64_t nb = end > b0 ? (end - b0) / PPB : 0;
	uint16_t *nfree = calloc(nb ? nb : 1, sizeof *nfree);
	if (!nfree)
		return 0;
	while (made < want) {
		uint64_t best = UINT64_MAX, best_used = PPB;
		for (uint64_t i = 0; i < nb; i++) {
			uint64_t b = b0 + i * PPB, used = 0, other = 0, fr = 0;
			for (uint64_t p = b; p < b + PPB; p++) {
				uint8_t s = *st(m, p);
				used += s == HM_APP;
				other += s == HM_PINNED || s == HM_BALLOON;
				fr += s == HM_FREE;
			}
			nfree[i] = (uint16_t)fr;
			if (used && !other && used < best_used) {
				best = b;
				best_used = used;
			}
		}
		if (best == UINT64_MAX)
			break;
		/* destinations: free frames outside `best`, in blocks that are not
		 * wholly free (or lie partly outside the managed blocks) */
		uint64_t dst = m->base_pfn;
		int stuck = 0;
		for (uint64_t p = best; p < best + PPB && !stuck; p++) {
			if (*st(m, p) != HM_APP)
				continue;
			for (; dst < end; dst++) {
				if (*st(m, dst) != HM_FREE || (dst >= best && dst < best + PPB))
					continue;
				if (dst < b0 || dst >= b0 + nb * PPB || nfree[(dst - b0) / PPB] != PPB)
					break;
			}
			if (dst >= end) {
				stuck = 1;
				break;
			}
			uint32_t ai = m->app_idx[p - m->base_pfn];
			m->word[dst - m->base_pfn] = m->word[p - m->base_pfn];
			m->app_idx[dst - m->base_pfn] = ai;
			m->app[ai].pfn = dst;
			*st(m, dst) = HM_APP;
			touch(m, dst);
			*st(m, p) = HM_FREE;
			m->app_idx[p - m->base_pfn] = HM_NO_APP;
			m->word[p - m->base_pfn] = 0;
			m->moved++;
		}
		if (stuck)
			break;
		made++;
	}
	free(nfree);
	return made;
}

static uint64_t hm_free_pages(void *ctx) { return ((struct hmem *)ctx)->nfree; }
static uint64_t hm_total_pages(void *ctx) { return ((struct hmem *)ctx)->npages; }

const struct balloon_mem_ops hmem_ops = {
	.take_blocks = hm_take_blocks,
	.compact = hm_compact,
	.take_run = hm_take_run,
	.give_back = hm_give_back,
	.free_pages = hm_free_pages,
	.total_pages = hm_total_pages,
};

/* ------------------------------------------------------------ device side */

void hmem_device_discard(struct hmem *m, uint64_t pfn)
{
	m->discards++;
	if (!in_range(m, pfn, 1))
		return;   /* the device model reports PFNs outside RAM itself */
	if (*st(m, pfn) != HM_BALLOON)
		err(m, "device discarded frame 0x%llx, owned by %s, not the balloon", (unsigned long long)pfn,
		    *st(m, pfn) == HM_APP ? "the application" : *st(m, pfn) == HM_FREE ? "nobody" : "the kernel");
	m->word[pfn - m->base_pfn] = HM_POISON;
}

void hmem_device_report(struct hmem *m, uint64_t pfn)
{
	m->report_writes++;
	if (!in_range(m, pfn, 1))
		return;
	if (*st(m, pfn) != HM_ISOLATED)
		err(m, "device wrote reported frame 0x%llx, which is not isolated (owner %u)",
		    (unsigned long long)pfn, *st(m, pfn));
	m->word[pfn - m->base_pfn] = HM_POISON;
}

/* ------------------------------------------------------------ free page reporting */

static int block_reportable(struct hmem *m, uint64_t i)
{
	uint64_t b = (m->first_blk + i) * PPB;
	return !m->reported[i] && b >= m->base_pfn && b + PPB <= m->base_pfn + m->npages && range_free(m, b, PPB);
}

static uint64_t hm_report_pending(void *ctx)
{
	struct hmem *m = ctx;
	uint64_t n = 0;
	for (uint64_t i = 0; i < m->nblocks; i++)
		n += block_reportable(m, i);
	return n;
}

static void isolate(struct hmem *m, uint64_t b)
{
	for (uint64_t p = b; p < b + PPB; p++)
		*st(m, p) = HM_ISOLATED;
	m->nfree -= PPB;
	m->nisolated += PPB;
	m->isolated_blocks++;
}

static unsigned hm_report_isolate(void *ctx, uint64_t *pfns, unsigned max)
{
	struct hmem *m = ctx;
	unsigned n = 0;
	for (uint64_t i = 0; i < m->nblocks && n < max; i++) {
		if (!block_reportable(m, i))
			continue;
		uint64_t b = (m->first_blk + i) * PPB;
		isolate(m, b);
		pfns[n++] = b;
		if (m->bad_isolate && n == 1 && n < max) {
			/* an allocator bug: a block that is the balloon's, in the middle */
			for (uint64_t j = 0; j < m->nblocks; j++) {
				uint64_t bb = (m->first_blk + j) * PPB;
				if (bb >= m->base_pfn && *st(m, bb) == HM_BALLOON) {
					pfns[n++] = bb;
					m->bad_isolate = 0;
					break;
				}
			}
		}
	}
	return n;
}

static void hm_report_done(void *ctx, const uint64_t *pfns, unsigned n, int reported)
{
	struct hmem *m = ctx;
	for (unsigned k = 0; k < n; k++) {
		uint64_t b = pfns[k];
		if (b % PPB || !in_range(m, b, PPB) || *st(m, b) != HM_ISOLATED) {
			err(m, "report_done of block 0x%llx, which is not isolated", (unsigned long long)b);
			continue;
		}
		if (m->device_holds && m->device_holds(m->dctx, b, PPB))
			err(m, "report_done of block 0x%llx while the device may still write it", (unsigned long long)b);
		for (uint64_t p = b; p < b + PPB; p++)
			*st(m, p) = HM_FREE;
		m->nisolated -= PPB;
		m->nfree += PPB;
		if (reported) {
			m->reported[b / PPB - m->first_blk] = 1;
			m->reported_blocks++;
		} else {
			m->unreported_blocks++;
		}
	}
}

const struct balloon_mem_ops hmem_report_ops = {
	.take_blocks = hm_take_blocks,
	.compact = hm_compact,
	.take_run = hm_take_run,
	.give_back = hm_give_back,
	.free_pages = hm_free_pages,
	.total_pages = hm_total_pages,
	.report_pending = hm_report_pending,
	.report_isolate = hm_report_isolate,
	.report_done = hm_report_done,
};

/* ------------------------------------------------------------ application */

uint64_t hmem_app_alloc(struct hmem *m, uint64_t n)
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
	uint64_t i = m->pack ? m->cursor % m->npages : rnd(m) % m->npages;
	for (uint64_t scanned = 0; scanned < m->npages && got < n && m->nfree; scanned++, i++) {
		if (i == m->npages)
			i = 0;
		if (m->st[i] != HM_FREE)
			continue;
		if (m->app_n == m->app_cap) {
			size_t cap = m->app_cap ? m->app_cap * 2 : 256;
			struct hm_app_frame *v = realloc(m->app, cap * sizeof *v);
			if (!v)
				break;
			m->app = v;
			m->app_cap = cap;
		}
		uint64_t tag = tag_of(++m->app_seq);
		m->app[m->app_n] = (struct hm_app_frame){ m->base_pfn + i, tag };
		m->app_idx[i] = (uint32_t)m->app_n;
		m->app_n++;
		m->st[i] = HM_APP;
		m->word[i] = tag;
		touch(m, m->base_pfn + i);
		m->nfree--;
		m->napp++;
		got++;
		m->cursor = i + 1;
	}
	m->app_allocs += got;
	return got;
}

uint64_t hmem_app_free(struct hmem *m, uint64_t n)
{
	uint64_t done = 0;
	while (done < n && m->app_n) {
		size_t k = (size_t)(rnd(m) % m->app_n);
		uint64_t i = m->app[k].pfn - m->base_pfn;
		/* a frame is checked on its way out, like a program reading its data last */
		if (m->word[i] != m->app[k].tag) {
			m->app_corrupt++;
			err(m, "application frame 0x%llx corrupt (0x%llx, expected 0x%llx)",
			    (unsigned long long)m->app[k].pfn, (unsigned long long)m->word[i],
			    (unsigned long long)m->app[k].tag);
		}
		m->st[i] = HM_FREE;
		m->app_idx[i] = HM_NO_APP;
		m->nfree++;
		m->napp--;
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

uint64_t hmem_app_check(struct hmem *m)
{
	uint64_t bad = 0;
	m->app_checks++;
	for (size_t k = 0; k < m->app_n; k++) {
		uint64_t i = m->app[k].pfn - m->base_pfn;
		if (m->st[i] != HM_APP || m->word[i] != m->app[k].tag || m->app_idx[i] != k) {
			if (!bad)
				err(m, "application frame 0x%llx corrupt or lost (owner %u, 0x%llx, expected 0x%llx)",
				    (unsigned long long)m->app[k].pfn, m->st[i], (unsigned long long)m->word[i],
				    (unsigned long long)m->app[k].tag);
			bad++;
		}
	}
	m->app_corrupt += bad;
	return bad;
}

void hmem_app_step(struct hmem *m, unsigned step, unsigned check_every)
{
	/* grow and shrink in turns so the application keeps a changing set */
	uint64_t n = 1 + rnd(m) % 16;
	if ((step / 64) % 2 == 0)
		hmem_app_alloc(m, n);
	else
		hmem_app_free(m, n);
	if (check_every && step % check_every == 0)
		hmem_app_check(m);
}

int hmem_consistent(struct hmem *m)
{
	uint64_t c[8] = { 0 };
	for (uint64_t i = 0; i < m->npages; i++)
		c[m->st[i] & 7]++;
	if (c[HM_FREE] != m->nfree || c[HM_APP] != m->napp || c[HM_PINNED] != m->npinned ||
	    c[HM_BALLOON] != m->nballoon || c[HM_ISOLATED] != m->nisolated || m->napp != m->app_n) {
		err(m, "counters disagree with owners: free %llu/%llu app %llu/%llu balloon %llu/%llu",
		    (unsigned long long)c[HM_FREE], (unsigned long long)m->nfree,
		    (unsigned long long)c[HM_APP], (unsigned long long)m->napp,
		    (unsigned long long)c[HM_BALLOON], (unsigned long long)m->nballoon);
		return -1;
	}
	return 0;
}
