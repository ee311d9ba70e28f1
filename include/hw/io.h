/*
 * hw/io.h - the only way kernel code touches hardware: port I/O, MMIO with
 * explicit volatile accesses, and barriers.
 *
 * Logic modules (mm/ logic, drivers/virtio/virtq.c and virtio_pci.c, the
 * balloon core in drivers/balloon/) never include this file; they reach
 * hardware through ops structs, so they compile on the host for cmocka. Only
 * thin shells (the _hw.c files, msix.c, kernel/arch/, kernel/main.c,
 * mm/boot_init.c and mm.c) include it.
 */
#ifndef HW_IO_H
#define HW_IO_H

#include <stdint.h>

/* Compiler barrier: stop gcc from moving memory accesses across it. */
#define barrier() __asm__ __volatile__("" ::: "memory")

/* x86 is TSO: stores are not reordered with stores, loads not with loads, so
 * rmb/wmb only need to stop the compiler. A full fence is needed for
 * store->load ordering (e.g. publishing avail->idx, then reading used flags). */
static inline void mb(void)  { __asm__ __volatile__("mfence" ::: "memory"); }
static inline void rmb(void) { barrier(); }
static inline void wmb(void) { barrier(); }

/* Spin-wait hint. Host tests of a shell that waits (drivers/balloon/
 * virtio_balloon.c) provide their own: time passes and the device runs. */
#ifdef HOST_TEST
void cpu_relax(void);
#else
static inline void cpu_relax(void) { __asm__ __volatile__("pause" ::: "memory"); }
#endif

/* CPUID leaf/subleaf: eax, ebx, ecx, edx into r[0..3]. */
static inline void cpuid(uint32_t leaf, uint32_t subleaf, uint32_t r[4])
{
	__asm__ __volatile__("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(subleaf));
}

static inline void outb(uint16_t port, uint8_t v)  { __asm__ __volatile__("outb %0, %1" :: "a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ __volatile__("outw %0, %1" :: "a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ __volatile__("outl %0, %1" :: "a"(v), "Nd"(port)); }
static inline uint8_t  inb(uint16_t port) { uint8_t v;  __asm__ __volatile__("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint16_t inw(uint16_t port) { uint16_t v; __asm__ __volatile__("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint32_t inl(uint16_t port) { uint32_t v; __asm__ __volatile__("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

/* MMIO: one access of exactly the named width, never merged or split. */
static inline uint8_t  mmio_read8(const volatile void *a)  { return *(const volatile uint8_t *)a; }
static inline uint16_t mmio_read16(const volatile void *a) { return *(const volatile uint16_t *)a; }
static inline uint32_t mmio_read32(const volatile void *a) { return *(const volatile uint32_t *)a; }
static inline uint64_t mmio_read64(const volatile void *a) { return *(const volatile uint64_t *)a; }
static inline void mmio_write8(volatile void *a, uint8_t v)   { *(volatile uint8_t *)a = v; }
static inline void mmio_write16(volatile void *a, uint16_t v) { *(volatile uint16_t *)a = v; }
static inline void mmio_write32(volatile void *a, uint32_t v) { *(volatile uint32_t *)a = v; }
static inline void mmio_write64(volatile void *a, uint64_t v) { *(volatile uint64_t *)a = v; }

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;
	__asm__ __volatile__("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((uint64_t)hi << 32) | lo;
}

static inline void wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ __volatile__("wrmsr" :: "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

static inline void invlpg(uintptr_t va) { __asm__ __volatile__("invlpg (%0)" :: "r"(va) : "memory"); }

static inline uint64_t read_cr2(void) { uint64_t v; __asm__ __volatile__("mov %%cr2, %0" : "=r"(v)); return v; }
static inline uint64_t read_cr3(void) { uint64_t v; __asm__ __volatile__("mov %%cr3, %0" : "=r"(v)); return v; }
static inline void write_cr3(uint64_t v) { __asm__ __volatile__("mov %0, %%cr3" :: "r"(v) : "memory"); }

static inline void irq_disable(void) { __asm__ __volatile__("cli" ::: "memory"); }
static inline void irq_enable(void)  { __asm__ __volatile__("sti" ::: "memory"); }
static inline void cpu_halt(void)    { __asm__ __volatile__("hlt" ::: "memory"); }

/* Interrupts off around work a handler must not see half done (the
 * compactor moving a page); irq_restore turns them on again only if they
 * were on before, so the pair nests. */
static inline uint64_t irq_save(void)
{
	uint64_t flags;
	__asm__ __volatile__("pushfq; pop %0; cli" : "=r"(flags) :: "memory");
	return flags;
}

static inline void irq_restore(uint64_t flags)
{
	if (flags & (1ull << 9))   /* IF */
		__asm__ __volatile__("sti" ::: "memory");
}

#endif /* HW_IO_H */
