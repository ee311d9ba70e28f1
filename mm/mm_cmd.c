/*
 * mm_cmd.c - memory on the console: `mem` prints the numbers (also
 * mm_print_stats() for other modules), `compact [blocks]` runs the compactor
 * and says what it did, `shrinkers` lists the caches that give memory back.
 */
#include <stdio.h>
#include <stdlib.h>
#include "kernel/lib/cmdline.h"
#include "kernel/lib/console.h"
#include "mm/mm.h"
#include "mm/mm_kernel.h"
#include "mm/shrinker.h"
#include "kernel/lib/fmt.h"

void mm_print_stats(void)
{
	if (!mmk.ready) {
		kprintf("mem: memory manager not ready\n");
		return;
	}
	struct mm_stats st;
	char buf[512];
	fa_stats(&mmk.fa, &st);
	mm_stats_format(&st, buf, sizeof buf);
	fputs(buf, stdout);
	kprintf("mm: heap %llu KiB, anonymous %llu KiB, page tables %llu KiB, frame metadata %llu KiB, "
	       "lazily backed %llu KiB; hot-plugged %llu MiB; RAM still coming online %llu MiB\n",
	       (unsigned long long)vregion_pages(&mmk.heap) * 4, (unsigned long long)mmk.anon.pages * 4,
	       (unsigned long long)mmk.table_pages * 4, (unsigned long long)mmk.meta_pages * 4,
	       (unsigned long long)mmk.lazy_pages * 4,
	       (unsigned long long)PAGES_TO_MIB(mmk.hot_pages), (unsigned long long)PAGES_TO_MIB(mmk.pending_pages));
}

static int cmd_mem(int argc, char **argv)
{
	mm_print_stats();
	return 0;
}
CONSOLE_CMD("mem", "memory: free, in whole 2 MiB blocks, per state", cmd_mem);

static int cmd_compact(int argc, char **argv)
{
	uint64_t more = UINT64_MAX;
	if (!mmk.ready) {
		kprintf("compact: memory manager not ready\n");
		return 1;
	}
	if (argc > 2 || (argc == 2 && (cmdline_parse_number(argv[1], &more) || more == 0 ||
	                               more > mmk.fa.nblocks))) {
		kprintf("usage: compact [free blocks to add: 1..%u]\n", mmk.fa.nblocks);
		return 1;
	}
	uint64_t have = fa_free_blocks(&mmk.fa);
	uint64_t want = more == UINT64_MAX ? UINT64_MAX : have + more;
	struct compact_result r;
	mm_compact(want, 0, &r);
	kprintf("compact: moved %llu frames (%llu MiB), freed %llu blocks (%llu -> %llu free), "
	       "%llu left in place, %llu us, %s\n",
	       (unsigned long long)r.frames_moved, (unsigned long long)(r.frames_moved >> 8),
	       (unsigned long long)r.blocks_freed, (unsigned long long)r.free_blocks_before,
	       (unsigned long long)r.free_blocks_after, (unsigned long long)r.frames_failed,
	       (unsigned long long)(r.ns / 1000),
	       r.stop == COMPACT_REACHED ? "target reached" : "nothing more can move");
	return 0;
}
CONSOLE_CMD("compact", "compact movable memory into whole 2 MiB blocks", cmd_compact);

/* `shrinkers`: one line per shrinker, in the order reclaim asks them. */
static int cmd_shrinkers(int argc, char **argv)
{
	struct shrinker_info info[SHRINKER_MAX];
	struct shrinker_totals t;
	size_t n = shrinker_list(info, SHRINKER_MAX);
	shrinker_get_totals(&t);
	kprintf("shrinkers: %lu registered, %llu reclaim calls, %llu of %llu pages wanted freed\n",
	       (unsigned long)n, (unsigned long long)t.reclaim_calls, (unsigned long long)t.pages_freed,
	       (unsigned long long)t.pages_wanted);
	for (size_t i = 0; i < n && i < SHRINKER_MAX; i++)
		kprintf("  %-16s prio %4d: can free %llu pages, %llu calls, %llu pages freed, %llu bad answers\n",
		       info[i].name, info[i].priority, (unsigned long long)info[i].can_free,
		       (unsigned long long)info[i].calls, (unsigned long long)info[i].freed,
		       (unsigned long long)info[i].bad_answers);
	return 0;
}
CONSOLE_CMD("shrinkers", "list registered shrinkers (caches that give memory back)", cmd_shrinkers);
