/*
 * klog.c - line logging shared by the kernel and the host tests' capture.
 * The sink (klog_sink) differs: serial console in the kernel, a buffer on the host.
 * Lines are formatted by the kernel's own kvsnprintf (fmt.h), not newlib's.
 */
#include <stdarg.h>
#include "klog.h"
#include "kernel/lib/fmt.h"
#include "kclock.h"



static void vklog(const char *fmt, va_list ap)
{
	char line[256];
	kvsnprintf(line, sizeof line, fmt, ap);
	klog_sink(line);
}

void klog(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vklog(fmt, ap);
	va_end(ap);
}

int klog_ready(const struct klog_limit *lim, uint64_t interval_ns)
{
	return lim->last_ns == 0 || clock_ns() - lim->last_ns >= interval_ns;
}

int klog_ratelimited(struct klog_limit *lim, uint64_t interval_ns, const char *fmt, ...)
{
	uint64_t now = clock_ns();
	if (lim->last_ns != 0 && now - lim->last_ns < interval_ns) {
		lim->suppressed++;
		return 0;
	}
	if (lim->suppressed)
		klog("(%u similar messages suppressed)", lim->suppressed);
	lim->last_ns = now ? now : 1;
	lim->suppressed = 0;
	va_list ap;
	va_start(ap, fmt);
	vklog(fmt, ap);
	va_end(ap);
	return 1;
}
