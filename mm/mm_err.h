/*
 * mm_err.h - result codes shared by every mm/ interface.
 *
 * Contract: functions that can fail return int, MM_OK (0) on success or one of
 * the negative codes below; results go through out-parameters. No mm function
 * returns a pointer that is NULL on failure, so a failure is never a silent
 * NULL dereference later. mm_strerror() names a code for log lines.
 */
#ifndef MM_ERR_H
#define MM_ERR_H

enum mm_err {
	MM_OK        = 0,
	MM_ENOMEM    = -1,  /* no memory of the requested kind/size */
	MM_EINVAL    = -2,  /* bad argument: zero or oversize request, misaligned address */
	MM_ERANGE    = -3,  /* frame or address outside what this allocator/table covers */
	MM_ENOTALLOC = -4,  /* free of a frame that is not allocated (double free, never allocated, inside a run) */
	MM_EORDER    = -5,  /* free with a different size than the allocation */
	MM_EEXIST    = -6,  /* mapping already present (or a larger page is in the way) */
	MM_ENOENT    = -7,  /* no mapping at that address */
	MM_EMISMATCH = -8,  /* mapping does not point where the caller said it does */
	MM_ESTATE    = -9,  /* frame/block in the wrong state for this call (e.g. fa_free on a balloon frame) */
	MM_ENOSPC    = -10, /* a fixed-size table (notifier slots) is full */
	MM_EBUSY     = -11, /* in use and cannot be moved (unmovable, lent or isolated memory) */
};

static inline const char *mm_strerror(int err)
{
	switch (err) {
	case MM_OK:        return "ok";
	case MM_ENOMEM:    return "out of memory";
	case MM_EINVAL:    return "invalid argument";
	case MM_ERANGE:    return "out of range";
	case MM_ENOTALLOC: return "not allocated (double free or never allocated)";
	case MM_EORDER:    return "wrong size for this allocation";
	case MM_EEXIST:    return "already mapped";
	case MM_ENOENT:    return "not mapped";
	case MM_EMISMATCH: return "mapping mismatch";
	case MM_ESTATE:    return "wrong state";
	case MM_ENOSPC:    return "no slot left";
	case MM_EBUSY:     return "in use and cannot be moved";
	default:           return "unknown error";
	}
}

#endif
