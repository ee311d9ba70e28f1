/*
 * app.h - the appliance workload: a memory user that competes with the
 * balloon for memory and proves, by checksumming, that nothing underneath it
 * (allocator, compactor, balloon) corrupts what it holds.
 *
 * Memory
 *  - held chunks of app->chunk_bytes (default 2 MiB) from kmem_anon_map():
 *    anonymous, movable memory that kmem_anon_unmap() gives back wherever it
 *    lies (newlib's heap could not). Each is filled with the pattern of its
 *    sequence number (app/pattern.h), so a check recomputes what it must hold.
 *  - a cache of APP_CACHE_PIECE pieces, filled and checked the same way, that
 *    registers a shrinker and gives pages back when the kernel asks. After
 *    giving, it waits APP_CACHE_REGROW_NS before regrowing towards its target
 *    (a cache refills with use, not at once).
 *
 * Work: app_poll() does at most `budget` bytes of allocation+fill or
 * verification per call, so the kernel's other pollers (the balloon) keep
 * running. It serves, in this order:
 *   1. a running check (app_start_check()): the rest waits until it is done;
 *   2. the program: a pattern (app/spec.h) or one console command (grow,
 *      shrink, fill); one at a time, a new one replaces the old;
 *   3. the cache: trimmed to, or regrown towards, its target.
 *
 * Contract
 *  - An allocation failure (chunk or bookkeeping) is counted, logged
 *    rate-limited ("<name>: allocation of 2 MiB failed after 900 MiB held")
 *    and ends the step (a pattern then pauses APP_FAIL_PAUSE_NS); never a
 *    crash, never a lost chunk.
 *  - Corruption: one rate-limited line per corrupt chunk per check
 *    ("<name>: CORRUPTION chunk N offset X: expected W got W"; N is the
 *    chunk's sequence number, X the byte offset of the first bad byte, W the
 *    8-byte words around it), counted in corrupt_chunks. Memory found corrupt
 *    is left as it is (evidence), and found again by the next check.
 *  - Results of console-driven work are one line each (formats in app.c and
 *    README: "app: check ok, N MiB verified", "app: grow done: ...").
 *  - Several instances may exist (the self-tests use their own); each frees
 *    its memory only by shrink, its shrinker, or app_destroy().
 *  - Single core; the shrinker may run inside any kmem_anon_map() call (OOM
 *    path), so no index into a set is kept across one.
 */
#ifndef APP_APP_H
#define APP_APP_H

#include <stddef.h>
#include <stdint.h>
#include "app/pattern.h"
#include "app/spec.h"
#include "klog.h"

#define APP_CHUNK_DEFAULT   (2ull << 20)
#define APP_CHUNK_MIN       4096ull
#define APP_CHUNK_MAX       (64ull << 20)
#define APP_CACHE_PIECE     (64ull << 10)   /* cache granule: 16 pages */
#define APP_POLL_BUDGET     (4ull << 20)    /* bytes of work per poll call */
#define APP_CACHE_REGROW_NS (10ull * 1000000000ull)
#define APP_FAIL_PAUSE_NS   (1000000000ull)

struct app_piece { uint8_t *va; uint64_t bytes; uint64_t seq; };
struct app_set { struct app_piece *v; size_t n, cap; uint64_t bytes; };

struct app_check_result {
	uint64_t bytes;            /* verified */
	uint64_t pieces;           /* chunks and cache pieces verified */
	uint64_t corrupt_chunks;
	uint64_t corrupt_words;
	int have_first;            /* first corruption found: */
	uint64_t first_seq;
	int first_in_cache;
	struct app_mismatch first;
};

enum app_prog_kind { APP_PROG_NONE, APP_PROG_PATTERN, APP_PROG_COMMAND };

struct app {
	char name[16];                 /* prefix of every line it prints */
	uint64_t chunk_bytes;          /* for chunks allocated from now on */
	struct app_set held, cache;
	uint64_t next_seq;
	uint64_t rng;

	/* the program: a pattern, or one command as a one-step program */
	struct app_program prog;
	enum app_prog_kind prog_kind;
	unsigned pc;
	int step_active;
	uint64_t step_done;            /* bytes grown or freed in this step */
	uint64_t step_t0;              /* hold: when it began */
	uint64_t step_given;           /* fill: reserve given back at the end */
	int step_reserve_left;         /* fill: stopped because only the reserve was free */
	uint64_t pause_until;          /* after an allocation failure */
	uint64_t loops;

	/* the running check */
	int checking;                  /* 0, APP_CHECK_CMD or APP_CHECK_STEP */
	int ck_set;                    /* 0 held, 1 cache */
	size_t ck_idx;
	uint64_t ck_off;
	int ck_piece_bad;              /* the piece at ck_idx is already counted */
	struct app_check_result ck, last_check;

	/* the cache */
	uint64_t cache_target;
	uint64_t cache_resume_ns;      /* no regrowth before this */
	int shrinker_id;
	uint64_t cache_given_pages;    /* to the shrinker registry, in total */

	/* Free memory, if the kernel can tell: 0 and *bytes, or -1 (unknown).
	 * With it, fill:RESERVE stops while RESERVE is still free instead of
	 * running into an allocation failure and giving RESERVE back. */
	int (*free_bytes)(uint64_t *bytes);

	/* totals since app_init */
	uint64_t verified_bytes, corrupt_chunks, alloc_failures, checks;
	struct klog_limit lim_corrupt, lim_fail, lim_pattern;
};

enum { APP_CHECK_CMD = 1, APP_CHECK_STEP = 2 };

/* 0, or -1 (one line) if chunk_bytes is out of range. The cache shrinker is
 * registered as "<name>-cache" at shrinker_prio. */
int app_init(struct app *a, const char *name, uint64_t chunk_bytes, int shrinker_prio);
/* Frees everything, unregisters the shrinker. */
void app_destroy(struct app *a);

/* Chunk size for new chunks: rounded up to 4 KiB; -1 if outside [4K, 64M]. */
int app_set_chunk(struct app *a, uint64_t bytes);
/* Parse and start a pattern (replacing the program); "" or "none" stops it.
 * -1 with the reason in why (program unchanged) if malformed. */
int app_set_pattern(struct app *a, const char *spec, char *why, size_t why_len);
/* Console commands as one-step programs (replace the program). */
void app_cmd_grow(struct app *a, uint64_t bytes);
void app_cmd_shrink(struct app *a, uint64_t bytes);   /* APP_SHRINK_ALL: all */
void app_cmd_fill(struct app *a, uint64_t reserve);
/* Stop the program and a running check; memory stays held. */
void app_stop(struct app *a);
/* -1 if a check is already running. */
int app_start_check(struct app *a);
void app_set_cache_target(struct app *a, uint64_t bytes);

/* Do up to `budget` bytes of work. 1 if more work is ready to run now, 0 if
 * idle or waiting (hold, a pause, the cache's regrow delay). */
int app_poll(struct app *a, uint64_t now, uint64_t budget);
/* When the engine has timed work with nothing to do before (a `hold:` step
 * ending, the pause after an allocation failure, the cache growing again):
 * that time, else UINT64_MAX. For a tickless caller: poll again then. */
uint64_t app_next_deadline(const struct app *a, uint64_t now);

/* Synchronous building blocks (self-tests; the poller uses them in bounded
 * pieces). They return bytes allocated / freed. */
uint64_t app_grow_now(struct app *a, uint64_t bytes);
uint64_t app_shrink_now(struct app *a, uint64_t bytes);
uint64_t app_cache_grow_now(struct app *a, uint64_t bytes);
/* Verify everything now (held and cache), report like a console check. */
void app_check_now(struct app *a, struct app_check_result *r);

/* "app: held 256 MiB in 128 chunks, cache 32 MiB, verified 512 MiB, 0 corrupt, 0 alloc failures" */
void app_format_status(const struct app *a, char *buf, size_t len);
/* "app: activity idle; chunk 2048 KiB; cache target 32 MiB, 0 pages given back" */
void app_format_activity(const struct app *a, char *buf, size_t len);

/* Between the engine's files (app.c, check.c), not for callers: end the
 * running pattern step (ok or failed), and do up to `budget` bytes of a
 * running check, returning the bytes done. */
void app_step_end(struct app *a, uint64_t now, int ok);
uint64_t app_check_work(struct app *a, uint64_t now, uint64_t budget);

#endif
