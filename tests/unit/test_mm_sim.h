/*
 * test_mm_sim.h - simulated physical memory for mm/ host tests and the host
 * benchmark: a 4 KiB-aligned malloc'd array stands for RAM at physical
 * address 0, a frame allocator manages it, and a page table lives in it with
 * hooks that count TLB flushes. Not a test itself.
 */
#ifndef TEST_MM_SIM_H
#define TEST_MM_SIM_H

#include <stddef.h>
#include <stdint.h>
#include "mm/frame.h"
#include "mm/pgtable.h"

struct mm_sim {
	struct frame_alloc fa;
	void *meta;
	/* Sparse metadata (mm_sim_init_sparse): reserved windows, made
	 * accessible page by page as the allocator populates them. */
	void *win[5];
	size_t win_bytes[5];
	uint64_t populated;      /* bytes made accessible */
	uint64_t depopulated;    /* bytes given back (and made inaccessible again) */
	int populate_fail_after; /* > 0: that many more populate calls succeed */
	uint8_t *ram;            /* physical address 0 */
	uint64_t ram_bytes;
	struct pgtable pt;
	uint64_t flushes;        /* flush_tlb calls */
	uint64_t last_flush_va;
	int pt_ready;
};

/* Allocator over `r`; RAM array covering up to the highest region end.
 * with_pt: also create an empty page table. 0 on success. */
int mm_sim_init(struct mm_sim *s, const struct boot_mem_region *r, size_t n, int with_pt);
/* One usable region [0, mib MiB). */
int mm_sim_init_flat(struct mm_sim *s, uint64_t mib, int with_pt);
/* Sparse: metadata in PROT_NONE windows that populate() opens page by page
 * (touching metadata of an absent section crashes the test), RAM reserved
 * (MAP_NORESERVE) up to ram_end so memory can be hot-added below it. */
int mm_sim_init_sparse(struct mm_sim *s, const struct boot_mem_region *r, size_t n,
                       uint64_t ram_end, int with_pt);
/* The same with fa_meta.defer: no section online until fa_online_boot. */
int mm_sim_init_sparse_defer(struct mm_sim *s, const struct boot_mem_region *r, size_t n,
                             uint64_t ram_end, int with_pt, int defer);
void mm_sim_fini(struct mm_sim *s);
void *mm_sim_p2v(struct mm_sim *s, uint64_t pa);
/* Host pointer to the byte mapped at `va` in s->pt, NULL if unmapped. */
uint8_t *mm_sim_at(struct mm_sim *s, uint64_t va);
/* cmocka teardown: verify the allocator (fa_check), free the tables and the
 * simulation; -1 if the allocator's invariants broke during the test. */
int mm_sim_teardown(void **state);

extern const struct pt_ops mm_sim_pt_ops;

#endif
