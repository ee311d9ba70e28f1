/*
 * books.c - the balloon's books: which frames it holds (bitmap of frames, bitmap of
 * range heads, count per block), the elements in flight, the checks on what
 * the allocator hands over, and balloon_check() over all of it. The rules
 * they keep are in internal.h.
 */
#include "drivers/balloon/internal.h"
#include <stdio.h>
#include <string.h>
#include "kernel/lib/fmt.h"

/* ---- bitmaps */

/* Layout: bitmap, heads (PAGES_PER_BLOCK / 8 bytes per block each: a chunk
 * of BALLOON_CHUNK_BLOCKS is one page of each, page-aligned when track is),
 * then the counts (2 bytes per block) and the chunk bits, the part backed
 * at start. */
/* 64-bit words of one bitmap in a chunk (one page), and the pages of both. */
#define CHUNK_WORDS (BALLOON_CHUNK_BLOCKS * (PAGES_PER_BLOCK / 64))
#define CHUNK_PAGES (2 * CHUNK_WORDS * 8 / 4096)

static uint64_t nchunks_of(uint64_t nblocks)
{
	return (nblocks + BALLOON_CHUNK_BLOCKS - 1) / BALLOON_CHUNK_BLOCKS;
}

static uint64_t counts_off(uint64_t nblocks)
{
	return nchunks_of(nblocks) * BALLOON_CHUNK_BLOCKS * 2 * (PAGES_PER_BLOCK / 8);
}

static uint64_t ready_off(uint64_t nblocks)
{
	return (counts_off(nblocks) + nblocks * sizeof(uint16_t) + 7) & ~7ull;
}

size_t balloon_track_bytes(uint64_t max_pfn)
{
	uint64_t nblocks = (max_pfn + PAGES_PER_BLOCK - 1) / PAGES_PER_BLOCK;
	return (size_t)(ready_off(nblocks) + (nchunks_of(nblocks) + 63) / 64 * 8);
}

int bal_books_init(struct balloon *b)
{
	char *track = b->s.track;
	uint64_t nch = nchunks_of(b->nblocks);
	size_t all = balloon_track_bytes(b->s.max_pfn), counts = counts_off(b->nblocks);
	b->bitmap = (uint64_t *)track;
	b->heads = b->bitmap + nch * CHUNK_WORDS;
	b->blk_count = (uint16_t *)(track + counts);
	b->ready = NULL;
	if (!b->s.track_populate) {
		if (!b->s.track_zeroed)
			memset(track, 0, all);
		return 0;
	}
	if (b->s.track_populate(b->s.track_ctx, track + counts, all - counts) != 0) {
		klog("balloon: cannot start: no memory for %zu KiB of books", (all - counts) >> 10);
		return -1;
	}
	b->ready = (uint64_t *)(track + ready_off(b->nblocks));
	for (uint64_t i = 0; i < (nch + 63) / 64; i++)
		b->books_pages += (uint64_t)__builtin_popcountll(b->ready[i]) * CHUNK_PAGES;
	if (b->s.track_zeroed)
		return 0;
	/* After a reset: chunks backed before stay backed; clear them. */
	memset(b->blk_count, 0, b->nblocks * sizeof(uint16_t));
	for (uint64_t c = 0; c < nch; c++)
		if ((b->ready[c / 64] >> (c % 64)) & 1) {
			memset(b->bitmap + c * CHUNK_WORDS, 0, CHUNK_WORDS * 8);
			memset(b->heads + c * CHUNK_WORDS, 0, CHUNK_WORDS * 8);
		}
	return 0;
}

/* Back the bitmaps of pfn's chunk (lazy books); 1 if they are. */
static int books_prepare(struct balloon *b, uint64_t pfn)
{
	if (bal_chunk_ready(b, pfn))
		return 1;
	uint64_t c = pfn / PAGES_PER_BLOCK / BALLOON_CHUNK_BLOCKS;
	if (b->s.track_populate(b->s.track_ctx, b->bitmap + c * CHUNK_WORDS, CHUNK_WORDS * 8) != 0 ||
	    b->s.track_populate(b->s.track_ctx, b->heads + c * CHUNK_WORDS, CHUNK_WORDS * 8) != 0) {
		klog_ratelimited(&b->lim_mem, LOG_INTERVAL_NS,
		                 "balloon: no memory for the books of the 128 MiB at pfn 0x%llx; "
		                 "frames given back, inflating again later",
		                 (unsigned long long)(c * BALLOON_CHUNK_BLOCKS * PAGES_PER_BLOCK));
		b->books_short = 1;     /* ends this inflate round */
		return 0;
	}
	b->ready[c / 64] |= 1ull << (c % 64);
	b->books_pages += CHUNK_PAGES;
	return 1;
}

/* Length of the settled range starting at head `pfn`: up to the next head,
 * the next frame not in the balloon, or the end of the block. */
uint32_t bal_run_len(const struct balloon *b, uint64_t pfn)
{
	uint64_t end = (pfn / PAGES_PER_BLOCK + 1) * PAGES_PER_BLOCK;   /* a multiple of 64 */
	for (uint64_t p = pfn + 1; p < end; p = (p / 64 + 1) * 64) {
		/* the frames of this word from p on that end the range */
		uint64_t stop = (~b->bitmap[p / 64] | b->heads[p / 64]) >> (p % 64);
		if (stop)
			return (uint32_t)(p + (uint64_t)__builtin_ctzll(stop) - pfn);
	}
	return (uint32_t)(end - pfn);
}

/* The first range head at or after pfn and before end (end if none),
 * skipping a word of frames at a time: deflate and release walk blocks of
 * scattered small runs with this, and a frame-by-frame walk cost 512 tests
 * per block. The caller knows pfn's chunk has books (its block's count is
 * not 0); end is at most the end of pfn's block. */
uint64_t bal_next_head(const struct balloon *b, uint64_t pfn, uint64_t end)
{
	while (pfn < end) {
		uint64_t rest = b->heads[pfn / 64] >> (pfn % 64);
		if (rest)
			return min_u64(pfn + (uint64_t)__builtin_ctzll(rest), end);
		pfn = (pfn / 64 + 1) * 64;
	}
	return end;
}

/* 1 if the block is one settled range of 512 frames. */
int bal_is_block_run(const struct balloon *b, uint64_t blk)
{
	if (b->blk_count[blk] != PAGES_PER_BLOCK)
		return 0;
	const uint64_t *h = &b->heads[blk * (PAGES_PER_BLOCK / 64)];
	if (h[0] != 1)
		return 0;
	for (unsigned w = 1; w < PAGES_PER_BLOCK / 64; w++)
		if (h[w])
			return 0;
	return 1;
}

/* Ranges are aligned powers of two <= a block, so never cross a block. */
/* Bits [pfn, pfn + count) of a bitmap, a word at a time: set (op 1) or
 * cleared (op 0). */
static void bits_range(uint64_t *map, uint64_t pfn, uint64_t count, int op)
{
	while (count) {
		unsigned off = (unsigned)(pfn % 64);
		uint64_t n = 64 - off < count ? 64 - off : count;
		uint64_t m = (n == 64 ? ~0ull : (1ull << n) - 1) << off;
		if (op)
			map[pfn / 64] |= m;
		else
			map[pfn / 64] &= ~m;
		pfn += n;
		count -= n;
	}
}

/* 1 if any of bits [pfn, pfn + count) is set, a word at a time. */
static int bits_any(const uint64_t *map, uint64_t pfn, uint64_t count)
{
	while (count) {
		unsigned off = (unsigned)(pfn % 64);
		uint64_t n = 64 - off < count ? 64 - off : count;
		if ((map[pfn / 64] >> off) & (n == 64 ? ~0ull : (1ull << n) - 1))
			return 1;
		pfn += n;
		count -= n;
	}
	return 0;
}

void bal_set_range(struct balloon *b, uint64_t pfn, uint32_t count)
{
	bits_range(b->bitmap, pfn, count, 1);
	b->heads[pfn / 64] |= 1ull << (pfn % 64);
	b->blk_count[pfn / PAGES_PER_BLOCK] = (uint16_t)(b->blk_count[pfn / PAGES_PER_BLOCK] + count);
	b->settled += count;
	if (count == PAGES_PER_BLOCK)
		b->block_runs++;
}

void bal_clear_range(struct balloon *b, uint64_t pfn, uint32_t count)
{
	bits_range(b->bitmap, pfn, count, 0);
	b->heads[pfn / 64] &= ~(1ull << (pfn % 64));
	b->blk_count[pfn / PAGES_PER_BLOCK] = (uint16_t)(b->blk_count[pfn / PAGES_PER_BLOCK] - count);
	b->settled -= count;
	if (count == PAGES_PER_BLOCK)
		b->block_runs--;
}

int balloon_has_pfn(const struct balloon *b, uint64_t pfn)
{
	return pfn < b->s.max_pfn && bit_test(b, pfn);
}

struct balloon_elem *bal_elem_get(struct balloon *b)
{
	for (unsigned i = 0; i < BALLOON_SLOTS; i++) {
		struct balloon_elem *e = &b->elems[i];
		if (e->state == ELEM_FREE) {
			e->nruns = 0;
			e->pages = 0;
			e->lo = UINT64_MAX;
			e->hi = 0;
			b->nfree_elems--;
			e->state = ELEM_DEFLATE + 1;   /* reserved, being filled */
			return e;
		}
	}
	return NULL;
}

void bal_elem_put(struct balloon *b, struct balloon_elem *e)
{
	e->state = ELEM_FREE;
	e->nruns = 0;
	e->pages = 0;
	e->lo = UINT64_MAX;
	e->hi = 0;
	b->nfree_elems++;
}

void bal_elem_add_run(struct balloon_elem *e, uint64_t pfn, uint32_t count)
{
	e->runs[e->nruns].pfn = pfn;
	e->runs[e->nruns].count = count;
	e->nruns++;
	e->lo = min_u64(e->lo, pfn);
	e->hi = max_u64(e->hi, pfn + count);
	e->pages += count;
}

/* The element's PFN array from its runs: a plain copy, kept in a function of
 * its own so that the fuzzers' coverage leaves its per-frame loop out
 * (tests/fuzz/coverage_ignore.txt). */
void bal_fill_pfns(struct balloon_elem *e)
{
	uint32_t i = 0;
	for (unsigned r = 0; r < e->nruns; r++)
		for (uint32_t j = 0; j < e->runs[r].count; j++)
			e->pfns[i++] = (le32)(e->runs[r].pfn + j);
}

/* 1 if [pfn, pfn + count) overlaps a run of an element in flight (or being
 * filled). Each element's span rules most out with one test. */
int bal_in_flight_overlap(const struct balloon *b, uint64_t pfn, uint32_t count)
{
	for (unsigned i = 0; i < BALLOON_SLOTS; i++) {
		const struct balloon_elem *e = &b->elems[i];
		if (!e->nruns || pfn >= e->hi || e->lo >= pfn + count)
			continue;
		for (unsigned r = 0; r < e->nruns; r++)
			if (pfn < e->runs[r].pfn + e->runs[r].count && e->runs[r].pfn < pfn + count)
				return 1;
	}
	return 0;
}

/* Fill the element's PFN array and make it available on `vq`: up to 256 PFNs
 * per descriptor, so a whole block is two 1 KiB descriptors in one chain. */
int bal_elem_submit(struct balloon *b, struct virtq *vq, struct balloon_elem *e,
                       int state, uint64_t now)
{
	bal_fill_pfns(e);
	struct virtq_buf bufs[2];
	unsigned n = 0;
	for (uint32_t off = 0; off < e->pages; off += BALLOON_PFNS_PER_DESC) {
		uint32_t cnt = (uint32_t)min_u64(BALLOON_PFNS_PER_DESC, e->pages - off);
		bufs[n].addr = e->pfns_pa + off * 4u;
		bufs[n].len = cnt * 4u;
		n++;
	}
	int rc = virtq_add(vq, bufs, n, 0, e);
	if (rc != 0)
		return rc;
	e->state = (uint8_t)state;
	e->submitted_ns = now;
	if (b->await_first) {
		b->reaction_ns = now - b->target_at_ns;
		b->await_first = 0;
	}
	(void)b;
	return 0;
}

void bal_mem_error(struct balloon *b, const char *what, uint64_t pfn, uint32_t count)
{
	b->mem_error = 1;
	klog_ratelimited(&b->lim_mem, LOG_INTERVAL_NS,
	                 "balloon: allocator returned a bad range (pfn 0x%llx, %u frames: %s); "
	                 "not used, inflate stopped",
	                 (unsigned long long)pfn, count, what);
}

/* A range fresh from the allocator must be aligned, inside the tracked frames,
 * and not already the balloon's (acked or in flight): otherwise the allocator
 * handed a frame out twice and using it would lose track of memory. */
int bal_new_range_ok(struct balloon *b, uint64_t pfn, uint32_t count)
{
	const char *why = NULL;
	if (pfn % count)
		why = "misaligned";
	else if (pfn >= b->s.max_pfn || b->s.max_pfn - pfn < count)
		why = "beyond the tracked memory";
	else if (!books_prepare(b, pfn))
		return -1;
	else {
		if (bits_any(b->bitmap, pfn, count))
			why = "already in the balloon";
		else if (bal_in_flight_overlap(b, pfn, count))
			why = "already in flight";
	}
	if (why) {
		bal_mem_error(b, why, pfn, count);
		return 0;
	}
	return 1;
}

/* ------------------------------------------------------------ self-check */

#define CHECK(cond, ...) do { if (!(cond)) { ksnprintf(why, len, __VA_ARGS__); return -1; } } while (0)

int balloon_check(const struct balloon *b, char *why, size_t len)
{
	uint64_t bits = 0, block_runs = 0;
	for (uint64_t blk = 0; blk < b->nblocks; blk++) {
		uint64_t c = 0;
		if (!bal_chunk_ready(b, blk * PAGES_PER_BLOCK)) {   /* nothing there; not mapped */
			CHECK(b->blk_count[blk] == 0, "block %llu: count %u in a chunk without books",
			      (unsigned long long)blk, b->blk_count[blk]);
			continue;
		}
		for (unsigned w = 0; w < PAGES_PER_BLOCK / 64; w++) {
			uint64_t i = blk * (PAGES_PER_BLOCK / 64) + w;
			c += (uint64_t)__builtin_popcountll(b->bitmap[i]);
			CHECK(!(b->heads[i] & ~b->bitmap[i]), "block %llu: a range starts on a free frame",
			      (unsigned long long)blk);
		}
		CHECK(c == b->blk_count[blk], "block %llu: %llu bits but count %u",
		      (unsigned long long)blk, (unsigned long long)c, b->blk_count[blk]);
		bits += c;
		/* the ranges tile the set bits: aligned powers of two, each begun by a head */
		for (uint64_t p = blk * PAGES_PER_BLOCK; p < (blk + 1) * PAGES_PER_BLOCK; ) {
			uint64_t rest = b->bitmap[p / 64] >> (p % 64);   /* skip free frames a word at a time */
			if (!rest) {
				p = (p / 64 + 1) * 64;
				continue;
			}
			if (!(rest & 1)) {
				p += (uint64_t)__builtin_ctzll(rest);
				continue;
			}
			CHECK(head_test(b, p), "frame 0x%llx ballooned but in no range", (unsigned long long)p);
			uint32_t l = bal_run_len(b, p);
			CHECK((l & (l - 1)) == 0 && p % l == 0, "range at 0x%llx of %u frames is not an "
			      "aligned power of two", (unsigned long long)p, l);
			block_runs += l == PAGES_PER_BLOCK;
			p += l;
		}
	}
	CHECK(bits == b->settled, "bitmap has %llu frames, settled says %llu",
	      (unsigned long long)bits, (unsigned long long)b->settled);
	CHECK(block_runs == b->block_runs, "%llu whole-block ranges, counter says %llu",
	      (unsigned long long)block_runs, (unsigned long long)b->block_runs);

	uint64_t infl = 0, defl = 0;
	unsigned nfree = 0;
	for (unsigned i = 0; i < BALLOON_SLOTS; i++) {
		const struct balloon_elem *e = &b->elems[i];
		if (e->state == ELEM_FREE) {
			nfree++;
			CHECK(e->nruns == 0 && e->pages == 0, "free element %u carries runs", i);
			continue;
		}
		CHECK(elem_busy(e), "element %u in a half-built state", i);
		uint64_t pages = 0;
		for (unsigned r = 0; r < e->nruns; r++) {
			const struct balloon_run *run = &e->runs[r];
			CHECK(run->count && (run->count & (run->count - 1)) == 0 && run->pfn % run->count == 0,
			      "element %u run %u is not an aligned power of two", i, r);
			pages += run->count;
			CHECK(run->pfn >= e->lo && run->pfn + run->count <= e->hi,
			      "element %u run %u lies outside the element's span", i, r);
			/* a run lies in one block, so in one chunk */
			CHECK(!bal_chunk_ready(b, run->pfn) || !bits_any(b->bitmap, run->pfn, run->count),
			      "a frame of run 0x%llx+%u both in flight and ballooned",
			      (unsigned long long)run->pfn, run->count);
			/* each pair once: the runs after this one, here and in the
			 * elements after this one */
			for (unsigned j = i; j < BALLOON_SLOTS; j++) {
				const struct balloon_elem *o = &b->elems[j];
				/* o's runs outside its span fail the span check when o's turn comes */
				if (!o->nruns || run->pfn >= o->hi || o->lo >= run->pfn + run->count)
					continue;
				for (unsigned q = j == i ? r + 1 : 0; q < o->nruns; q++) {
					CHECK(!(run->pfn < o->runs[q].pfn + o->runs[q].count &&
					        o->runs[q].pfn < run->pfn + run->count),
					      "in-flight runs overlap at 0x%llx", (unsigned long long)run->pfn);
				}
			}
		}
		CHECK(pages == e->pages, "element %u pages %u != runs %llu", i, e->pages,
		      (unsigned long long)pages);
		if (e->state == ELEM_INFLATE) infl += pages; else defl += pages;
	}
	CHECK(nfree == b->nfree_elems, "free elements %u, counter %u", nfree, b->nfree_elems);
	CHECK(infl == b->inflating && defl == b->deflating,
	      "in flight +%llu/-%llu, counters +%llu/-%llu", (unsigned long long)infl,
	      (unsigned long long)defl, (unsigned long long)b->inflating,
	      (unsigned long long)b->deflating);
	if (b->have_written && !b->broken)
		CHECK(b->actual_written == balloon_actual(b), "actual written %u, books say %llu",
		      b->actual_written, (unsigned long long)balloon_actual(b));
	/* blocks out for reporting: whole blocks, not the balloon's, none twice */
	CHECK(b->rep.in_flight || b->rep.n == 0, "%u report blocks without a report in flight", b->rep.n);
	CHECK(b->rep.n <= BALLOON_REPORT_BLOCKS, "%u report blocks", b->rep.n);
	for (unsigned i = 0; i < b->rep.n; i++) {
		uint64_t pfn = b->rep.pfns[i];
		CHECK(pfn % PAGES_PER_BLOCK == 0 && pfn < b->s.max_pfn && !b->blk_count[pfn / PAGES_PER_BLOCK] &&
		      (i == 0 || b->rep.pfns[i - 1] < pfn),
		      "report block 0x%llx is misaligned, ballooned or repeated", (unsigned long long)pfn);
	}
	CHECK(!b->oom_capped || b->params_changed || b->target <= b->oom_cap,
	      "target %llu above the OOM hold %llu", (unsigned long long)b->target,
	      (unsigned long long)b->oom_cap);
	return 0;
}
