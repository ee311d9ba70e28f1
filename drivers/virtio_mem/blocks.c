/*
 * blocks.c - the core's block books and its choices: where the next plug
 * run starts, which plugged blocks to give back and in what order, and
 * putting blocks back when the device refused. Talks to memory only through
 * the mem ops (vmem.h); no device access.
 */
#include <string.h>
#include "drivers/virtio_mem/internal.h"

int vmem_find_plug_run(const struct vmem *v, uint64_t limit, uint64_t max, uint64_t *first, uint64_t *n)
{
	if (limit > v->nblocks)
		limit = v->nblocks;
	uint64_t i = 0;
	while (i < limit) {
		uint64_t w = v->plugged[i >> 6];
		if ((i & 63) == 0 && w == ~0ull) {   /* a whole plugged word */
			i += 64;
			continue;
		}
		if (!bit_get(v->plugged, i))
			break;
		i++;
	}
	if (i >= limit || max == 0)
		return -1;
	uint64_t k = 0;
	while (i + k < limit && k < max && !bit_get(v->plugged, i + k))
		k++;
	*first = i;
	*n = k;
	return 0;
}

int vmem_in_batch(const struct vmem *v, uint64_t idx)
{
	for (unsigned i = v->batch_pos; i < v->batch_n; i++)
		if (v->batch[i] == idx)
			return 1;
	return 0;
}

uint64_t vmem_stranded(const struct vmem *v)
{
	return v->n_plugged - v->n_online - (v->batch_n - v->batch_pos);
}

void vmem_batch_sort(struct vmem *v)
{
	for (unsigned i = 1; i < v->batch_n; i++) {
		uint32_t x = v->batch[i];
		unsigned j = i;
		for (; j > 0 && v->batch[j - 1] > x; j--)
			v->batch[j] = v->batch[j - 1];
		v->batch[j] = x;
	}
}

/* Classes, best first (vmem.h): what unplugging the block costs the guest
 * and gives the host. CL_MOVABLE_FITS: a movable block among the fewest-used
 * ones whose data the free frames of the other partly used plugged blocks
 * can take - memory the host backs, so emptying it releases a whole host
 * page without making another one resident, which a free block the host
 * never backed does not. */
enum { CL_FREE_RESIDENT, CL_MOVABLE_FITS, CL_FREE, CL_MOVABLE, CL_PINNED };

/* The class of device block idx, and its used frames (what must move). */
static int classify(const struct vmem *v, uint64_t idx, uint64_t *used)
{
	uint64_t pfn = vmem_block_pfn(v, idx);
	int cls = CL_FREE_RESIDENT;
	*used = 0;
	for (unsigned j = 0; j < v->sub; j++) {
		struct vmem_block_info bi = { 0 };
		if (v->s.mops->block_info(v->s.mctx, pfn + (uint64_t)j * PAGES_PER_BLOCK, &bi) != 0 || !bi.online)
			return CL_PINNED;
		if (bi.kind == VMEM_BK_FREE) {
			if (!bi.resident && cls < CL_FREE)
				cls = CL_FREE;
		} else if (bi.kind == VMEM_BK_MOVABLE && bi.nfree <= PAGES_PER_BLOCK) {
			cls = CL_MOVABLE;
			*used += PAGES_PER_BLOCK - bi.nfree;
		} else
			return CL_PINNED;   /* unmovable, ballooned, isolated, absent, or nonsense */
	}
	return cls;
}

struct cand { uint32_t idx; uint64_t key; };

/* Keep the `lim` best candidates, sorted by key; blocks come in ascending
 * order, so equal keys stay lowest-address first (contiguous runs form). */
static void consider(struct cand *top, unsigned *nt, unsigned lim, uint32_t idx, uint64_t key)
{
	unsigned n = *nt;
	if (n == lim && top[n - 1].key <= key)
		return;
	unsigned j = n < lim ? n++ : n - 1;
	for (; j > 0 && top[j - 1].key > key; j--)
		top[j] = top[j - 1];
	top[j] = (struct cand){ idx, key };
	*nt = n;
}

unsigned vmem_choose_unplug(struct vmem *v, uint64_t want, uint64_t now)
{
	const struct vmem_params *p = &v->s.params;
	v->batch_n = v->batch_pos = 0;
	v->rate_limited = 0;
	if (want == 0)
		return 0;

	/* 1. Plugged blocks the allocator does not have: free to give back. */
	for (uint64_t w = 0; w < (v->nblocks + 63) / 64 && v->batch_n < want && v->batch_n < VMEM_BATCH; w++) {
		uint64_t off = v->plugged[w] & ~v->online[w];
		while (off && v->batch_n < want && v->batch_n < VMEM_BATCH) {
			unsigned b = (unsigned)__builtin_ctzll(off);
			off &= off - 1;
			v->batch[v->batch_n++] = (uint32_t)(w * 64 + b);
		}
	}
	unsigned stranded = v->batch_n;
	uint64_t lim = min_u64(want - stranded, VMEM_BATCH - stranded);
	if (lim == 0)
		return v->batch_n;

	/* 2. Limits on online memory: the rate, then min_free (every 2 MiB
	 * block unplugged costs 512 free frames, whether it was free or its
	 * frames moved into free frames elsewhere). */
	uint64_t rate = p->rate_blocks_per_s;
	uint64_t credit = rate_credit(&v->rate, rate, now, v->sub, max_u64(2ull * v->sub, rate)) / v->sub;
	if (credit < lim) {
		v->rate_limited = 1;
		lim = credit;
	}
	uint64_t free = v->s.mops->free_pages(v->s.mctx);
	uint64_t avail = free > p->min_free_pages ? (free - p->min_free_pages) / v->pages_per_dblock : 0;
	int min_free_limited = avail < lim;
	if (min_free_limited)
		lim = avail;
	if (lim == 0) {
		/* Below one device block of free memory even without min_free:
		 * whatever is in the plugged blocks has nowhere to go. */
		if (min_free_limited && !stranded)
			v->short_reason = free >= v->pages_per_dblock && p->min_free_pages ? VSHORT_MIN_FREE
			                                                                    : VSHORT_NO_ROOM;
		return v->batch_n;
	}

	/* 3. How many movable blocks the others can absorb: with P partly used
	 * movable device blocks holding `room` free frames between them, any
	 * k <= room / (frames per device block) of them can be emptied into the
	 * rest (their data fits in P - k blocks). Take the fewest-used k: a
	 * histogram of used frames (in 2 MiB-block units) finds the cut. */
	static uint32_t hist[PAGES_PER_BLOCK + 1];   /* one core, one caller at a time */
	memset(hist, 0, sizeof hist);
	uint64_t room = 0;
	for (uint64_t w = 0; w < (v->nblocks + 63) / 64; w++)
		for (uint64_t on = v->online[w]; on; on &= on - 1) {
			uint64_t used;
			if (classify(v, w * 64 + (unsigned)__builtin_ctzll(on), &used) != CL_MOVABLE)
				continue;
			room += v->pages_per_dblock - used;
			hist[used / v->sub]++;
		}
	uint64_t fits = room / v->pages_per_dblock, cum = 0;
	int cut = -1;      /* movable blocks with used / sub <= cut are CL_MOVABLE_FITS */
	while (cut < (int)PAGES_PER_BLOCK && cum + hist[cut + 1] <= fits)
		cum += hist[++cut];

	/* 4. The best `lim` online blocks by class, then fewest used frames. */
	static struct cand top[VMEM_BATCH];
	unsigned nt = 0;
	uint64_t pinned = 0;
	for (uint64_t w = 0; w < (v->nblocks + 63) / 64; w++) {
		uint64_t on = v->online[w];
		while (on) {
			unsigned b = (unsigned)__builtin_ctzll(on);
			on &= on - 1;
			uint64_t idx = w * 64 + b, used;
			int cls = classify(v, idx, &used);
			if (cls == CL_PINNED) {
				pinned++;
				continue;
			}
			if (cls == CL_MOVABLE && (int)(used / v->sub) <= cut)
				cls = CL_MOVABLE_FITS;
			consider(top, &nt, (unsigned)lim, (uint32_t)idx, ((uint64_t)cls << 40) | used);
		}
	}

	/* 5. Take them out, best first: the fewest-used movable blocks are
	 * emptied into the fullest ones (the allocator fills partly used blocks
	 * fullest first), which are the last to be chosen. */
	uint64_t busy = 0, noroom = 0, taken = 0;
	for (unsigned i = 0; i < nt; i++) {
		uint64_t idx = top[i].idx;
		int rc = v->s.mops->hot_remove(v->s.mctx, vmem_block_pfn(v, idx), v->pages_per_dblock);
		if (rc == VMEM_MEM_OK) {
			bit_clr(v->online, idx);
			v->n_online--;
			v->batch[v->batch_n++] = (uint32_t)idx;
			taken++;
		} else if (rc == VMEM_MEM_NOMEM)
			noroom++;
		else
			busy++;
	}
	rate_spend(&v->rate, rate, taken * v->sub);
	if (!taken && !stranded) {
		if (noroom && noroom >= busy)
			v->short_reason = VSHORT_NO_ROOM;
		else if (nt || pinned)
			v->short_reason = VSHORT_PINNED;
		else if (min_free_limited)
			v->short_reason = p->min_free_pages ? VSHORT_MIN_FREE : VSHORT_NO_ROOM;
	}
	vmem_batch_sort(v);
	return v->batch_n;
}

uint64_t vmem_put_back(struct vmem *v, uint64_t first, uint64_t n)
{
	uint64_t back = 0, refused = 0;
	int err = 0;
	for (uint64_t idx = first; idx < first + n; idx++) {
		if (!bit_get(v->plugged, idx) || bit_get(v->online, idx))
			continue;
		int rc = v->s.mops->hot_add(v->s.mctx, vmem_block_pfn(v, idx), v->pages_per_dblock);
		if (rc == VMEM_MEM_OK) {
			bit_set(v->online, idx);
			v->n_online++;
			back++;
		} else {
			refused++;
			err = rc;
		}
	}
	if (refused)
		klog_ratelimited(&v->lim_mem, VMEM_LOG_INTERVAL_NS,
		                 "virtio-mem: the allocator would not take back %llu MiB the device kept "
		                 "plugged (%s); it stays offline and goes back to the host next",
		                 (unsigned long long)(refused * v->bs >> 20), vmem_mem_err_name(err));
	return back;
}

void vmem_count_classes(const struct vmem *v, struct vmem_class_counts *out)
{
	*out = (struct vmem_class_counts){ 0 };
	if (!v->up)
		return;
	for (uint64_t idx = 0; idx < v->nblocks; idx++) {
		if (!bit_get(v->online, idx))
			continue;
		uint64_t pfn = vmem_block_pfn(v, idx);
		for (unsigned j = 0; j < v->sub; j++) {
			struct vmem_block_info bi = { 0 };
			if (v->s.mops->block_info(v->s.mctx, pfn + (uint64_t)j * PAGES_PER_BLOCK, &bi) != 0 ||
			    !bi.online)
				out->pinned++;
			else if (bi.kind == VMEM_BK_FREE && bi.resident)
				out->free_resident++;
			else if (bi.kind == VMEM_BK_FREE)
				out->free_not_resident++;
			else if (bi.kind == VMEM_BK_MOVABLE)
				out->movable++;
			else
				out->pinned++;
		}
	}
}
