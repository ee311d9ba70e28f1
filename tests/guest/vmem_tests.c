/*
 * vmem_tests.c - in-guest self-tests of virtio-mem on the hypervisor at hand
 * (drivers/virtio_mem/, contract in vmem.h). Without a virtio-mem device each
 * test skips (ST_SKIP); the QEMU scenario selftest_vmem boots with one whose
 * requested-size is already set, so the driver plugs memory at start.
 *
 *   vmem_device        the driver found the device, brought it up in the
 *                      spec's order, validated its config (block size,
 *                      region alignment, above boot RAM, inside the address
 *                      width) and reaches the host's requested size, with
 *                      every plugged block handed to the allocator.
 *   vmem_hot_movable   plugged memory takes movable allocations (anonymous
 *                      memory lands there, is written and read through its
 *                      mapping) but never unmovable ones: the kernel's own
 *                      allocations run out while plugged blocks are free.
 *   vmem_books         `vmem check` (vmem_check) holds, the books agree
 *                      with the device, and plugged memory is never pinned.
 */
#include <stdint.h>
#include <string.h>
#include "drivers/virtio_mem/virtio_mem.h"
#include "kclock.h"
#include "kernel/lib/boot.h"
#include "kernel/lib/selftest.h"
#include "mm/kmem.h"
#include "mm/mm.h"
#include "units.h"

#define NEED_VMEM(d) do { \
	(d) = virtio_mem_get(); \
	if (!(d)) \
		ST_SKIP("no virtio-mem device"); \
	if (!(d)->transport_up || !(d)->core_up) \
		ST_FAIL("virtio-mem device found but not running (transport %d, core %d)", \
		        (d)->transport_up, (d)->core_up); \
} while (0)

/* Drive the driver until it is at the host's target (bounded). */
static int settle(struct virtio_mem_dev *d, struct vmem_status *st, uint64_t ns)
{
	uint64_t t0 = clock_ns();
	for (;;) {
		virtio_mem_poll(clock_ns());
		vmem_get_status(d->v, st);
		if (st->state == VMEM_AT_TARGET && st->plugged == st->target && st->device_plugged == st->plugged)
			return 0;
		if (clock_ns() - t0 > ns)
			return -1;
	}
}

/* The runner meets a file's tests last-defined first: vmem_device runs
 * first, then vmem_hot_movable, then vmem_books. */

SELFTEST(vmem_books)
{
	struct virtio_mem_dev *d;
	NEED_VMEM(d);
	struct vmem_status st;
	if (settle(d, &st, 10 * NS_PER_S) != 0)
		ST_FAIL("not at the host's size after 10 s (%s)", vmem_state_name(st.state));
	char why[160];
	if (vmem_check(d->v, why, sizeof why) != 0)
		ST_FAIL("vmem check: %s", why);
	ST_ASSERT(st.device_plugged == st.plugged);
	ST_ASSERT(st.blocks_in_flight == 0 && st.shortfall == 0);
	struct vmem_class_counts cc;
	vmem_count_classes(d->v, &cc);
	uint64_t sub = st.block_size / BLOCK_SIZE;
	ST_ASSERT(cc.free_resident + cc.free_not_resident + cc.movable + cc.pinned == st.blocks_online * sub);
	ST_ASSERT(cc.pinned == 0);
	for (uint64_t i = 0; i < st.region_size / st.block_size; i++)
		ST_ASSERT(vmem_block_online(d->v, i) == vmem_block_plugged(d->v, i));
	return 0;
}

#define PIECE      (2 * MIB)
#define MAX_PIECES 1024u
#define MAX_BLOCKS 2048u
#define MAX_FRAMES 65536u

static uint8_t *pieces[MAX_PIECES];
static uint64_t blocks9[MAX_BLOCKS], frames0[MAX_FRAMES];

static inline uint64_t word(const void *p, unsigned i)
{
	return ((uint64_t)(uintptr_t)p + i) * 0x9e3779b97f4a7c15ull;
}

static uint64_t pa_of(const void *va)
{
	struct pt_walk w;
	return pt_lookup(mm_kernel_pt(), (uint64_t)(uintptr_t)va, &w) == MM_OK ? w.pa : ~0ull;
}

/* Wholly free 2 MiB blocks of plugged memory now. */
static uint64_t hot_free_blocks(const struct vmem_status *st)
{
	uint64_t n = 0;
	for (uint64_t pa = st->addr; pa < st->addr + st->region_size; pa += BLOCK_SIZE) {
		struct mm_block_info bi;
		if (mm_block_info(pa >> PAGE_SHIFT, &bi) == MM_OK && bi.online && bi.kind == BK_FREE)
			n++;
	}
	return n;
}

SELFTEST(vmem_hot_movable)
{
	struct virtio_mem_dev *d;
	NEED_VMEM(d);
	struct vmem_status st;
	if (settle(d, &st, 10 * NS_PER_S) != 0 || st.plugged == 0)
		ST_FAIL("needs plugged memory (plugged %llu MiB, %s)", (unsigned long long)(st.plugged >> 20),
		        vmem_state_name(st.state));
	mm_online_all();
	uint64_t lo = st.addr, hi = st.addr + st.region_size;

	/* Movable: anonymous memory until a page lands in plugged memory (boot
	 * RAM the host backs comes first), each page written through its VA. */
	unsigned np = 0;
	uint64_t hot_pa = ~0ull;
	while (hot_pa == ~0ull && np < MAX_PIECES) {
		uint8_t *p = kmem_anon_map(PIECE);
		if (!p)
			break;
		pieces[np++] = p;
		for (uint64_t off = 0; off < PIECE; off += PAGE_SIZE) {
			uint64_t *w = (uint64_t *)(p + off);
			for (unsigned i = 0; i < 512; i++)
				w[i] = word(w, i);
			uint64_t pa = pa_of(p + off);
			if (pa >= lo && pa < hi && hot_pa == ~0ull)
				hot_pa = pa;
		}
	}
	struct mm_block_info bi = { 0 };
	int hot_kind = hot_pa != ~0ull && mm_block_info((hot_pa >> PAGE_SHIFT) & ~(uint64_t)(PAGES_PER_BLOCK - 1),
	                                                &bi) == MM_OK ? bi.kind : -1;

	/* Unmovable: the kernel's own allocations, 2 MiB blocks then frames,
	 * until the allocator says no (its OOM notifiers ran: compaction). Not a
	 * line printed, not a byte allocated otherwise until all is given back. */
	struct frame_alloc *fa = mm_frames();
	unsigned n9 = 0, n0 = 0, in_hot = 0;
	uint64_t pfn;
	while (n9 < MAX_BLOCKS && fa_alloc(fa, BLOCK_ORDER, &pfn) == MM_OK)
		blocks9[n9++] = pfn;
	while (n0 < MAX_FRAMES && fa_alloc(fa, 0, &pfn) == MM_OK)
		frames0[n0++] = pfn;
	int exhausted = n9 < MAX_BLOCKS && n0 < MAX_FRAMES;
	uint64_t hot_free_then = hot_free_blocks(&st);
	for (unsigned i = 0; i < n9; i++)
		in_hot += (blocks9[i] << PAGE_SHIFT) >= lo && (blocks9[i] << PAGE_SHIFT) < hi;
	for (unsigned i = 0; i < n0; i++)
		in_hot += (frames0[i] << PAGE_SHIFT) >= lo && (frames0[i] << PAGE_SHIFT) < hi;
	for (unsigned i = 0; i < n0; i++)
		fa_free(fa, frames0[i], 0);
	for (unsigned i = 0; i < n9; i++)
		fa_free(fa, blocks9[i], BLOCK_ORDER);

	/* The movable data survived whatever the OOM path moved. */
	uint64_t bad = 0;
	for (unsigned k = 0; k < np; k++) {
		for (uint64_t off = 0; off < PIECE; off += PAGE_SIZE) {
			const uint64_t *w = (const uint64_t *)(pieces[k] + off);
			for (unsigned i = 0; i < 512; i++)
				bad += w[i] != word(w, i);
		}
		kmem_anon_unmap(pieces[k], PIECE);
	}
	printf("    %u MiB anonymous (a page in plugged memory at %#llx), unmovable: %u blocks + %u frames "
	       "until refused, %u of them in plugged memory, %llu plugged 2 MiB blocks free then\n",
	       np * 2, (unsigned long long)hot_pa, n9, n0, in_hot, (unsigned long long)hot_free_then);
	if (hot_pa == ~0ull)
		ST_FAIL("%u MiB of anonymous memory and none of it in plugged memory", np * 2);
	ST_ASSERT(hot_kind == BK_MOVABLE);
	ST_ASSERT(bad == 0);
	ST_ASSERT(exhausted);
	ST_ASSERT(in_hot == 0);
	ST_ASSERT(hot_free_then > 0);   /* refused while plugged memory was free */
	char why[160];
	if (fa_check(fa, why, sizeof why) != MM_OK)
		ST_FAIL("allocator: %s", why);
	return 0;
}

SELFTEST(vmem_device)
{
	struct virtio_mem_dev *d;
	NEED_VMEM(d);
	uint8_t s = vp_status(&d->vp);
	if (s != (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
	          VIRTIO_CONFIG_S_DRIVER_OK))
		ST_FAIL("device status 0x%x", s);
	ST_ASSERT(d->vp.features & (1ull << VIRTIO_F_VERSION_1));
	ST_ASSERT((d->vp.features & ~d->offered) == 0);
	ST_ASSERT(!(d->vp.features & (1ull << VIRTIO_MEM_F_ACPI_PXM)));
	if (d->offered & (1ull << VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE))
		ST_ASSERT(d->vp.features & (1ull << VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE));

	struct vmem_status st;
	if (settle(d, &st, 10 * NS_PER_S) != 0)
		ST_FAIL("not at the host's size after 10 s: %s, plugged %llu MiB, target %llu MiB, device %llu MiB",
		        vmem_state_name(st.state), (unsigned long long)(st.plugged >> 20),
		        (unsigned long long)(st.target >> 20), (unsigned long long)(st.device_plugged >> 20));
	/* The config as validated: a power-of-two block of whole 2 MiB blocks,
	 * an aligned region above boot RAM and inside what the kernel maps. */
	uint64_t bs = st.block_size, max_phys = vmem_kernel_max_phys();
	ST_ASSERT(bs >= BLOCK_SIZE && (bs & (bs - 1)) == 0);
	ST_ASSERT(st.addr % bs == 0 && st.region_size % bs == 0 && st.region_size > 0);
	const struct boot_info *bi = boot_info_get();
	ST_ASSERT(bi != NULL);
	for (uint32_t i = 0; i < bi->mmap_count && i < BOOT_MMAP_MAX; i++) {
		const struct boot_mem_region *r = &bi->mmap[i];
		if (r->base < st.addr + st.region_size && st.addr < r->base + (r->pages << PAGE_SHIFT))
			ST_FAIL("region %#llx + %llu MiB overlaps boot map entry %u at %#llx", (unsigned long long)st.addr,
			        (unsigned long long)(st.region_size >> 20), i, (unsigned long long)r->base);
	}
	ST_ASSERT(st.addr + st.region_size <= max_phys);
	ST_ASSERT(st.usable <= st.region_size && st.target <= st.usable);
	ST_ASSERT(st.requested == st.target);   /* QEMU asks in whole blocks, within usable */
	char why[160];
	struct vmem_config c = { bs, 0, st.addr, st.region_size, st.usable, st.device_plugged, st.requested };
	if (vmem_check_config(&c, max_phys, why, sizeof why) != 0)
		ST_FAIL("the running config fails its own check: %s", why);
	c.block_size = 1 * MIB;   /* the driver refuses blocks smaller than the allocator's */
	ST_ASSERT(vmem_check_config(&c, max_phys, why, sizeof why) != 0);
	/* Every plugged block is online: in the allocator, counted by mm. */
	ST_ASSERT(st.blocks_online * bs == st.plugged && st.blocks_offline == 0);
	ST_ASSERT(vmem_online_bytes(d->v) == st.plugged);
	ST_ASSERT(mm_hot_pages() << PAGE_SHIFT == st.plugged);
	return 0;
}
