/*
 * kernel.h - what the top of the kernel (kernel/) shares between its files:
 * the platform options (kernel_cmd.c), read by main.c's platform set-up.
 */
#ifndef KERNEL_KERNEL_H
#define KERNEL_KERNEL_H

/* `irq.poll`: route no interrupt lines, so every device is polled (for a
 * hypervisor whose INTx routing misbehaves, and to test that fallback). */
extern int opt_irq_poll;
/* `timer.off`: do not use the LAPIC timer; the work loop spins to its
 * deadlines instead of sleeping (tests the no-timer fallback). */
extern int opt_timer_off;
/* console.sync: console output is written before each write returns instead
 * of being drained by the work loop - to see the last line before a hang. */
extern int opt_console_sync;

#endif /* KERNEL_KERNEL_H */
