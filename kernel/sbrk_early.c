/*
 * sbrk_early.c - newlib's heap before mm/ owns memory: a fixed region in the
 * kernel's .bss. Grows and shrinks (malloc_trim passes negative increments);
 * running out returns ENOMEM, which malloc turns into NULL.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#undef errno
extern int errno;

#define EARLY_HEAP_SIZE (8u << 20)
static uint8_t early_heap[EARLY_HEAP_SIZE] __attribute__((aligned(4096)));
static size_t brk;

void *sbrk(ptrdiff_t incr)
{
	if ((incr > 0 && (size_t)incr > EARLY_HEAP_SIZE - brk) ||
	    (incr < 0 && (size_t)-incr > brk)) {
		errno = ENOMEM;
		return (void *)-1;
	}
	void *old = early_heap + brk;
	brk += incr;
	return old;
}
