/*
 * fuzz_virtq.c - libFuzzer target: used-ring processing (drivers/virtio/virtq.c).
 *
 * The input is a program: a queue size, then operations - the driver adds
 * chains, kicks, takes used entries, detaches after a "reset"; the device
 * (the fuzzer) writes any used entry, any used index, completes real chains,
 * or scribbles anywhere in the shared rings. A model kept here knows which
 * tokens are in flight and how long each chain is; after every operation:
 *   - a token comes back only if it is in flight, once, with a length no
 *     larger than its chain (device-writable part, else readable part);
 *   - free descriptors + descriptors in flight == queue size, and the
 *     queue's count of chains in flight matches the model;
 *   - a broken queue stays broken: nothing comes back, nothing is added;
 *   - at the end, virtq_detach_unused returns exactly the tokens in flight.
 * A violation aborts (libFuzzer reports it as a crash).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "drivers/virtio/virtq.h"
#include "host_support.h"

#define MAXQ VIRTQ_MAX_SIZE

#include "fuzz_input.h"

#define CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, "fuzz_virtq: " __VA_ARGS__); \
	fprintf(stderr, "\n"); abort(); } } while (0)

static _Alignas(4096) uint8_t ring[65536];
static uint8_t bufmem[4096];

struct tok {
	int in_flight;
	unsigned ndesc;
	uint32_t in_len, out_len;
};
static struct tok toks[4 * MAXQ];
/* Chains and descriptors in flight by the model, kept as tokens come and go
 * (checked after every step); model_recount() counts them from the tokens
 * again and must agree (at resets and at the end). */
static unsigned model_n, model_d;

static unsigned model_in_flight(unsigned *ndesc)
{
	*ndesc = model_d;
	return model_n;
}

static void model_recount(void)
{
	unsigned n = 0, d = 0;
	for (unsigned i = 0; i < sizeof toks / sizeof toks[0]; i++)
		if (toks[i].in_flight) {
			n++;
			d += toks[i].ndesc;
		}
	CHECK(n == model_n && d == model_d, "model: %u chains / %u descriptors in flight, counted %u / %u",
	      model_n, model_d, n, d);
}

static struct tok *token_of(void *t)
{
	uintptr_t p = (uintptr_t)t;
	CHECK(p >= (uintptr_t)toks && p < (uintptr_t)(toks + sizeof toks / sizeof toks[0]) &&
	      (p - (uintptr_t)toks) % sizeof(struct tok) == 0, "a token that was never given: %p", t);
	return (struct tok *)t;
}

static void take_back(void *t, uint32_t len, int check_len)
{
	struct tok *k = token_of(t);
	CHECK(k->in_flight, "token %ld returned while not in flight", (long)(k - toks));
	uint32_t cap = k->in_len ? k->in_len : k->out_len;
	CHECK(!check_len || len <= cap, "len %u returned for a chain of %u bytes", len, cap);
	k->in_flight = 0;
	model_n--;
	model_d -= k->ndesc;
}

static void check_invariants(struct virtq *vq)
{
	unsigned ndesc, n = model_in_flight(&ndesc);
	CHECK(virtq_in_flight(vq) == n, "queue says %u chains in flight, model %u", virtq_in_flight(vq), n);
	CHECK(virtq_num_free(vq) + ndesc == vq->num, "free %u + in flight %u != size %u",
	      virtq_num_free(vq), ndesc, vq->num);
}

/* Device side: the next used slot and our copy of its index. */
struct dev { uint16_t used_idx, last_avail; };

static void push_used(struct virtq *vq, struct dev *d, uint32_t id, uint32_t len)
{
	volatile struct vring_used_elem *e = &vq->used->ring[d->used_idx % vq->num];
	e->id = id;
	e->len = len;
	d->used_idx++;
	*(volatile uint16_t *)&vq->used->idx = d->used_idx;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	static struct virtq vq;
	uint16_t num = (uint16_t)(1u << (byte(&in) % 9));      /* 1..256 */
	memset(toks, 0, sizeof toks);
	model_n = model_d = 0;
	memset(ring, 0, virtq_mem_size(num));   /* all the queue uses (and op 8 scribbles on) */
	host_klog_reset();
	CHECK(virtq_init(&vq, "fuzz", 0, num, ring, (uintptr_t)ring, NULL, NULL) == 0, "init failed");
	struct dev d = { 0, 0 };
	unsigned next_tok = 0;

	for (unsigned step = 0; in.n && step < 4096; step++) {
		uint8_t op = byte(&in);
		switch (op % 10) {
		case 0: case 1: {                     /* driver: add a chain */
			struct virtq_buf b[8];
			unsigned n_out = byte(&in) % 5, n_in = byte(&in) % 4;
			if (n_out + n_in == 0)
				n_out = 1;
			uint32_t out_len = 0, in_len = 0;
			for (unsigned i = 0; i < n_out + n_in; i++) {
				b[i].addr = (uintptr_t)bufmem + byte(&in) * 16u;
				b[i].len = 1 + byte(&in) % 64;
				if (i < n_out)
					out_len += b[i].len;
				else
					in_len += b[i].len;
			}
			struct tok *k = &toks[next_tok++ % (sizeof toks / sizeof toks[0])];
			if (k->in_flight)
				break;                          /* the model's slot is busy: skip */
			unsigned free_before = virtq_num_free(&vq);
			int rc = virtq_add(&vq, b, n_out, n_in, k);
			if (virtq_is_broken(&vq))
				CHECK(rc == -EIO, "add on a broken queue returned %d", rc);
			else if (n_out + n_in > free_before)
				CHECK(rc == -ENOSPC, "add of %u into %u free returned %d", n_out + n_in, free_before, rc);
			else
				CHECK(rc == 0, "add failed with %d", rc);
			if (rc == 0) {
				*k = (struct tok){ 1, n_out + n_in, in_len, out_len };
				model_n++;
				model_d += n_out + n_in;
			}
			break;
		}
		case 2:
			virtq_kick(&vq);
			break;
		case 3: case 4: {                     /* driver: take used entries */
			unsigned k = 1 + byte(&in) % 4;
			for (unsigned i = 0; i < k; i++) {
				uint32_t len = 0xdeadbeef;
				int was_broken = virtq_is_broken(&vq);
				(void)virtq_has_used(&vq);
				void *t = virtq_get_used(&vq, &len);
				if (was_broken)
					CHECK(!t, "a token came back from a broken queue");
				if (t)
					take_back(t, len, 1);
			}
			break;
		}
		case 5: {                             /* device: complete a chain it really has */
			uint16_t avail = *(volatile uint16_t *)&vq.avail->idx;
			if (d.last_avail != avail) {
				uint16_t head = vq.avail->ring[d.last_avail % num];
				d.last_avail++;
				push_used(&vq, &d, head, byte(&in));
			}
			break;
		}
		case 6: {                             /* device: any used entry */
			uint32_t id = byte(&in) & 1 ? byte(&in) % (num + 2u) : u32(&in);
			uint32_t len = byte(&in) & 1 ? byte(&in) : u32(&in);
			push_used(&vq, &d, id, len);
			break;
		}
		case 7:                               /* device: any used index */
			d.used_idx = (uint16_t)(d.used_idx + (int8_t)byte(&in));
			*(volatile uint16_t *)&vq.used->idx = d.used_idx;
			break;
		case 8: {                             /* device: scribble on the shared rings */
			size_t hi = byte(&in);
			size_t at = (hi << 8 | byte(&in)) % virtq_mem_size(num);
			ring[at] = byte(&in);
			break;
		}
		case 9:                               /* reset: take everything back, start over */
			if (byte(&in) % 4 == 0) {
				void *t;
				while ((t = virtq_detach_unused(&vq)) != NULL)
					take_back(t, 0, 0);
				unsigned nd;
				model_recount();
				CHECK(model_in_flight(&nd) == 0, "detach left tokens in flight");
				memset(ring, 0, virtq_mem_size(num));
				CHECK(virtq_init(&vq, "fuzz", 0, num, ring, (uintptr_t)ring, NULL, NULL) == 0, "re-init");
				d = (struct dev){ 0, 0 };
			}
			break;
		}
		check_invariants(&vq);
	}
	/* the device is reset: every chain still in flight comes back exactly once */
	void *t;
	while ((t = virtq_detach_unused(&vq)) != NULL)
		take_back(t, 0, 0);
	unsigned nd;
	model_recount();
	CHECK(model_in_flight(&nd) == 0, "tokens in flight after detaching everything");
	CHECK(virtq_num_free(&vq) == num, "descriptors lost: %u of %u free", virtq_num_free(&vq), num);
	return 0;
}
