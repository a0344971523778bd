// CAllocationCounter: test support only (never linked into the firmware). Replaces the process's
// malloc family with counting wrappers around glibc's own allocator, so a test can prove that a
// real-time path allocates nothing. Counts are per thread: tests running in parallel do not mix.
#ifndef CLASSBOX_CALLOCATIONCOUNTER_H
#define CLASSBOX_CALLOCATIONCOUNTER_H

/// Starts counting allocations made by the calling thread (resets the count).
void cb_allocations_begin(void);
/// Stops counting and returns the number of malloc/calloc/realloc/memalign calls since begin.
long cb_allocations_end(void);
/// True when this process's malloc is the counting one (the interposition took effect).
int cb_allocations_interposed(void);

#endif
