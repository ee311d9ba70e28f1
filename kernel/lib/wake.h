/*
 * wake.h - when the work loop must run the pollers again.
 *
 * The kernel is tickless: after a round of pollers (kernel/main.c) it sleeps
 * in hlt until an interrupt or the earliest deadline a poller asked for in
 * that round, on a one-shot timer. A poller with timed work asks with
 * wake_at(deadline); one busy with bounded steps asks for WAKE_BUSY_NS later,
 * which paces it like the old 1 kHz tick. A poller that asks nothing is woken
 * only by an interrupt (its device's, or the console's): an idle guest does
 * not wake at all.
 *
 * Contract: deadlines are clock_ns() values; asking for a time already past
 * means "run again at once". Requests last one round: a poller that still
 * needs time asks again each round. Single core, thread context.
 */
#ifndef KERNEL_LIB_WAKE_H
#define KERNEL_LIB_WAKE_H

#include <stdint.h>
#include "kclock.h"

#define WAKE_BUSY_NS  (1 * NS_PER_MS)
#define WAKE_NEVER    UINT64_MAX

void wake_at(uint64_t deadline_ns);
static inline void wake_in(uint64_t now_ns, uint64_t delta_ns) { wake_at(now_ns + delta_ns); }

/* The work loop's side: the earliest deadline asked since the last call
 * (WAKE_NEVER if none), forgetting them all. */
uint64_t wake_take(void);

/* Wake-ups of the work loop (each sleep that ended), for `uptime` and the
 * idle bench. */
void wake_count_sleep(void);
uint64_t wake_sleeps(void);
/* The deadline the last round of pollers asked for (WAKE_NEVER: none). */
uint64_t wake_last_deadline(void);

#endif /* KERNEL_LIB_WAKE_H */
