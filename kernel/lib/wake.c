/*
 * wake.c - the pollers' deadlines for the tickless work loop; see wake.h.
 */
#include "kernel/lib/wake.h"

static uint64_t earliest = WAKE_NEVER, last = WAKE_NEVER;
static uint64_t sleeps;

void wake_at(uint64_t deadline_ns)
{
	if (deadline_ns < earliest)
		earliest = deadline_ns;
}

uint64_t wake_take(void)
{
	uint64_t t = earliest;
	earliest = WAKE_NEVER;
	last = t;
	return t;
}

void wake_count_sleep(void) { sleeps++; }
uint64_t wake_sleeps(void) { return sleeps; }
uint64_t wake_last_deadline(void) { return last; }
