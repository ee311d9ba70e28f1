/*
 * time.h - the kernel's time source: the TSC, calibrated against the PIT
 * (8254 channel 2, an independent fixed 1.193182 MHz clock) at boot, and
 * cross-checked with the loader's measurement against UEFI's Stall().
 * clock_ns() (include/kclock.h) is built on it.
 */
#ifndef KERNEL_TIME_H
#define KERNEL_TIME_H

#include <stdint.h>

/* Calibrate; 0 on success. Must run before clock_ns() is meaningful. With a
 * loader figure, that figure is used at once and the PIT checks it in the
 * background; time_confirm (before the kernel says it is ready) finishes the
 * check, and if the PIT disagrees by more than 2% recalibrates (30 ms, one
 * line) - clock_ns() stays monotonic across the change. */
int time_init(uint64_t loader_tsc_hz);
int time_confirm(void);
uint64_t time_tsc_hz(void);
/* A fresh PIT calibration of the TSC rate (median of three bracketed 10 ms
 * samples; 0: no PIT), for tests. */
uint64_t time_pit_hz(void);
uint64_t tsc_to_ns(uint64_t ticks);
void udelay(uint64_t us);

/* Pure helpers, host-tested: TSC Hz from a tick count over a PIT interval;
 * from CPUID leaves 0x15 (eax, ebx, ecx) and 0x16 (eax) given the highest
 * leaf, 0 if they do not say. */
uint64_t tsc_hz_from_pit(uint64_t tsc_ticks, uint32_t pit_ticks);
uint64_t tsc_hz_from_cpuid(uint32_t max_leaf, const uint32_t l15[3], uint32_t l16_eax);

/* Local APIC (kernel/arch/lapic.c): lapic_enable masks the 8259s, enables the
 * APIC and returns the physical address of its registers; lapic_attach takes
 * them, mapped uncached by the caller (NULL: -1; no EOIs, no interrupts), and
 * software-enables the APIC; lapic_timer_init starts counting its timer
 * against the TSC and lapic_timer_calibrate (after time_confirm, before the
 * work loop first sleeps) reads how far it got (one that does not count: -1,
 * one line). The timer is one-shot: lapic_timer_arm(ns)
 * raises VEC_TIMER once after `ns` (0 stops it); timer_ticks() counts those
 * interrupts. */
uint64_t lapic_enable(void);
int lapic_attach(volatile void *regs);
int lapic_timer_init(void);
int lapic_timer_calibrate(void);
int lapic_timer_ok(void);
void lapic_timer_arm(uint64_t ns);
void lapic_eoi(void);
uint32_t lapic_id(void);      /* this CPU's local APIC id (MSI destination) */
uint64_t timer_ticks(void);

#endif
