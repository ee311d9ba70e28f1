/*
 * heap.c - sbrk for newlib.
 *
 * Before mm is up (printf buffers, early console), the break moves in a small
 * pool in .bss. Once mm is ready it moves in the movable heap window
 * (mm/vregion.c over MM_HEAP_BASE): growing maps zeroed movable frames,
 * shrinking (newlib's malloc_trim passes a negative increment) unmaps whole
 * pages and returns their frames. The window lies above the kernel image, so
 * newlib sees a higher, non-contiguous extension and fences off the early
 * pool (which stays in use for what was allocated there).
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include "mm/mm_kernel.h"

#undef errno
extern int errno;

#define EARLY_POOL_SIZE (256u << 10)
static uint8_t early_pool[EARLY_POOL_SIZE] __attribute__((aligned(4096)));
static size_t early_brk;

static void *early_sbrk(ptrdiff_t incr)
{
	if ((incr > 0 && (size_t)incr > EARLY_POOL_SIZE - early_brk) ||
	    (incr < 0 && (size_t)-incr > early_brk)) {
		errno = ENOMEM;
		return (void *)-1;
	}
	void *old = early_pool + early_brk;
	early_brk += (size_t)incr;
	return old;
}

void *sbrk(ptrdiff_t incr)
{
	if (!mmk.ready)
		return early_sbrk(incr);
	uint64_t old;
	mmk.in_sbrk = 1;
	int err = vregion_sbrk(&mmk.heap, incr, &old);
	mmk.in_sbrk = 0;
	if (err != MM_OK) {
		errno = ENOMEM;
		return (void *)-1;
	}
	return (void *)old;
}
