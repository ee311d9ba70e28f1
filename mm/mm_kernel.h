/*
 * mm_kernel.h - the kernel's one instance of each mm structure, shared by the
 * kernel-side mm files (boot_init.c, mm.c, kmem.c, heap.c, mm_cmd.c). Not for other modules: they use mm/mm.h and mm/kmem.h.
 */
#ifndef MM_MM_KERNEL_H
#define MM_MM_KERNEL_H

#include "mm/anon.h"
#include "mm/frame.h"
#include "mm/pgtable.h"
#include "mm/vregion.h"

struct mm_kernel {
	struct frame_alloc fa;
	struct pgtable pt;
	struct vregion heap;
	struct anon anon;          /* set up on first use (kmem.c anon_up) */
	int anon_state;            /* 0 not yet, 1 up, -1 set-up failed (said once) */
	int ready;                 /* our tables are live, all of the above usable */
	int in_sbrk;               /* sbrk is growing the heap (inside newlib malloc) */
	uint64_t kernel_virt, kernel_phys, kernel_size;
	uint64_t reclaimed_pages;  /* boot memory given to the allocator after the switch */
	uint64_t table_pages;      /* page-table frames (kernel tables, metadata windows) */
	uint64_t meta_pages;       /* frames backing the frame metadata windows */
	uint64_t lazy_next;        /* next free address in the lazy window */
	uint64_t lazy_pages;       /* frames backing it */
	uint64_t hot_pages;        /* frames hot-added and still online */
	uint64_t init_ns;
	uint64_t online_t0, online_ns; /* boot RAM coming online after boot: start, time taken */
	int online_done;           /* all boot RAM is online (or it stopped with a line) */
	uint64_t pending_pages;    /* boot RAM not online yet (counted in mm_total_pages) */
};

extern struct mm_kernel mmk;

/* Early MMIO mappings handed out on the loader's tables, re-created in ours. */
void mm_early_mmio_replay(void);

#endif
