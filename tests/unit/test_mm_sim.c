/* test_mm_sim.c - see test_mm_sim.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

static int sim_pt_init(struct mm_sim *s)
{
	if (pt_init(&s->pt, &mm_sim_pt_ops, s) != MM_OK)
		return -1;
	s->pt_ready = 1;
	return 0;
}

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
	return with_pt ? sim_pt_init(s) : 0;
}

static int sim_populate(void *ctx, void *p, size_t bytes)
{
	struct mm_sim *s = ctx;
	if (s->populate_fail_after > 0 && --s->populate_fail_after == 0)
		return MM_ENOMEM;
	uintptr_t a = (uintptr_t)p & ~(uintptr_t)4095, z = ((uintptr_t)p + bytes + 4095) & ~(uintptr_t)4095;
	/* mprotect is idempotent; a page two sections share counts twice, so
	 * `populated` is an upper bound of what the metadata costs. */
	if (mprotect((void *)a, z - a, PROT_READ | PROT_WRITE) != 0)
		return MM_ENOMEM;
	s->populated += z - a;
	return MM_OK;
}

static void sim_depopulate(void *ctx, void *p, size_t bytes)
{
	struct mm_sim *s = ctx;
	uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095, z = ((uintptr_t)p + bytes) & ~(uintptr_t)4095;
	if (z <= a)
		return;
	madvise((void *)a, z - a, MADV_DONTNEED);
	mprotect((void *)a, z - a, PROT_NONE);    /* touching it again crashes the test */
	s->depopulated += z - a;
}

static void *reserve(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

int mm_sim_init_sparse(struct mm_sim *s, const struct boot_mem_region *r, size_t n,
                       uint64_t ram_end, int with_pt)
{
	return mm_sim_init_sparse_defer(s, r, n, ram_end, with_pt, 0);
}

int mm_sim_init_sparse_defer(struct mm_sim *s, const struct boot_mem_region *r, size_t n,
                             uint64_t ram_end, int with_pt, int defer)
{
	memset(s, 0, sizeof *s);
	s->ram_bytes = (ram_end + PT_SIZE_2M - 1) & ~(PT_SIZE_2M - 1);
	s->ram = mmap(NULL, s->ram_bytes, PROT_READ | PROT_WRITE,
	              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (s->ram == MAP_FAILED)
		return -1;
	uint64_t maxb = s->ram_bytes >> 21;
	size_t sizes[5] = { maxb * 512 * 8, maxb * 512, maxb * sizeof(struct mblock), maxb * 4,
	                    (maxb + FA_SECTION_BLOCKS - 1) / FA_SECTION_BLOCKS };
	for (int k = 0; k < 5; k++) {
		s->win_bytes[k] = (sizes[k] + 4095) & ~(size_t)4095;
		if (!(s->win[k] = reserve(s->win_bytes[k])))
			return -1;
	}
	struct fa_meta m = {
		.owner = s->win[0], .desc = s->win[1], .blocks = s->win[2], .scratch = s->win[3],
		.sections = s->win[4], .max_blocks = maxb, .populate = sim_populate,
		.depopulate = sim_depopulate, .ctx = s,
		.defer = defer,
	};
	if (fa_init_meta(&s->fa, r, n, &m) != MM_OK)
		return -1;
	return with_pt ? sim_pt_init(s) : 0;
}

int mm_sim_init_flat(struct mm_sim *s, uint64_t mib, int with_pt)
{
	struct boot_mem_region r = { .base = 0, .pages = mib << 8, .type = BOOT_MEM_USABLE };
	return mm_sim_init(s, &r, 1, with_pt);
}

void mm_sim_fini(struct mm_sim *s)
{
	if (s->win[0]) {
		munmap(s->ram, s->ram_bytes);
		for (int k = 0; k < 5; k++)
			if (s->win[k])
				munmap(s->win[k], s->win_bytes[k]);
	} else {
		free(s->ram);
	}
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
