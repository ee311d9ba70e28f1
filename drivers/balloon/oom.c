/*
 * oom.c - deflate on OOM: the allocator's notifier, bounded and silent
 * (it runs inside an allocation), and the poller's lines about it.
 */
#include "drivers/balloon/internal.h"

/* Hold back (or release) the queues' error lines: see virtq_quiet(). */
static void set_quiet(struct balloon *b, int on)
{
	struct virtq *q[] = { b->s.inflate_vq, b->s.deflate_vq, b->s.report_vq };
	for (unsigned k = 0; k < sizeof q / sizeof q[0]; k++)
		if (q[k])
			virtq_quiet(q[k], on);
}

uint64_t balloon_oom(struct balloon *b, uint64_t want)
{
	b->oom_calls++;
	if (b->broken || b->in_poll || b->in_oom || !b->s.mops) {
		b->oom_refused++;
		return 0;
	}
	b->in_oom = 1;
	/* No logging inside an allocation: a queue that breaks now keeps its
	 * line until the next poll. */
	set_quiet(b, 1);
	const struct balloon_params *p = &b->s.params;
	uint64_t defl0 = b->pages_deflated, rep0 = b->rep.blocks;
	int doo = (b->s.features >> VIRTIO_BALLOON_F_DEFLATE_ON_OOM) & 1;
	if (virtq_is_broken(b->s.inflate_vq) || virtq_is_broken(b->s.deflate_vq))
		doo = 0;   /* the next poll says so */
	uint64_t now = clock_ns(), deadline = now + p->oom_wait_ns;

	if (doo) {
		bal_reap(b, b->s.inflate_vq, ELEM_INFLATE);
		bal_reap(b, b->s.deflate_vq, ELEM_DEFLATE);
	}
	bal_report_reap(b);
	if (b->oom_waiting && !(doo && b->deflating) && !b->rep.in_flight)
		b->oom_waiting = 0;   /* what timed out before has come back */
	if (doo && !b->oom_waiting && !b->stalled) {
		/* More than asked: the next allocations of a burst find it free. */
		uint64_t goal = max_u64(want, p->oom_pages);
		if (goal > b->deflating && b->settled)
			bal_deflate(b, now, goal - b->deflating);
		if (b->deflating) {
			/* Do not inflate into the same shortage: hold at what is
			 * left until the host changes its target. */
			b->oom_capped = 1;
			b->oom_cap = b->settled + b->inflating;
			b->params_changed = 1;
		}
	}
	/* Bounded wait for the acks the allocation depends on. */
	for (;;) {
		if (doo)
			bal_reap(b, b->s.deflate_vq, ELEM_DEFLATE);
		bal_report_reap(b);
		uint64_t got = (b->pages_deflated - defl0) + (b->rep.blocks - rep0) * PAGES_PER_BLOCK;
		int pending = (doo && b->deflating) || b->rep.in_flight;
		if (!pending || got >= want || b->oom_waiting || !b->s.tops->relax)
			break;
		if (clock_ns() >= deadline) {
			b->oom_waiting = 1;
			b->oom_timeouts++;
			break;
		}
		b->s.tops->relax(b->s.tctx);
	}
	uint64_t defl = b->pages_deflated - defl0;
	if (defl) {
		b->oom_deflates++;
		b->oom_pages += defl;
	}
	if (doo)
		bal_write_actual(b);
	set_quiet(b, 0);
	b->in_oom = 0;
	return defl + (b->rep.blocks - rep0) * PAGES_PER_BLOCK;
}

/* What the OOM path did, said from the poller (it cannot log itself). */
void bal_oom_log(struct balloon *b)
{
	if (b->oom_waiting && !b->deflating && !b->rep.in_flight)
		b->oom_waiting = 0;
	if (b->oom_deflates != b->oom_logged) {
		b->oom_logged = b->oom_deflates;
		klog_ratelimited(&b->lim_oom, LOG_INTERVAL_NS,
		                 "balloon: deflated on OOM: %llu MiB in %llu deflates so far; holding "
		                 "%llu MiB until the host sets a new target",
		                 (unsigned long long)PAGES_TO_MIB(b->oom_pages), (unsigned long long)b->oom_deflates,
		                 (unsigned long long)PAGES_TO_MIB(b->oom_cap));
	}
	if (b->oom_timeouts != b->oom_timeouts_logged) {
		b->oom_timeouts_logged = b->oom_timeouts;
		klog_ratelimited(&b->lim_oom, LOG_INTERVAL_NS,
		                 "balloon: host did not ack a deflate on OOM within %llu ms: that allocation "
		                 "was not helped; the pages come back when the host acks",
		                 (unsigned long long)(b->s.params.oom_wait_ns / NS_PER_MS));
	}
}
