/* host_support.c - fake clock and klog capture for host unit tests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "host_support.h"
#include "kclock.h"

#define KEEP 64

static uint64_t now_ns;
static char lines[KEEP][256];
static unsigned count;
int host_klog_echo;

uint64_t clock_ns(void) { return now_ns; }
void host_clock_set(uint64_t ns) { now_ns = ns; }
void host_clock_advance(uint64_t ns) { now_ns += ns; }

void kprintf_sink(const char *text) { fputs(text, stdout); }

void klog_sink(const char *line)
{
	snprintf(lines[count % KEEP], sizeof lines[0], "%s", line);
	count++;
	if (host_klog_echo)
		fprintf(stderr, "klog: %s\n", line);
}

void host_klog_reset(void) { count = 0; }
unsigned host_klog_count(void) { return count; }
const char *host_klog_last(void) { return count ? lines[(count - 1) % KEEP] : ""; }

int host_klog_contains(const char *needle)
{
	unsigned first = count > KEEP ? count - KEEP : 0;
	for (unsigned i = first; i < count; i++)
		if (strstr(lines[i % KEEP], needle))
			return 1;
	return 0;
}

#define KEPT 32
static struct { void *p; size_t bytes; } kept[KEPT];

void *host_keep_alloc(size_t bytes)
{
	for (unsigned i = 0; i < KEPT; i++)
		if (kept[i].p && kept[i].bytes == bytes) {
			void *p = kept[i].p;
			kept[i].p = NULL;
			memset(p, 0, bytes);
			return p;
		}
	void *p = aligned_alloc(4096, (bytes + 4095) & ~(size_t)4095);
	if (p)
		memset(p, 0, bytes);
	return p;
}

void host_keep_free(void *p, size_t bytes)
{
	if (!p)
		return;
	for (unsigned i = 0; i < KEPT; i++)
		if (!kept[i].p) {
			kept[i].p = p;
			kept[i].bytes = bytes;
			return;
		}
	free(p);
}
