/*
 * app.c - the appliance workload engine (contract in app.h). Logic only: the
 * kernel glue (options, poller, console command) is app/app_main.c.
 *
 * Lines it prints (others script against these; keep them stable):
 *   <name>: check ok, N MiB verified
 *   <name>: check FAILED, N corrupt chunks (W bad words), N MiB verified
 *   <name>: CORRUPTION chunk SEQ offset 0xOFF: expected HEX16 got HEX16[ (cache)]
 *   <name>: allocation of SIZE failed after N MiB held
 *   <name>: grow done: +SIZE, held SIZE in N chunks
 *   <name>: grow stopped at +SIZE of SIZE: allocation failed; held SIZE in N chunks
 *   <name>: shrink done: -SIZE, held SIZE in N chunks
 *   <name>: fill done: +SIZE until allocation failed, SIZE given back; held SIZE in N chunks
 *   <name>: fill done: +SIZE until SIZE were left free; held SIZE in N chunks
 *   <name>: pattern 'SPEC' started | stopped | done
 * SIZE is "N MiB" when whole MiB, else "N KiB".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "app/app.h"
#include "kclock.h"
#include "units.h"
#include "mm/kmem.h"
#include "mm/shrinker.h"

static uint64_t sub_sat(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }
static unsigned long long mib(uint64_t bytes) { return (unsigned long long)(bytes >> 20); }

static const char *fmt_size(char *buf, size_t len, uint64_t bytes)
{
	/* Small odd sizes in KiB so a test's 512 KiB is not "0 MiB". */
	if (!(bytes & ((1ull << 20) - 1)) || bytes >= (16ull << 20))
		snprintf(buf, len, "%llu MiB", (unsigned long long)(bytes >> 20));
	else
		snprintf(buf, len, "%llu KiB", (unsigned long long)(bytes >> 10));
	return buf;
}

/* xorshift64*: which chunk a shrink frees. Deterministic per instance. */
static uint64_t rnd(struct app *a)
{
	uint64_t x = a->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	a->rng = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* ------------------------------------------------------------ pieces */

static void note_alloc_failure(struct app *a, uint64_t bytes)
{
	char s[32];
	a->alloc_failures++;
	klog_ratelimited(&a->lim_fail, NS_PER_S, "%s: allocation of %s failed after %llu MiB held",
	                 a->name, fmt_size(s, sizeof s, bytes), mib(a->held.bytes));
}

/* Allocate one piece of `bytes`, fill it, add it to `s`. 0 or -1 (counted). */
static int add_piece(struct app *a, struct app_set *s, uint64_t bytes)
{
	/* Room in the bookkeeping first: failing after the fill would waste it. */
	if (s->n == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 64;
		struct app_piece *nv = realloc(s->v, ncap * sizeof *nv);
		if (!nv) {
			note_alloc_failure(a, ncap * sizeof *nv);
			return -1;
		}
		s->v = nv;
		s->cap = ncap;
	}
	/* May run the OOM path and so our own cache shrinker: it only removes
	 * pieces, so s->n < s->cap still holds afterwards. */
	void *va = kmem_anon_map(bytes);
	if (!va) {
		note_alloc_failure(a, bytes);
		return -1;
	}
	uint64_t seq = a->next_seq++;
	app_pattern_fill(va, bytes, seq);
	s->v[s->n++] = (struct app_piece){ va, bytes, seq };
	s->bytes += bytes;
	return 0;
}

/* Free piece i of s (the last one moves into its place); returns its size. */
static uint64_t remove_piece(struct app_set *s, size_t i)
{
	struct app_piece p = s->v[i];
	s->v[i] = s->v[--s->n];
	s->bytes -= p.bytes;
	kmem_anon_unmap(p.va, p.bytes);
	return p.bytes;
}

static void free_set(struct app_set *s)
{
	while (s->n)
		remove_piece(s, s->n - 1);
	free(s->v);
	memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------ the cache */

static uint64_t cache_count(void *ctx)
{
	struct app *a = ctx;
	return a->cache.bytes / PAGE_SIZE;
}

/* Whole pieces only, never more than asked: the registry trusts no more. */
/* Whole pieces, never more than asked - except that a request smaller than
 * one piece gets one piece (its declared unit): at OOM an allocation of a
 * few pages must not get nothing while the cache holds megabytes. */
static uint64_t cache_scan(void *ctx, uint64_t pages)
{
	struct app *a = ctx;
	uint64_t freed = 0;
	while (a->cache.n) {
		uint64_t pp = a->cache.v[a->cache.n - 1].bytes / PAGE_SIZE;
		if (freed + pp > pages && freed)
			break;
		remove_piece(&a->cache, a->cache.n - 1);
		freed += pp;
	}
	if (freed) {
		a->cache_given_pages += freed;
		a->cache_resume_ns = clock_ns() + APP_CACHE_REGROW_NS;
	}
	return freed;
}

static uint64_t cache_goal(const struct app *a)
{
	return (a->cache_target + APP_CACHE_PIECE - 1) / APP_CACHE_PIECE * APP_CACHE_PIECE;
}

uint64_t app_cache_grow_now(struct app *a, uint64_t bytes)
{
	uint64_t got = 0;
	while (got < bytes && add_piece(a, &a->cache, APP_CACHE_PIECE) == 0)
		got += APP_CACHE_PIECE;
	return got;
}

void app_set_cache_target(struct app *a, uint64_t bytes)
{
	a->cache_target = bytes;
	a->cache_resume_ns = 0;   /* an explicit target applies now */
}

/* Trim to the goal at once (cheap), regrow within the budget. */
static uint64_t cache_work(struct app *a, uint64_t now, uint64_t left)
{
	uint64_t goal = cache_goal(a);
	while (a->cache.bytes > goal && a->cache.n)
		remove_piece(&a->cache, a->cache.n - 1);
	if (now < a->cache_resume_ns)
		return left;
	while (left > 0 && a->cache.bytes < goal) {
		if (add_piece(a, &a->cache, APP_CACHE_PIECE)) {
			a->cache_resume_ns = now + 5 * APP_FAIL_PAUSE_NS;
			break;
		}
		left = sub_sat(left, APP_CACHE_PIECE);
	}
	return left;
}

/* ------------------------------------------------------------ grow, shrink */

uint64_t app_grow_now(struct app *a, uint64_t bytes)
{
	uint64_t got = 0;
	while (got < bytes && add_piece(a, &a->held, a->chunk_bytes) == 0)
		got += a->chunk_bytes;
	return got;
}

static uint64_t drop_random(struct app *a)
{
	return remove_piece(&a->held, (size_t)(rnd(a) % a->held.n));
}

uint64_t app_shrink_now(struct app *a, uint64_t bytes)
{
	uint64_t freed = 0;
	while (freed < bytes && a->held.n)
		freed += drop_random(a);
	return freed;
}

/* ------------------------------------------------------------ the program */

static void program_clear(struct app *a)
{
	if (a->checking == APP_CHECK_STEP)
		a->checking = 0;   /* the step that wanted it is gone */
	a->prog_kind = APP_PROG_NONE;
	a->prog.n = 0;
	a->prog.loop = 0;
	a->pc = 0;
	a->step_active = 0;
	a->step_done = 0;
	a->step_given = 0;
	a->step_reserve_left = 0;
	a->pause_until = 0;
	a->loops = 0;
}

static void program_replace(struct app *a, enum app_prog_kind kind, const struct app_program *p)
{
	if (a->prog_kind == APP_PROG_PATTERN)
		klog("%s: pattern '%s' stopped", a->name, a->prog.text);
	program_clear(a);
	if (kind == APP_PROG_NONE || p->n == 0)
		return;
	a->prog = *p;
	a->prog_kind = kind;
	if (kind == APP_PROG_PATTERN)
		klog("%s: pattern '%s' started", a->name, a->prog.text);
}

static void command(struct app *a, enum app_op op, uint64_t arg)
{
	struct app_program p;
	memset(&p, 0, sizeof p);
	p.n = 1;
	p.step[0].op = op;
	p.step[0].arg = arg;
	snprintf(p.text, sizeof p.text, "%s", app_op_name(op));
	program_replace(a, APP_PROG_COMMAND, &p);
}

void app_cmd_grow(struct app *a, uint64_t bytes)   { command(a, APP_OP_GROW, bytes); }
void app_cmd_shrink(struct app *a, uint64_t bytes) { command(a, APP_OP_SHRINK, bytes); }
void app_cmd_fill(struct app *a, uint64_t reserve) { command(a, APP_OP_FILL, reserve); }

void app_stop(struct app *a)
{
	program_replace(a, APP_PROG_NONE, NULL);
	a->checking = 0;
}

int app_set_pattern(struct app *a, const char *spec, char *why, size_t why_len)
{
	struct app_program p;
	if (app_spec_parse(spec, &p, why, why_len))
		return -1;
	program_replace(a, p.n ? APP_PROG_PATTERN : APP_PROG_NONE, &p);
	return 0;
}

/* A console command's one line when it ends. */
static void report_command(struct app *a, const struct app_step *st, int ok)
{
	char s1[32], s2[32], s3[32];
	fmt_size(s3, sizeof s3, a->held.bytes);
	switch (st->op) {
	case APP_OP_GROW:
		if (ok)
			klog("%s: grow done: +%s, held %s in %lu chunks", a->name,
			     fmt_size(s1, sizeof s1, a->step_done), s3, (unsigned long)a->held.n);
		else
			klog("%s: grow stopped at +%s of %s: allocation failed; held %s in %lu chunks", a->name,
			     fmt_size(s1, sizeof s1, a->step_done), fmt_size(s2, sizeof s2, st->arg), s3, (unsigned long)a->held.n);
		break;
	case APP_OP_SHRINK:
		klog("%s: shrink done: -%s, held %s in %lu chunks", a->name,
		     fmt_size(s1, sizeof s1, a->step_done), s3, (unsigned long)a->held.n);
		break;
	case APP_OP_FILL:
		if (a->step_reserve_left)
			klog("%s: fill done: +%s until %s were left free; held %s in %lu chunks", a->name,
			     fmt_size(s1, sizeof s1, a->step_done), fmt_size(s2, sizeof s2, st->arg), s3,
			     (unsigned long)a->held.n);
		else
			klog("%s: fill done: +%s until allocation failed, %s given back; held %s in %lu chunks", a->name,
			     fmt_size(s1, sizeof s1, a->step_done), fmt_size(s2, sizeof s2, a->step_given), s3,
			     (unsigned long)a->held.n);
		break;
	default:
		break;
	}
}

void app_step_end(struct app *a, uint64_t now, int ok)
{
	if (a->prog_kind == APP_PROG_COMMAND) {
		report_command(a, &a->prog.step[a->pc], ok);
		program_clear(a);
		return;
	}
	a->pc++;
	a->step_active = 0;
	a->step_done = 0;
	a->step_given = 0;
	a->step_reserve_left = 0;
	if (!ok)
		a->pause_until = now + APP_FAIL_PAUSE_NS;
}

/* Run program steps within `left` bytes of work; returns what is left. */
static uint64_t program_work(struct app *a, uint64_t now, uint64_t left)
{
	unsigned steps = 0;
	while (a->prog_kind != APP_PROG_NONE && left > 0 && !a->checking) {
		if (a->pause_until && now < a->pause_until)
			break;
		a->pause_until = 0;
		if (a->pc >= a->prog.n) {
			if (!a->prog.loop) {
				if (a->prog_kind == APP_PROG_PATTERN)
					klog("%s: pattern '%s' done", a->name, a->prog.text);
				program_clear(a);
				break;
			}
			a->pc = 0;
			a->loops++;
		}
		/* A loop whose steps do no work (shrink with nothing held) must
		 * not spin here: at most one pass per call. */
		if (++steps > APP_MAX_STEPS + 1)
			break;
		const struct app_step *st = &a->prog.step[a->pc];
		switch (st->op) {
		case APP_OP_GROW: {
			int failed = 0;
			while (left > 0 && a->step_done < st->arg) {
				if (add_piece(a, &a->held, a->chunk_bytes)) {
					failed = 1;
					break;
				}
				a->step_done += a->chunk_bytes;
				left = sub_sat(left, a->chunk_bytes);
			}
			if (failed || a->step_done >= st->arg)
				app_step_end(a, now, !failed);
			break;
		}
		case APP_OP_SHRINK: {
			/* Freeing touches no memory; still bounded per call. */
			for (unsigned n = 0; n < 4096 && a->held.n && a->step_done < st->arg; n++)
				a->step_done += drop_random(a);
			left = sub_sat(left, PAGE_SIZE);
			if (a->step_done >= st->arg || !a->held.n)
				app_step_end(a, now, 1);
			break;
		}
		case APP_OP_HOLD:
			if (!a->step_active) {
				a->step_active = 1;
				a->step_t0 = now;
			}
			if (now < a->step_t0 || now - a->step_t0 < st->arg)
				return left;
			app_step_end(a, now, 1);
			break;
		case APP_OP_CHECK:
			app_start_check(a);
			a->checking = APP_CHECK_STEP;
			a->step_active = 1;
			return left;     /* app_poll() runs the check with what is left */
		case APP_OP_FILL: {
			int failed = 0, reserve_left = 0;
			while (left > 0) {
				uint64_t free_now;
				if (st->arg && a->free_bytes && a->free_bytes(&free_now) == 0 &&
				    free_now < st->arg + a->chunk_bytes) {
					reserve_left = 1;   /* stop short: no allocation failure needed */
					break;
				}
				if (add_piece(a, &a->held, a->chunk_bytes)) {
					failed = 1;
					break;
				}
				a->step_done += a->chunk_bytes;
				left = sub_sat(left, a->chunk_bytes);
			}
			if (failed)
				a->step_given = app_shrink_now(a, st->arg);
			if (failed || reserve_left) {
				a->step_reserve_left = reserve_left;
				app_step_end(a, now, 1);
			}
			break;
		}
		}
	}
	return left;
}

/* ------------------------------------------------------------ poll */

static int has_work(const struct app *a, uint64_t now)
{
	if (a->checking)
		return 1;
	if (a->prog_kind != APP_PROG_NONE) {
		int paused = a->pause_until && now < a->pause_until;
		const struct app_step *st = a->pc < a->prog.n ? &a->prog.step[a->pc] : NULL;
		int holding = st && st->op == APP_OP_HOLD && a->step_active &&
		              (now < a->step_t0 || now - a->step_t0 < st->arg);
		if (!paused && !holding)
			return 1;
	}
	uint64_t goal = cache_goal(a);
	return a->cache.bytes > goal || (a->cache.bytes < goal && now >= a->cache_resume_ns);
}

uint64_t app_next_deadline(const struct app *a, uint64_t now)
{
	uint64_t t = UINT64_MAX;
	if (a->prog_kind != APP_PROG_NONE) {
		const struct app_step *st = a->pc < a->prog.n ? &a->prog.step[a->pc] : NULL;
		if (a->pause_until && now < a->pause_until)
			t = a->pause_until;
		else if (st && st->op == APP_OP_HOLD && a->step_active)
			t = a->step_t0 + st->arg;
	}
	if (a->cache.bytes < cache_goal(a) && now < a->cache_resume_ns)
		t = min_u64(t, a->cache_resume_ns);
	return t;
}

int app_poll(struct app *a, uint64_t now, uint64_t budget)
{
	uint64_t left = budget < PAGE_SIZE ? PAGE_SIZE : budget & ~(PAGE_SIZE - 1);
	if (a->checking)
		left = sub_sat(left, app_check_work(a, now, left));
	if (!a->checking && left)
		left = program_work(a, now, left);
	if (a->checking && left)   /* a check step just started: use the rest */
		left = sub_sat(left, app_check_work(a, now, left));
	if (left)
		cache_work(a, now, left);
	return has_work(a, now);
}

/* ------------------------------------------------------------ set-up, status */

int app_set_chunk(struct app *a, uint64_t bytes)
{
	if (bytes < APP_CHUNK_MIN || bytes > APP_CHUNK_MAX) {
		klog("%s: chunk size %llu out of range [4K, 64M]; kept %llu KiB", a->name,
		     (unsigned long long)bytes, (unsigned long long)(a->chunk_bytes >> 10));
		return -1;
	}
	a->chunk_bytes = (bytes + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	return 0;
}

int app_init(struct app *a, const char *name, uint64_t chunk_bytes, int shrinker_prio)
{
	memset(a, 0, sizeof *a);
	snprintf(a->name, sizeof a->name, "%s", name);
	a->chunk_bytes = APP_CHUNK_DEFAULT;
	a->next_seq = 1;
	a->rng = 0x9e3779b97f4a7c15ull;
	a->shrinker_id = -1;
	if (app_set_chunk(a, chunk_bytes))
		return -1;
	char sname[SHRINKER_NAME_MAX];
	snprintf(sname, sizeof sname, "%s-cache", a->name);
	a->shrinker_id = shrinker_register(sname, shrinker_prio, cache_count, cache_scan, a);
	if (a->shrinker_id > 0)
		shrinker_set_unit(a->shrinker_id, APP_CACHE_PIECE / PAGE_SIZE);
	return 0;
}

void app_destroy(struct app *a)
{
	if (a->shrinker_id > 0)
		shrinker_unregister(a->shrinker_id);
	free_set(&a->held);
	free_set(&a->cache);
	memset(a, 0, sizeof *a);
	a->shrinker_id = -1;
}

void app_format_status(const struct app *a, char *buf, size_t len)
{
	snprintf(buf, len, "%s: held %llu MiB in %lu chunks, cache %llu MiB, verified %llu MiB, "
	         "%llu corrupt, %llu alloc failures",
	         a->name, mib(a->held.bytes), (unsigned long)a->held.n, mib(a->cache.bytes), mib(a->verified_bytes),
	         (unsigned long long)a->corrupt_chunks, (unsigned long long)a->alloc_failures);
}

void app_format_activity(const struct app *a, char *buf, size_t len)
{
	char what[200], s1[32], s2[32];
	const struct app_step *st = a->pc < a->prog.n ? &a->prog.step[a->pc] : NULL;
	if (a->prog_kind == APP_PROG_NONE || !st)
		snprintf(what, sizeof what, "idle");
	else if (a->prog_kind == APP_PROG_COMMAND && st->op == APP_OP_FILL)
		snprintf(what, sizeof what, "fill +%s", fmt_size(s1, sizeof s1, a->step_done));
	else if (a->prog_kind == APP_PROG_COMMAND)
		snprintf(what, sizeof what, "%s %s of %s", app_op_name(st->op),
		         fmt_size(s1, sizeof s1, a->step_done),
		         st->arg == APP_SHRINK_ALL ? "all" : fmt_size(s2, sizeof s2, st->arg));
	else
		snprintf(what, sizeof what, "pattern '%s' step %u/%u %s, %llu loops%s", a->prog.text,
		         a->pc + 1, a->prog.n, app_op_name(st->op), (unsigned long long)a->loops,
		         a->pause_until ? ", paused after an allocation failure" : "");
	snprintf(buf, len, "%s: activity %s%s; chunk %llu KiB; cache target %llu MiB, %llu pages given back",
	         a->name, what, a->checking ? ", check running" : "",
	         (unsigned long long)(a->chunk_bytes >> 10), mib(a->cache_target),
	         (unsigned long long)a->cache_given_pages);
}
