/*
 * pgtable.c - 4-level x86-64 page tables through the pt_ops hooks.
 * See pgtable.h for the contract.
 *
 * Levels are numbered like the hardware walk: 4 = PML4 (va bits 47..39),
 * 3 = PDPT, 2 = PD (2 MiB leaves), 1 = PT (4 KiB leaves).
 */
#include <string.h>
#include "mm/pgtable.h"

static inline uint64_t *table(const struct pgtable *pt, uint64_t pa)
{
	return (uint64_t *)pt->ops->phys_to_virt(pt->ctx, pa & PTE_ADDR);
}

static inline unsigned index_at(uint64_t va, int level)
{
	return (unsigned)(va >> (12 + 9 * (level - 1))) & 511;
}

int pt_init(struct pgtable *pt, const struct pt_ops *ops, void *ctx)
{
	uint64_t pa;
	if (!pt || !ops || !ops->phys_to_virt || !ops->alloc_table || !ops->flush_tlb)
		return MM_EINVAL;
	pt->ops = ops;
	pt->ctx = ctx;
	if (ops->alloc_table(ctx, &pa) != MM_OK)
		return MM_ENOMEM;
	pt->root = pa;
	memset(table(pt, pa), 0, PT_SIZE_4K);
	return MM_OK;
}

static void destroy_level(struct pgtable *pt, uint64_t pa, int level)
{
	if (level > 1) {
		uint64_t *t = table(pt, pa);
		for (unsigned i = 0; i < 512; i++)
			if ((t[i] & PTE_P) && !(t[i] & PTE_PS))
				destroy_level(pt, t[i] & PTE_ADDR, level - 1);
	}
	if (pt->ops->free_table)
		pt->ops->free_table(pt->ctx, pa);
}

void pt_destroy(struct pgtable *pt)
{
	if (pt && pt->root) {
		destroy_level(pt, pt->root, 4);
		pt->root = 0;
	}
}

/* Entry for va at `target` level (1 or 2), creating tables on the way if
 * asked. MM_EEXIST if a larger page covers va, MM_ENOENT if a table is
 * missing and create is 0. */
static int walk(const struct pgtable *pt, uint64_t va, int target, int create, uint64_t **entry)
{
	uint64_t *t = table(pt, pt->root);
	for (int level = 4; level > target; level--) {
		uint64_t *e = &t[index_at(va, level)];
		if (!(*e & PTE_P)) {
			uint64_t pa;
			if (!create)
				return MM_ENOENT;
			if (pt->ops->alloc_table(pt->ctx, &pa) != MM_OK)
				return MM_ENOMEM;
			memset(table(pt, pa), 0, PT_SIZE_4K);
			*e = (pa & PTE_ADDR) | PTE_P | PTE_W;
		} else if (*e & PTE_PS) {
			return MM_EEXIST;
		}
		t = table(pt, *e);
	}
	*entry = &t[index_at(va, target)];
	return MM_OK;
}

static inline uint64_t level_size(int level)
{
	return level == 3 ? PT_SIZE_1G : level == 2 ? PT_SIZE_2M : PT_SIZE_4K;
}

static inline uint64_t leaf_entry(uint64_t pa, uint64_t flags, int level)
{
	return pa | (flags & ~(PTE_ADDR | PTE_PS)) | PTE_P | (level > 1 ? PTE_PS : 0);
}

/* Map one page of the level's size; *written (if asked) is its entry. */
static int map_one(struct pgtable *pt, uint64_t va, uint64_t pa, uint64_t flags, int level,
                   uint64_t **written)
{
	uint64_t *e;
	if (!pt_canonical(va) || ((va | pa) & (level_size(level) - 1)) || (pa & ~PTE_ADDR))
		return MM_EINVAL;
	int err = walk(pt, va, level, 1, &e);
	if (err)
		return err;
	if (*e & PTE_P)
		return MM_EEXIST;
	*e = leaf_entry(pa, flags, level);
	if (written)
		*written = e;
	return MM_OK;
}

int pt_map(struct pgtable *pt, uint64_t va, uint64_t pa, uint64_t flags)
{
	return map_one(pt, va, pa, flags, 1, NULL);
}

int pt_map_2m(struct pgtable *pt, uint64_t va, uint64_t pa, uint64_t flags)
{
	return map_one(pt, va, pa, flags, 2, NULL);
}

/* The page size pt_map_range uses at va: the largest allowed that fits. */
static int range_level(uint64_t va, uint64_t pa, uint64_t len, int allow_2m)
{
	if (allow_2m >= 2 && len >= PT_SIZE_1G && !((va | pa) & (PT_SIZE_1G - 1)))
		return 3;
	if (allow_2m && len >= PT_SIZE_2M && !((va | pa) & (PT_SIZE_2M - 1)))
		return 2;
	return 1;
}

int pt_map_range(struct pgtable *pt, uint64_t va, uint64_t pa, uint64_t len,
                 uint64_t flags, int allow_2m)
{
	if ((va | pa | len) & (PT_SIZE_4K - 1))
		return MM_EINVAL;
	while (len) {
		int level = range_level(va, pa, len, allow_2m);
		uint64_t size = level_size(level), *e;
		int err = map_one(pt, va, pa, flags, level, &e);
		if (err)
			return err;
		/* The following entries of the same table, while the same page
		 * size is the one to use: written in place, not walked to from
		 * the root one by one (a 1 GiB guest's direct map is 500 such
		 * 2 MiB entries; each walk cost ~1 us under TCG). */
		unsigned idx = index_at(va, level);
		for (;;) {
			va += size;
			pa += size;
			len -= size;
			if (!len || ++idx == 512 || range_level(va, pa, len, allow_2m) != level)
				break;
			if (pa & ~PTE_ADDR)
				return MM_EINVAL;
			if (*++e & PTE_P)
				return MM_EEXIST;
			*e = leaf_entry(pa, flags, level);
		}
	}
	return MM_OK;
}

/* Leaf entry mapping va (any size), or NULL. */
static uint64_t *leaf(const struct pgtable *pt, uint64_t va, uint64_t *size)
{
	if (!pt_canonical(va))
		return NULL;
	uint64_t *t = table(pt, pt->root);
	for (int level = 4; level >= 1; level--) {
		uint64_t *e = &t[index_at(va, level)];
		if (!(*e & PTE_P))
			return NULL;
		if (level == 1 || (*e & PTE_PS)) {
			if (level == 4)
				return NULL;   /* PS is reserved in a PML4E */
			*size = 1ull << (12 + 9 * (level - 1));
			return e;
		}
		t = table(pt, *e);
	}
	return NULL;
}

int pt_lookup(const struct pgtable *pt, uint64_t va, struct pt_walk *out)
{
	uint64_t size;
	uint64_t *e = leaf(pt, va, &size);
	if (!e)
		return MM_ENOENT;
	uint64_t base = *e & PTE_ADDR & ~(size - 1);
	out->pa = base + (va & (size - 1));
	out->flags = *e & ~PTE_ADDR;
	out->size = size;
	return MM_OK;
}

int pt_unmap(struct pgtable *pt, uint64_t va, uint64_t *old_pa, uint64_t *size)
{
	uint64_t sz;
	uint64_t *e = leaf(pt, va, &sz);
	if (!e)
		return MM_ENOENT;
	if (va & (sz - 1))
		return MM_EINVAL;   /* va must be the start of the page */
	uint64_t pa = *e & PTE_ADDR & ~(sz - 1);
	*e = 0;
	pt->ops->flush_tlb(pt->ctx, va);
	if (old_pa)
		*old_pa = pa;
	if (size)
		*size = sz;
	return MM_OK;
}

int pt_remap(struct pgtable *pt, uint64_t va, uint64_t expect_pa, uint64_t new_pa)
{
	uint64_t sz;
	if ((va | expect_pa | new_pa) & (PT_SIZE_4K - 1) || (new_pa & ~PTE_ADDR))
		return MM_EINVAL;
	uint64_t *e = leaf(pt, va, &sz);
	if (!e)
		return MM_ENOENT;
	if (sz != PT_SIZE_4K || (*e & PTE_ADDR) != expect_pa)
		return MM_EMISMATCH;
	*e = (*e & ~(PTE_ADDR | PTE_A | PTE_D)) | new_pa;
	pt->ops->flush_tlb(pt->ctx, va);
	return MM_OK;
}

int pt_set_marker(struct pgtable *pt, uint64_t va, uint64_t value)
{
	uint64_t *e;
	if (!pt_canonical(va) || (va & (PT_SIZE_4K - 1)) || (value & PTE_P))
		return MM_EINVAL;
	int err = walk(pt, va, 1, value != 0, &e);
	if (err == MM_ENOENT && value == 0)
		return MM_OK;       /* no table: nothing to clear */
	if (err)
		return err;
	if (*e & PTE_P)
		return MM_EEXIST;
	*e = value;
	return MM_OK;
}

int pt_get_marker(const struct pgtable *pt, uint64_t va, uint64_t *value)
{
	uint64_t *e;
	if (!pt_canonical(va) || (va & (PT_SIZE_4K - 1)))
		return MM_EINVAL;
	if (walk(pt, va, 1, 0, &e) != MM_OK || (*e & PTE_P) || *e == 0)
		return MM_ENOENT;
	*value = *e;
	return MM_OK;
}
