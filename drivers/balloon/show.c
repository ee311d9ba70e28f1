/*
 * show.c - the balloon in words: state, limit and shortfall names, the status
 * line and the console's detail lines.
 */
#include "drivers/balloon/internal.h"
#include <stdarg.h>
#include <stdio.h>
#include "kernel/lib/fmt.h"
const char *balloon_state_name(enum balloon_state st)
{
	static const char *const names[] = { "at target", "inflating", "deflating",
	                                     "short of memory", "host stalled", "stopped" };
	return (unsigned)st < sizeof names / sizeof names[0] ? names[st] : "?";
}

const char *balloon_limit_name(enum balloon_limit_reason r)
{
	static const char *const names[] = { "none", "clamped by balloon.max",
	                                     "clamped by balloon.min_free",
	                                     "held since a deflate on OOM until the host sets a new target",
	                                     ("a knob asks for less, but the host still asks for it "
	                                      "(no deflate-on-oom): held until the host lowers its target") };
	return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "?";
}

const char *balloon_short_name(enum balloon_short_reason r)
{
	static const char *const names[] = { "none",
	                                     "free memory is down to balloon.min_free and the shrinkers gave nothing",
	                                     "free memory exists but the allocator has no run to give",
	                                     "the allocator returned a bad range: inflate stopped",
	                                     "no memory for the balloon's books" };
	return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "?";
}

void balloon_format_status(const struct balloon *b, char *buf, size_t len)
{
	uint64_t actual = balloon_actual(b);
	ksnprintf(buf, len,
	         "balloon: %s; actual %llu pages (%llu MiB), target %llu (host %u); "
	         "%llu whole blocks + %llu pages in runs; in flight +%llu/-%llu; sent %llu blocks, "
	         "%llu runs, %llu deflates",
	         balloon_state_name(balloon_state(b)), (unsigned long long)actual,
	         (unsigned long long)PAGES_TO_MIB(actual), (unsigned long long)b->target, b->num_pages,
	         (unsigned long long)b->block_runs,
	         (unsigned long long)(b->settled - b->block_runs * PAGES_PER_BLOCK),
	         (unsigned long long)b->inflating, (unsigned long long)b->deflating,
	         (unsigned long long)b->blocks_sent, (unsigned long long)b->runs_sent,
	         (unsigned long long)b->deflates_sent);
}

/* snprintf that appends and never runs past the end. */
static void appendf(char *buf, size_t len, size_t *off, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void appendf(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	if (*off >= len)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = kvsnprintf(buf + *off, len - *off, fmt, ap);
	va_end(ap);
	if (n > 0)
		*off = min_u64(len, *off + (size_t)n);
}

void balloon_format_details(const struct balloon *b, char *buf, size_t len)
{
	const struct balloon_params *p = &b->s.params;
	const struct balloon_report *r = &b->rep;
	size_t o = 0;
	unsigned busy = BALLOON_SLOTS - b->nfree_elems;
	buf[0] = 0;
	appendf(buf, len, &o, "balloon: target %llu MiB, actual %llu MiB, host asks %llu MiB%s; "
	        "limit: %s\n", (unsigned long long)PAGES_TO_MIB(b->target),
	        (unsigned long long)PAGES_TO_MIB(balloon_actual(b)), (unsigned long long)PAGES_TO_MIB(b->num_pages),
	        b->host_set ? "" : p->initial_pages ? " (initial balloon until the host sets a target)" : "",
	        balloon_limit_name(b->limit_reason));
	appendf(buf, len, &o, "balloon: max %llu MiB%s, min-free %llu MiB, rate ",
	        (unsigned long long)PAGES_TO_MIB(p->max_pages), p->max_pages ? "" : " (none)",
	        (unsigned long long)PAGES_TO_MIB(p->min_free_pages));
	if (p->rate_pages_per_s)
		appendf(buf, len, &o, "%llu MiB/s%s", (unsigned long long)PAGES_TO_MIB(p->rate_pages_per_s),
		        b->rate_limited ? " (limiting now)" : "");
	else
		appendf(buf, len, &o, "unlimited");
	appendf(buf, len, &o, ", initial %llu MiB, report delay %llu ms\n",
	        (unsigned long long)PAGES_TO_MIB(p->initial_pages), (unsigned long long)(p->report_delay_ns / NS_PER_MS));
	appendf(buf, len, &o, "balloon: inflight +%llu/-%llu pages in %u elements, report %s\n",
	        (unsigned long long)b->inflating, (unsigned long long)b->deflating, busy,
	        !b->s.report_vq ? "off" : r->in_flight ? "in flight" :
	        r->state == REPORT_ARMED ? "due" : "idle");
	appendf(buf, len, &o, "balloon: totals: inflated %llu pages, deflated %llu pages; elements "
	        "%llu blocks + %llu runs inflate, %llu deflate; %llu acks\n",
	        (unsigned long long)b->pages_inflated, (unsigned long long)b->pages_deflated,
	        (unsigned long long)b->blocks_sent, (unsigned long long)b->runs_sent,
	        (unsigned long long)b->deflates_sent, (unsigned long long)b->acks);
	appendf(buf, len, &o, "balloon: oom: %s; %llu deflates (%llu pages), %llu timeouts, "
	        "%llu calls\n",
	        (b->s.features >> VIRTIO_BALLOON_F_DEFLATE_ON_OOM) & 1 ? "deflate-on-oom" : "off",
	        (unsigned long long)b->oom_deflates, (unsigned long long)b->oom_pages,
	        (unsigned long long)b->oom_timeouts, (unsigned long long)b->oom_calls);
	appendf(buf, len, &o, "balloon: reporting: %s; %llu blocks (%llu MiB) in %llu reports, "
	        "%llu runs, %llu put back\n", b->s.report_vq ? "on" : "off",
	        (unsigned long long)r->blocks, (unsigned long long)PAGES_TO_MIB(r->blocks * PAGES_PER_BLOCK),
	        (unsigned long long)r->rounds, (unsigned long long)r->runs,
	        (unsigned long long)r->put_back);
	appendf(buf, len, &o, "balloon: reclaim: %llu pages from shrinkers in %llu calls\n",
	        (unsigned long long)b->reclaimed, (unsigned long long)b->reclaim_calls);
	appendf(buf, len, &o, "balloon: shortfall: %s",
	        balloon_state(b) == BALLOON_SHORT ? balloon_short_name(b->short_reason) : "none");
}
