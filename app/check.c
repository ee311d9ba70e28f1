/*
 * check.c - the appliance's corruption check: every chunk (and the cache)
 * holds a checksummed pattern; a check walks them all, in bounded slices from
 * the poller or at once, and prints the lines app.c's header lists. Part of
 * the engine (contract in app.h).
 */
#include <stdio.h>
#include <string.h>
#include "app/app.h"
#include "kclock.h"
#include "units.h"


static void verify_part(struct app *a, const struct app_piece *p, int in_cache, uint64_t off,
                        uint64_t len, struct app_check_result *r, int *piece_bad)
{
	struct app_mismatch m;
	uint64_t bad = app_pattern_verify(p->va, off, len, p->seq, &m);
	r->bytes += len;
	a->verified_bytes += len;
	if (!bad)
		return;
	r->corrupt_words += bad;
	if (*piece_bad)
		return;
	*piece_bad = 1;
	r->corrupt_chunks++;
	a->corrupt_chunks++;
	if (!r->have_first) {
		r->have_first = 1;
		r->first_seq = p->seq;
		r->first_in_cache = in_cache;
		r->first = m;
	}
	klog_ratelimited(&a->lim_corrupt, NS_PER_S,
	                 "%s: CORRUPTION chunk %llu offset %#llx: expected %016llx got %016llx%s",
	                 a->name, (unsigned long long)p->seq, (unsigned long long)m.offset,
	                 (unsigned long long)m.expected, (unsigned long long)m.got,
	                 in_cache ? " (cache)" : "");
}

static void report_check(struct app *a, const struct app_check_result *r, int limited)
{
	char line[160];
	if (r->corrupt_chunks == 0)
		snprintf(line, sizeof line, "%s: check ok, %llu MiB verified", a->name, (unsigned long long)((r->bytes) / MIB));
	else
		snprintf(line, sizeof line, "%s: check FAILED, %llu corrupt chunks (%llu bad words), %llu MiB verified",
		         a->name, (unsigned long long)r->corrupt_chunks,
		         (unsigned long long)r->corrupt_words, (unsigned long long)((r->bytes) / MIB));
	if (limited)
		klog_ratelimited(&a->lim_pattern, 10 * NS_PER_S, "%s", line);
	else
		klog("%s", line);
}

void app_check_now(struct app *a, struct app_check_result *r)
{
	memset(r, 0, sizeof *r);
	for (int set = 0; set < 2; set++) {
		struct app_set *s = set ? &a->cache : &a->held;
		for (size_t i = 0; i < s->n; i++) {
			int bad = 0;
			verify_part(a, &s->v[i], set, 0, s->v[i].bytes, r, &bad);
			r->pieces++;
		}
	}
	a->checks++;
	a->last_check = *r;
	report_check(a, r, 0);
}

int app_start_check(struct app *a)
{
	if (a->checking)
		return -1;
	a->checking = APP_CHECK_CMD;
	a->ck_set = 0;
	a->ck_idx = 0;
	a->ck_off = 0;
	a->ck_piece_bad = 0;
	memset(&a->ck, 0, sizeof a->ck);
	return 0;
}


static void check_finish(struct app *a, uint64_t now)
{
	int who = a->checking;
	a->checking = 0;
	a->checks++;
	a->last_check = a->ck;
	report_check(a, &a->ck, who == APP_CHECK_STEP);
	if (who == APP_CHECK_STEP && a->prog_kind != APP_PROG_NONE)
		app_step_end(a, now, 1);
}

/* Verify from the cursor, up to `budget` bytes; returns bytes verified. The
 * cache may lose pieces between calls (its shrinker): the cursor then sees a
 * different piece or the end, which costs coverage, never a false alarm. */
uint64_t app_check_work(struct app *a, uint64_t now, uint64_t budget)
{
	uint64_t done = 0;
	while (a->checking && done < budget) {
		struct app_set *s = a->ck_set ? &a->cache : &a->held;
		if (a->ck_idx >= s->n) {
			if (a->ck_set == 0) {
				a->ck_set = 1;
				a->ck_idx = 0;
				a->ck_off = 0;
				a->ck_piece_bad = 0;
				continue;
			}
			check_finish(a, now);
			break;
		}
		const struct app_piece *p = &s->v[a->ck_idx];
		if (a->ck_off >= p->bytes)
			a->ck_off = 0;
		uint64_t len = min_u64(p->bytes - a->ck_off, budget - done);
		verify_part(a, p, a->ck_set, a->ck_off, len, &a->ck, &a->ck_piece_bad);
		a->ck_off += len;
		done += len;
		if (a->ck_off >= p->bytes) {
			a->ck.pieces++;
			a->ck_idx++;
			a->ck_off = 0;
			a->ck_piece_bad = 0;
		}
	}
	return done;
}

