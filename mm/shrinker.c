/*
 * shrinker.c - the shrinker registry (contract in shrinker.h). Pure logic:
 * host tests drive it with fake caches; its console command is in mm_cmd.c.
 *
 * The walk does not keep an index into the table across callbacks: after
 * each scan() it looks for the next entry strictly after (priority,
 * registration sequence) of the one just asked. So a callback that registers
 * or unregisters shrinkers (itself included) cannot make the walk skip,
 * repeat, or touch a freed slot. With SHRINKER_MAX entries the O(n^2) search
 * costs nothing next to the memory the callbacks free.
 */
#include <stdio.h>
#include <string.h>
#include "mm/shrinker.h"
#include "klog.h"
#include "units.h"
#include "kernel/lib/fmt.h"

struct shrinker {
	int used;
	int priority;
	uint64_t seq;           /* registration order; also the public id */
	char name[SHRINKER_NAME_MAX];
	shrinker_count_fn count;
	shrinker_scan_fn scan;
	void *ctx;
	uint64_t unit;          /* pages it frees at once (shrinker_set_unit) */
	uint64_t calls, freed, bad_answers;
	int warned;             /* its one "bad answer" line was printed */
};

static struct shrinker table[SHRINKER_MAX];
static uint64_t next_seq = 1;
static int in_reclaim;
static struct shrinker_totals totals;


/* Order key: (priority, seq). a before b? */
static int before(int pa, uint64_t sa, int pb, uint64_t sb)
{
	return pa < pb || (pa == pb && sa < sb);
}

/* The first registered shrinker after (prio, seq); any, if !have_prev. */
static struct shrinker *next_after(int have_prev, int prio, uint64_t seq)
{
	struct shrinker *best = NULL;
	for (size_t i = 0; i < SHRINKER_MAX; i++) {
		struct shrinker *s = &table[i];
		if (!s->used)
			continue;
		if (have_prev && !before(prio, seq, s->priority, s->seq))
			continue;
		if (!best || before(s->priority, s->seq, best->priority, best->seq))
			best = s;
	}
	return best;
}

static struct shrinker *find_seq(uint64_t seq)
{
	for (size_t i = 0; i < SHRINKER_MAX; i++)
		if (table[i].used && table[i].seq == seq)
			return &table[i];
	return NULL;
}

int shrinker_register(const char *name, int priority, shrinker_count_fn count,
                      shrinker_scan_fn scan, void *ctx)
{
	if (!name || !*name || !count || !scan) {
		klog("shrinker: registration of '%s' without a name or callbacks refused",
		     name ? name : "(null)");
		return -1;
	}
	for (size_t i = 0; i < SHRINKER_MAX; i++) {
		struct shrinker *s = &table[i];
		if (s->used)
			continue;
		memset(s, 0, sizeof *s);
		s->used = 1;
		s->priority = priority;
		s->seq = next_seq++;
		ksnprintf(s->name, sizeof s->name, "%s", name);
		s->count = count;
		s->scan = scan;
		s->ctx = ctx;
		s->unit = 1;
		return (int)s->seq;
	}
	klog("shrinker: table full (%d shrinkers); '%s' not registered", SHRINKER_MAX, name);
	return -1;
}

int shrinker_unregister(int id)
{
	struct shrinker *s = id > 0 ? find_seq((uint64_t)id) : NULL;
	if (!s)
		return -1;
	s->used = 0;
	return 0;
}

int shrinker_set_unit(int id, uint64_t pages)
{
	struct shrinker *s = id > 0 ? find_seq((uint64_t)id) : NULL;
	if (!s || !pages)
		return -1;
	s->unit = pages;
	return 0;
}

uint64_t shrinker_reclaim(uint64_t pages_wanted)
{
	if (pages_wanted == 0)
		return 0;
	if (in_reclaim) {
		totals.nested++;
		return 0;
	}
	in_reclaim = 1;
	uint64_t goal = min_u64(pages_wanted, SHRINKER_BATCH), freed = 0;
	totals.reclaim_calls++;
	totals.pages_wanted += goal;

	int have_prev = 0, prio = 0;
	uint64_t seq = 0;
	struct shrinker *s;
	while (freed < goal && (s = next_after(have_prev, prio, seq)) != NULL) {
		have_prev = 1;
		prio = s->priority;
		seq = s->seq;
		uint64_t can = s->count(s->ctx);
		if (can == 0)
			continue;
		uint64_t ask = min_u64(goal - freed, can);
		/* asked for less than its piece, it may free one piece */
		uint64_t allowed = ask > s->unit ? ask : min_u64(s->unit, can);
		char name[SHRINKER_NAME_MAX];
		memcpy(name, s->name, sizeof name);   /* scan() may unregister it */
		uint64_t got = s->scan(s->ctx, ask);
		uint64_t counted = min_u64(got, allowed);
		freed += counted;
		s = find_seq(seq);
		if (s) {
			s->calls++;
			s->freed += counted;
		}
		if (got > allowed) {
			if (s)
				s->bad_answers++;
			if (!s || !s->warned)
				klog("shrinker: '%s' claims %llu pages freed when asked for %llu "
				     "(its count said %llu, its unit %llu); counted as %llu",
				     name, (unsigned long long)got, (unsigned long long)ask,
				     (unsigned long long)can, (unsigned long long)(allowed > ask ? allowed : 1),
				     (unsigned long long)counted);
			if (s)
				s->warned = 1;
		}
	}
	totals.pages_freed += freed;
	in_reclaim = 0;
	return freed;
}

uint64_t shrinker_count_all(void)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < SHRINKER_MAX; i++)
		if (table[i].used) {
			uint64_t c = table[i].count(table[i].ctx);
			sum = c > UINT64_MAX - sum ? UINT64_MAX : sum + c;
		}
	return sum;
}

size_t shrinker_list(struct shrinker_info *out, size_t max)
{
	size_t n = 0;
	int have_prev = 0, prio = 0;
	uint64_t seq = 0;
	struct shrinker *s;
	while ((s = next_after(have_prev, prio, seq)) != NULL) {
		have_prev = 1;
		prio = s->priority;
		seq = s->seq;
		if (n < max) {
			struct shrinker_info *o = &out[n];
			o->id = (int)s->seq;
			o->priority = s->priority;
			memcpy(o->name, s->name, sizeof o->name);
			o->can_free = s->count(s->ctx);
			o->calls = s->calls;
			o->freed = s->freed;
			o->bad_answers = s->bad_answers;
		}
		n++;
	}
	return n;
}

void shrinker_get_totals(struct shrinker_totals *t) { *t = totals; }

#ifdef HOST_TEST
void shrinker_reset(void)
{
	memset(table, 0, sizeof table);
	memset(&totals, 0, sizeof totals);
	next_seq = 1;
	in_reclaim = 0;
}
#endif
