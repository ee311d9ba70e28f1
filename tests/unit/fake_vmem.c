/* fake_vmem.c - a virtio-mem device and an allocator for host tests; see the header. */
#include <stdio.h>
#include <string.h>
#include "fake_vmem.h"

/* ------------------------------------------------------------ device */

static void drv_err(struct fake_vmem_dev *d, const char *what, uint64_t a)
{
	d->driver_errors++;
	fprintf(stderr, "fake virtio-mem: driver error: %s (%#llx)\n", what, (unsigned long long)a);
}

void fv_dev_init(struct fake_vmem_dev *d, uint64_t addr, uint64_t region, uint64_t bs,
                 uint64_t usable, uint64_t requested)
{
	memset(d, 0, sizeof *d);
	d->cfg = (struct vmem_config){ .block_size = bs, .addr = addr, .region_size = region,
	                               .usable_region_size = usable, .requested_size = requested };
	d->extent = 256 * MIB;
	d->force_type = -1;
	d->force_len = -1;
	d->lie_plugged = -1;
}

uint64_t fv_dev_plugged_blocks(const struct fake_vmem_dev *d)
{
	uint64_t n = 0;
	for (unsigned i = 0; i < FV_MAX_BLOCKS; i++)
		n += d->plugged[i];
	return n;
}

static void sync_plugged(struct fake_vmem_dev *d)
{
	d->cfg.plugged_size = fv_dev_plugged_blocks(d) * d->cfg.block_size;
}

void fv_dev_request(struct fake_vmem_dev *d, uint64_t bytes)
{
	d->cfg.requested_size = bytes;
	uint64_t u = bytes + d->extent;
	u = (u + d->cfg.block_size - 1) / d->cfg.block_size * d->cfg.block_size;
	if (u > d->cfg.region_size)
		u = d->cfg.region_size;
	if (u > d->cfg.usable_region_size)
		d->cfg.usable_region_size = u;
}

static int fv_read_config(void *ctx, struct vmem_config *out)
{
	struct fake_vmem_dev *d = ctx;
	if (d->fail_reads)
		return -1;
	*out = d->cfg;
	if (d->lie_plugged >= 0)
		out->plugged_size = (uint64_t)d->lie_plugged;
	return 0;
}

const struct vmem_transport_ops fv_transport_ops = { .read_config = fv_read_config };

/* QEMU's virtio_mem_valid_range against the usable region. */
static int valid_range(struct fake_vmem_dev *d, uint64_t addr, uint64_t nb, uint64_t *first)
{
	uint64_t bs = d->cfg.block_size;
	if (nb == 0 || addr % bs || addr < d->cfg.addr)
		return 0;
	uint64_t off = addr - d->cfg.addr;
	if (off / bs + nb > d->cfg.usable_region_size / bs)
		return 0;
	*first = off / bs;
	return 1;
}

static uint16_t handle(struct fake_vmem_dev *d, const struct virtio_mem_req *r, uint16_t *state)
{
	uint64_t first, bs = d->cfg.block_size;
	switch (r->type) {
	case VIRTIO_MEM_REQ_PLUG:
	case VIRTIO_MEM_REQ_UNPLUG: {
		int plug = r->type == VIRTIO_MEM_REQ_PLUG;
		if (!valid_range(d, r->addr, r->nb_blocks, &first)) {
			drv_err(d, "range outside the usable region or misaligned", r->addr);
			return VIRTIO_MEM_RESP_ERROR;
		}
		if (plug && d->cfg.plugged_size + r->nb_blocks * bs > d->cfg.requested_size)
			return VIRTIO_MEM_RESP_NACK;
		for (uint64_t i = first; i < first + r->nb_blocks; i++)
			if (d->plugged[i] == plug) {
				drv_err(d, plug ? "plug of a plugged block" : "unplug of an unplugged block", i);
				return VIRTIO_MEM_RESP_ERROR;
			}
		for (uint64_t i = first; i < first + r->nb_blocks; i++)
			d->plugged[i] = (uint8_t)plug;
		sync_plugged(d);
		return VIRTIO_MEM_RESP_ACK;
	}
	case VIRTIO_MEM_REQ_UNPLUG_ALL:
		memset(d->plugged, 0, sizeof d->plugged);
		sync_plugged(d);
		{
			uint64_t u = (d->cfg.requested_size + d->extent + bs - 1) / bs * bs;
			d->cfg.usable_region_size = u < d->cfg.region_size ? u : d->cfg.region_size;
		}
		return VIRTIO_MEM_RESP_ACK;
	case VIRTIO_MEM_REQ_STATE: {
		if (!valid_range(d, r->addr, r->nb_blocks, &first))
			return VIRTIO_MEM_RESP_ERROR;
		unsigned p = 0;
		for (uint64_t i = first; i < first + r->nb_blocks; i++)
			p += d->plugged[i];
		*state = p == r->nb_blocks ? VIRTIO_MEM_STATE_PLUGGED : p == 0 ? VIRTIO_MEM_STATE_UNPLUGGED
		                                                               : VIRTIO_MEM_STATE_MIXED;
		return VIRTIO_MEM_RESP_ACK;
	}
	default:
		drv_err(d, "unknown request type", r->type);
		return VIRTIO_MEM_RESP_ERROR;
	}
}

static uint32_t on_elem(struct fake_vq *f, struct fake_elem *e, void *ctx)
{
	struct fake_vmem_dev *d = ctx;
	(void)f;
	if (e->nseg != 2 || e->seg[0].writable || !e->seg[1].writable ||
	    e->seg[0].len < sizeof(struct virtio_mem_req) || e->seg[1].len < sizeof(struct virtio_mem_resp)) {
		drv_err(d, "request chain is not one readable request + one writable response", e->nseg);
		return 0;
	}
	struct virtio_mem_req r;
	memcpy(&r, (const void *)(uintptr_t)e->seg[0].addr, sizeof r);
	struct virtio_mem_resp resp = { 0 };
	if (r.type < 4)
		d->reqs[r.type]++;
	if (d->busy_forever || d->busy_next) {
		if (d->busy_next)
			d->busy_next--;
		resp.type = VIRTIO_MEM_RESP_BUSY;
	} else if (d->force_type >= 0) {
		resp.type = (uint16_t)d->force_type;
		if (d->force_count && --d->force_count == 0)
			d->force_type = -1;
	} else
	{
		uint16_t st = 0xffff;
		resp.type = handle(d, &r, &st);
		resp.state = st;
	}
	if (d->nlog < FV_LOG)
		d->log[d->nlog++] = (struct fv_req){ r.type, r.addr, r.nb_blocks, resp.type };
	memcpy((void *)(uintptr_t)e->seg[1].addr, &resp, sizeof resp);
	if (d->force_len >= 0) {
		uint32_t len = (uint32_t)d->force_len;
		if (d->force_len_count && --d->force_len_count == 0)
			d->force_len = -1;
		return len;
	}
	return (uint32_t)sizeof resp;
}

void fv_dev_attach(struct fake_vmem_dev *d, struct virtq *vq)
{
	fake_vq_attach(&d->fq, vq, FAKE_ACK);
	d->fq.process_on_notify = 1;
	d->fq.on_elem = on_elem;
	d->fq.ctx = d;
}

/* ------------------------------------------------------------ memory */

void fv_mem_init(struct fake_vmem_mem *m, uint64_t ram_end, uint64_t boot_free, uint64_t region_addr)
{
	memset(m, 0, sizeof *m);
	m->ram_end = ram_end;
	m->boot_free = boot_free;
	m->region_pfn = region_addr >> PAGE_SHIFT;
}

static struct fv_block *blk(struct fake_vmem_mem *m, uint64_t pfn)
{
	if (pfn < m->region_pfn || pfn % PAGES_PER_BLOCK)
		return NULL;
	uint64_t i = (pfn - m->region_pfn) / PAGES_PER_BLOCK;
	return i < FV_MAX_BLOCKS ? &m->blk[i] : NULL;
}

static void mem_err(struct fake_vmem_mem *m, const char *what, uint64_t pfn)
{
	m->errors++;
	fprintf(stderr, "fake mem: %s (pfn %#llx)\n", what, (unsigned long long)pfn);
}

static int fv_hot_add(void *ctx, uint64_t pfn, uint64_t npages)
{
	struct fake_vmem_mem *m = ctx;
	m->adds++;
	if (pfn % PAGES_PER_BLOCK || npages % PAGES_PER_BLOCK || !npages) {
		mem_err(m, "hot_add misaligned", pfn);
		return VMEM_MEM_INVAL;
	}
	for (uint64_t p = pfn; p < pfn + npages; p += PAGES_PER_BLOCK) {
		struct fv_block *b = blk(m, p);
		if (!b || b->present) {
			mem_err(m, "hot_add of a block outside the table or present", p);
			return VMEM_MEM_STATE;
		}
	}
	if (m->fail_add) {
		int e = m->fail_add;
		if (m->fail_add_count && --m->fail_add_count == 0)
			m->fail_add = 0;
		return e;
	}
	for (uint64_t p = pfn; p < pfn + npages; p += PAGES_PER_BLOCK)
		*blk(m, p) = (struct fv_block){ 1, VMEM_BK_FREE, 0, PAGES_PER_BLOCK };
	return VMEM_MEM_OK;
}

/* Free frames outside [pfn, pfn + npages) that movable frames may go to. */
static uint64_t room_outside(struct fake_vmem_mem *m, uint64_t pfn, uint64_t npages)
{
	uint64_t room = m->boot_free;
	for (unsigned i = 0; i < FV_MAX_BLOCKS; i++) {
		uint64_t p = m->region_pfn + (uint64_t)i * PAGES_PER_BLOCK;
		if (m->blk[i].present && (p < pfn || p >= pfn + npages) &&
		    (m->blk[i].kind == VMEM_BK_FREE || m->blk[i].kind == VMEM_BK_MOVABLE))
			room += m->blk[i].nfree;
	}
	return room;
}

static int fv_hot_remove(void *ctx, uint64_t pfn, uint64_t npages)
{
	struct fake_vmem_mem *m = ctx;
	m->removes++;
	if (m->nremove < FV_LOG)
		m->remove_order[m->nremove++] = pfn;
	if (pfn % PAGES_PER_BLOCK || npages % PAGES_PER_BLOCK || !npages) {
		mem_err(m, "hot_remove misaligned", pfn);
		return VMEM_MEM_INVAL;
	}
	uint64_t used = 0;
	for (uint64_t p = pfn; p < pfn + npages; p += PAGES_PER_BLOCK) {
		struct fv_block *b = blk(m, p);
		if (!b || !b->present) {
			mem_err(m, "hot_remove of a block not present", p);
			return VMEM_MEM_STATE;
		}
		if (b->kind != VMEM_BK_FREE && b->kind != VMEM_BK_MOVABLE)
			return VMEM_MEM_BUSY;
		used += PAGES_PER_BLOCK - b->nfree;
	}
	if (used > room_outside(m, pfn, npages))
		return VMEM_MEM_NOMEM;
	/* Move: boot RAM first, then the densest... any movable/free block outside. */
	uint64_t left = used;
	uint64_t take = left < m->boot_free ? left : m->boot_free;
	m->boot_free -= take;
	m->boot_data += take;
	left -= take;
	for (unsigned i = 0; i < FV_MAX_BLOCKS && left; i++) {
		uint64_t p = m->region_pfn + (uint64_t)i * PAGES_PER_BLOCK;
		struct fv_block *b = &m->blk[i];
		if (!b->present || (p >= pfn && p < pfn + npages) ||
		    (b->kind != VMEM_BK_FREE && b->kind != VMEM_BK_MOVABLE))
			continue;
		uint64_t t = left < b->nfree ? left : b->nfree;
		b->nfree = (uint16_t)(b->nfree - t);
		if (t)
			b->kind = VMEM_BK_MOVABLE, b->resident = 1;
		left -= t;
	}
	m->moved += used;
	for (uint64_t p = pfn; p < pfn + npages; p += PAGES_PER_BLOCK)
		*blk(m, p) = (struct fv_block){ 0 };
	return VMEM_MEM_OK;
}

static int fv_block_info(void *ctx, uint64_t pfn, struct vmem_block_info *out)
{
	struct fake_vmem_mem *m = ctx;
	struct fv_block *b = blk(m, pfn);
	if (!b) {
		mem_err(m, "block_info outside the table", pfn);
		return VMEM_MEM_RANGE;
	}
	*out = (struct vmem_block_info){ b->present, b->present ? b->kind : VMEM_BK_ABSENT, b->nfree, b->resident };
	return 0;
}

uint64_t fv_mem_free(const struct fake_vmem_mem *m)
{
	uint64_t f = m->boot_free;
	for (unsigned i = 0; i < FV_MAX_BLOCKS; i++)
		if (m->blk[i].present && (m->blk[i].kind == VMEM_BK_FREE || m->blk[i].kind == VMEM_BK_MOVABLE ||
		                          m->blk[i].kind == VMEM_BK_UNMOVABLE))
			f += m->blk[i].nfree;
	return f;
}

static uint64_t fv_free_pages(void *ctx) { return fv_mem_free(ctx); }

static int fv_overlaps_ram(void *ctx, uint64_t pa, uint64_t len)
{
	struct fake_vmem_mem *m = ctx;
	return pa < m->ram_end;
}

const struct vmem_mem_ops fv_mem_ops = {
	.hot_add = fv_hot_add, .hot_remove = fv_hot_remove, .block_info = fv_block_info,
	.free_pages = fv_free_pages, .overlaps_ram = fv_overlaps_ram,
};

void fv_mem_set(struct fake_vmem_mem *m, uint64_t addr, int kind, unsigned nfree, int resident)
{
	struct fv_block *b = blk(m, addr >> PAGE_SHIFT);
	if (!b || !b->present) {
		mem_err(m, "fv_mem_set on a block not present", addr >> PAGE_SHIFT);
		return;
	}
	if (b->kind == VMEM_BK_MOVABLE)
		m->data_frames -= PAGES_PER_BLOCK - b->nfree;
	b->kind = (uint8_t)kind;
	b->nfree = (uint16_t)nfree;
	b->resident = (uint8_t)resident;
	if (kind == VMEM_BK_MOVABLE)
		m->data_frames += PAGES_PER_BLOCK - nfree;
}

unsigned fv_mem_present(const struct fake_vmem_mem *m)
{
	unsigned n = 0;
	for (unsigned i = 0; i < FV_MAX_BLOCKS; i++)
		n += m->blk[i].present;
	return n;
}

int fv_mem_data_ok(const struct fake_vmem_mem *m)
{
	uint64_t d = m->boot_data;
	for (unsigned i = 0; i < FV_MAX_BLOCKS; i++)
		if (m->blk[i].present && m->blk[i].kind == VMEM_BK_MOVABLE)
			d += PAGES_PER_BLOCK - m->blk[i].nfree;
	return d == m->data_frames;
}
