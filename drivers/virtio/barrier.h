/*
 * virtio_barrier.h - the memory barriers the virtqueue code needs, and
 * single-copy accessors for ring fields the device shares with us.
 *
 * In the kernel these map to include/hw/io.h (x86 TSO: rmb/wmb are compiler
 * barriers, mb is mfence, needed for store->load order such as "publish
 * avail idx, then read used flags"). In host tests (-DHOST_TEST) the
 * simulated device runs in the same thread, so compiler barriers suffice;
 * a C11 fence is used for mb so the intent stays visible to sanitizers.
 *
 * VRING_READ/VRING_WRITE do exactly one access of the field's width through
 * a volatile lvalue: the compiler may not tear, merge or repeat it. Read a
 * device-written field once into a local, then check the local.
 */
#ifndef DRIVERS_VIRTIO_BARRIER_H
#define DRIVERS_VIRTIO_BARRIER_H

#ifdef HOST_TEST
#define virtio_mb()  __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define virtio_rmb() __asm__ __volatile__("" ::: "memory")
#define virtio_wmb() __asm__ __volatile__("" ::: "memory")
#else
#include "hw/io.h"
#define virtio_mb()  mb()
#define virtio_rmb() rmb()
#define virtio_wmb() wmb()
#endif

#define VRING_READ(field)      (*(const volatile __typeof__(field) *)&(field))
#define VRING_WRITE(field, v)  (*(volatile __typeof__(field) *)&(field) = (v))

#endif /* DRIVERS_VIRTIO_BARRIER_H */
