/*
 * policy.c - what the balloon wants: the features it negotiates and the queue
 * layout they imply, the knobs (defaults, clamps), the target from the
 * host's num_pages and the knobs, and the inflation rate bucket. No device
 * and no allocator calls beyond total_pages: policy stays testable alone.
 */
#include "drivers/balloon/internal.h"

/* ---- features */

void balloon_vq_layout(uint64_t offered, struct balloon_vq_layout *l)
{
	int next = 0;
	l->inflate = next++;
	l->deflate = next++;
	l->stats = (offered & (1ull << VIRTIO_BALLOON_F_STATS_VQ)) ? next++ : -1;
	l->free_page_hint = (offered & (1ull << VIRTIO_BALLOON_F_FREE_PAGE_HINT)) ? next++ : -1;
	l->reporting = (offered & (1ull << VIRTIO_BALLOON_F_REPORTING)) ? next++ : -1;
	l->count = (unsigned)next;
}

int balloon_pick_reporting_vq(const struct balloon_vq_layout *l, unsigned num_queues,
                              uint16_t size_consecutive, uint16_t size_spec,
                              const char **convention)
{
	int c = l->reporting, s = BALLOON_SPEC_VQ_REPORTING;
	*convention = "none";
	if (c < 0)
		return -1;
	if (c == s) {
		*convention = "consecutive and fixed numbering agree";
		return size_consecutive ? c : -1;
	}
	int has_c = size_consecutive != 0, has_s = size_spec != 0;
	if (has_c && (!has_s || num_queues <= l->count)) {
		*convention = "numbered by the offered features (QEMU's rule)";
		return c;
	}
	if (has_s) {
		*convention = "the spec's fixed index";
		return s;
	}
	return -1;
}

uint64_t balloon_features_wanted(uint64_t offered)
{
	if (!(offered & (1ull << VIRTIO_F_VERSION_1)))
		return 0;
	uint64_t ok = (1ull << VIRTIO_F_VERSION_1) |
	              (1ull << VIRTIO_F_ACCESS_PLATFORM) |
	              (1ull << VIRTIO_BALLOON_F_STATS_VQ) |
	              (1ull << VIRTIO_BALLOON_F_MUST_TELL_HOST) |
	              (1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM) |
	              (1ull << VIRTIO_BALLOON_F_REPORTING);
	return offered & ok;
}

/* ---- params */

void bal_params_defaults(struct balloon_params *p)
{
	if (!p->ack_timeout_ns) p->ack_timeout_ns = DEFAULT_ACK_TIMEOUT_NS;
	if (!p->retry_ns) p->retry_ns = DEFAULT_RETRY_NS;
	if (!p->batch) p->batch = DEFAULT_BATCH;
	if (!p->oom_pages) p->oom_pages = BALLOON_DEFAULT_OOM_PAGES;
	if (!p->oom_wait_ns) p->oom_wait_ns = DEFAULT_OOM_WAIT_NS;
}

/* Clamp what cannot make sense on this machine, one line per value. */
int bal_params_clamp(struct balloon *b, struct balloon_params *q)
{
	uint64_t total = b->s.mops->total_pages(b->s.mctx);
	int n = 0;
	if (q->min_free_pages > total) {
		klog("balloon: min_free %llu MiB is more than the %llu MiB of RAM: using %llu MiB "
		     "(the balloon stays empty)", (unsigned long long)PAGES_TO_MIB(q->min_free_pages),
		     (unsigned long long)PAGES_TO_MIB(total), (unsigned long long)PAGES_TO_MIB(total));
		q->min_free_pages = total;
		n++;
	}
	if (q->max_pages > total) {
		klog("balloon: max %llu MiB is more than the %llu MiB of RAM: using %llu MiB",
		     (unsigned long long)PAGES_TO_MIB(q->max_pages), (unsigned long long)PAGES_TO_MIB(total),
		     (unsigned long long)PAGES_TO_MIB(total));
		q->max_pages = total;
		n++;
	}
	uint64_t room = total - q->min_free_pages;
	if (q->max_pages && q->max_pages < room)
		room = q->max_pages;
	if (q->initial_pages > room) {
		klog("balloon: initial %llu MiB is more than can be given (%llu MiB of RAM, keeping "
		     "%llu MiB free, max %llu MiB): using %llu MiB",
		     (unsigned long long)PAGES_TO_MIB(q->initial_pages), (unsigned long long)PAGES_TO_MIB(total),
		     (unsigned long long)PAGES_TO_MIB(q->min_free_pages), (unsigned long long)PAGES_TO_MIB(q->max_pages),
		     (unsigned long long)PAGES_TO_MIB(room));
		q->initial_pages = room;
		n++;
	}
	if (q->report_delay_ns > MAX_REPORT_DELAY_NS) {
		klog("balloon: report delay %llu s is absurd: using %llu s",
		     (unsigned long long)(q->report_delay_ns / NS_PER_S),
		     (unsigned long long)(MAX_REPORT_DELAY_NS / NS_PER_S));
		q->report_delay_ns = MAX_REPORT_DELAY_NS;
		n++;
	}
	return n;
}

int balloon_set_params(struct balloon *b, const struct balloon_params *p)
{
	if (!b->s.mops)
		return 0;   /* never initialised */
	struct balloon_params q = *p;
	bal_params_defaults(&q);
	int n = bal_params_clamp(b, &q);
	/* A new initial size is a new target from the guest's side: it lifts
	 * an OOM hold (the host's changes do that too). */
	if (q.initial_pages != b->s.params.initial_pages)
		b->oom_capped = 0;
	if (q.rate_pages_per_s != b->s.params.rate_pages_per_s)
		rate_forget(&b->rate);   /* restart the bucket at the new rate */
	b->s.params = q;
	b->params_changed = 1;
	return n;
}

/* ---- target */

/* From the host's num_pages and the knobs to the target (see balloon.h). */
void bal_compute_target(struct balloon *b)
{
	const struct balloon_params *p = &b->s.params;
	uint64_t total = b->s.mops->total_pages(b->s.mctx);
	uint64_t req = b->num_pages;
	int from_initial = 0;
	if (!b->host_set && p->initial_pages > req) {
		req = p->initial_pages;
		from_initial = 1;
	}
	uint64_t room = total > p->min_free_pages ? total - p->min_free_pages : 0;
	uint64_t limit = room;
	enum balloon_limit_reason why = BLIM_NONE;
	if (p->max_pages && p->max_pages < limit)
		limit = p->max_pages;
	uint64_t t = req;
	if (t > limit) {
		t = limit;
		why = limit < room ? BLIM_MAX : BLIM_MIN_FREE;
		if (from_initial)
			klog_ratelimited(&b->lim_clamp, LOG_INTERVAL_NS,
			                 "balloon: initial balloon %llu pages (%llu MiB), at most %llu can be "
			                 "given (total %llu, keeping %llu free, max %llu): clamped",
			                 (unsigned long long)req, (unsigned long long)PAGES_TO_MIB(req),
			                 (unsigned long long)limit, (unsigned long long)total,
			                 (unsigned long long)p->min_free_pages, (unsigned long long)p->max_pages);
		else
			klog_ratelimited(&b->lim_clamp, LOG_INTERVAL_NS,
			                 "balloon: host asks for %u pages (%llu MiB), at most %llu can be given "
			                 "(total %llu, keeping %llu free, max %llu): clamped",
			                 b->num_pages, (unsigned long long)PAGES_TO_MIB(b->num_pages),
			                 (unsigned long long)limit, (unsigned long long)total,
			                 (unsigned long long)p->min_free_pages, (unsigned long long)p->max_pages);
	}
	/* Who may shrink the balloon: the spec lets the driver use balloon pages
	 * when num_pages is below actual, or (DEFLATE_ON_OOM) for the guest's
	 * own stability. A knob the guest lowered (max, min_free) therefore
	 * stops growth, but without DEFLATE_ON_OOM it does not deflate below
	 * what the host still asks for. */
	uint64_t held = b->settled + b->inflating;
	uint64_t host_floor = min_u64(b->num_pages, held);
	if (why != BLIM_NONE && t < host_floor &&
	    !((b->s.features >> VIRTIO_BALLOON_F_DEFLATE_ON_OOM) & 1)) {
		t = host_floor;
		why = BLIM_HELD_BY_HOST;
	}
	if (b->oom_capped && t > b->oom_cap) {
		t = b->oom_cap;
		why = BLIM_OOM;
	}
	b->limit_reason = why;
	if (t == b->target)
		return;
	klog_ratelimited(&b->lim_target, LOG_INTERVAL_NS,
	                 "balloon: new target %llu pages (%llu MiB), was %llu, actual %llu%s",
	                 (unsigned long long)t, (unsigned long long)PAGES_TO_MIB(t),
	                 (unsigned long long)b->target, (unsigned long long)balloon_actual(b),
	                 why == BLIM_OOM ? " (held since a deflate on OOM)" :
	                 from_initial ? " (initial balloon)" : "");
	b->target = t;
	/* a new target gets a fresh attempt and its own status lines */
	bal_attempt_reset(b);
	b->short_reason = BSHORT_NONE;
	b->short_reported = 0;
	b->done_reported = 0;
	b->retry_at_ns = 0;
}

void bal_attempt_reset(struct balloon *b)
{
	b->short_of_memory = 0;
	b->blocks_dry = 0;
	b->compact_tried = 0;
	b->reclaim_dry = 0;
	b->run_order_cap = BALLOON_MAX_RUN_ORDER;
}


/* ---- rate limit */

/* Inflation credit in pages (UINT64_MAX: unlimited): the token bucket of
 * kernel/lib/rate.h. An inflation starts with one block of credit
 * (poll_body forgets the bucket whenever nothing is to be inflated, so idle
 * time buys no burst); while inflating, up to one second (at least two
 * blocks) of credit is kept. */
uint64_t bal_rate_credit(struct balloon *b, uint64_t now)
{
	uint64_t r = b->s.params.rate_pages_per_s;
	return rate_credit(&b->rate, r, now, PAGES_PER_BLOCK, max_u64(2 * PAGES_PER_BLOCK, r));
}

void bal_rate_spend(struct balloon *b, uint64_t pages)
{
	rate_spend(&b->rate, b->s.params.rate_pages_per_s, pages);
}
