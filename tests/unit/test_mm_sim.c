/* test_mm_sim.c - see test_mm_sim.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "test_mm_sim.h"

void *mm_sim_p2v(struct mm_sim *s, uint64_t pa)
{
	if (pa >= s->ram_bytes) {
		fprintf(stderr, "mm_sim: physical address %#llx outside simulated RAM\n",
		        (unsigned long long)pa);
		abort();
	}
	return s->ram + pa;
}

static void *sim_p2v(void *ctx, uint64_t pa) { return mm_sim_p2v(ctx, pa); }

static int sim_alloc_table(void *ctx, uint64_t *pa)
{
	struct mm_sim *s = ctx;
	uint64_t pfn;
	int err = fa_alloc(&s->fa, 0, &pfn);
	if (err)
		return err;
	*pa = pfn << PAGE_SHIFT;
	return MM_OK;
}

static void sim_free_table(void *ctx, uint64_t pa)
{
	struct mm_sim *s = ctx;
	fa_free(&s->fa, pa >> PAGE_SHIFT, 0);
}

static void sim_flush(void *ctx, uint64_t va)
{
	struct mm_sim *s = ctx;
	s->flushes++;
	s->last_flush_va = va;
}

const struct pt_ops mm_sim_pt_ops = {
	.phys_to_virt = sim_p2v,
	.alloc_table = sim_alloc_table,
	.free_table = sim_free_table,
	.flush_tlb = sim_flush,
};

int mm_sim_init(struct mm_sim *s, const struct boot_mem_region *r, size_t n, int with_pt)
{
	memset(s, 0, sizeof *s);
	uint64_t end = 0;
	for (size_t k = 0; k < n; k++)
		if (r[k].base + r[k].pages * PAGE_SIZE > end)
			end = r[k].base + r[k].pages * PAGE_SIZE;
	s->ram_bytes = (end + PT_SIZE_2M - 1) & ~(PT_SIZE_2M - 1);
	s->ram = aligned_alloc(4096, s->ram_bytes);
	size_t meta_bytes = fa_meta_bytes(r, n);
	s->meta = malloc(meta_bytes ? meta_bytes : 1);
	if (!s->ram || !s->meta)
		return -1;
	if (fa_init(&s->fa, r, n, s->meta, meta_bytes) != MM_OK)
		return -1;
	if (with_pt) {
		if (pt_init(&s->pt, &mm_sim_pt_ops, s) != MM_OK)
			return -1;
		s->pt_ready = 1;
	}
	return 0;
}

int mm_sim_init_flat(struct mm_sim *s, uint64_t mib, int with_pt)
{
	struct boot_mem_region r = { .base = 0, .pages = mib << 8, .type = BOOT_MEM_USABLE };
	return mm_sim_init(s, &r, 1, with_pt);
}

void mm_sim_fini(struct mm_sim *s)
{
	free(s->ram);
	free(s->meta);
	memset(s, 0, sizeof *s);
}

uint8_t *mm_sim_at(struct mm_sim *s, uint64_t va)
{
	struct pt_walk w;
	return pt_lookup(&s->pt, va, &w) == MM_OK ? mm_sim_p2v(s, w.pa) : NULL;
}

int mm_sim_teardown(void **state)
{
	struct mm_sim *s = *state;
	char why[200];
	int bad = fa_check(&s->fa, why, sizeof why);
	pt_destroy(&s->pt);
	mm_sim_fini(s);
	return bad ? -1 : 0;
}
