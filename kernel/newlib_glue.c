/*
 * newlib_glue.c - the system calls newlib expects from its host. There is one
 * "process" and one device, the console: stdout/stderr write to the serial
 * port, stdin reads from it without blocking, files do not exist. This newlib
 * target (x86_64-elf) calls the plain names (write, sbrk...), not _write. sbrk lives
 * with the heap (mm/heap.c).
 */
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/times.h>
#include "kernel/arch/serial.h"
#include "kclock.h"
#include "kernel/arch/panic.h"
#include "kernel/arch/power.h"

#undef errno
extern int errno;

int write(int fd, const void *buf, size_t len)
{
	if (fd != 1 && fd != 2) {
		errno = EBADF;
		return -1;
	}
	serial_write(buf, len);
	return (int)len;
}

int read(int fd, void *buf, size_t len)
{
	if (fd != 0) {
		errno = EBADF;
		return -1;
	}
	size_t n = 0;
	int c;
	while (n < len && (c = serial_getc()) >= 0)
		((char *)buf)[n++] = (char)c;
	return (int)n;
}

int open(const char *path, int flags, int mode) { errno = ENOENT; return -1; }
int close(int fd) { return fd <= 2 ? 0 : (errno = EBADF, -1); }
int lseek(int fd, int off, int whence) { errno = ESPIPE; return -1; }
int isatty(int fd) { return fd <= 2; }
int getpid(void) { return 1; }
int kill(int pid, int sig) { errno = EINVAL; return -1; }
int link(const char *a, const char *b) { errno = EMLINK; return -1; }
int unlink(const char *p) { errno = ENOENT; return -1; }
int fork(void) { errno = EAGAIN; return -1; }
int wait(int *status) { errno = ECHILD; return -1; }
int execve(const char *n, char *const *a, char *const *e) { errno = ENOMEM; return -1; }
int stat(const char *p, struct stat *st) { errno = ENOENT; return -1; }

int fstat(int fd, struct stat *st)
{
	if (fd > 2) {
		errno = EBADF;
		return -1;
	}
	st->st_mode = S_IFCHR;
	return 0;
}

int gettimeofday(struct timeval *tv, void *tz)
{
	uint64_t ns = clock_ns();
	tv->tv_sec = (time_t)(ns / NS_PER_S);
	tv->tv_usec = (suseconds_t)(ns % NS_PER_S / 1000);
	return 0;
}

clock_t times(struct tms *t) { return (clock_t)-1; }

void _exit(int status)
{
	power_off(status == 0);
}

/* abort() and failed assert() end up here through newlib's signal emulation. */
void __assert_func(const char *file, int line, const char *fn, const char *expr)
{
	panic("assert(%s) failed in %s at %s:%d", expr, fn ? fn : "?", file, line);
}
