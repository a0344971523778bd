#include "CAllocationCounter.h"
#include <errno.h>
#include <stddef.h>

// glibc exports its allocator under these names, so the wrappers need no dlsym (which may allocate).
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void __libc_free(void *pointer);

static __thread long counted;
static __thread int counting;
static int seen;

static inline void note(void) {
    seen = 1;
    if (counting) counted++;
}

void *malloc(size_t size) { note(); return __libc_malloc(size); }
void *calloc(size_t count, size_t size) { note(); return __libc_calloc(count, size); }
void *realloc(void *pointer, size_t size) { note(); return __libc_realloc(pointer, size); }
void free(void *pointer) { __libc_free(pointer); }
void *memalign(size_t alignment, size_t size) { note(); return __libc_memalign(alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { note(); return __libc_memalign(alignment, size); }
int posix_memalign(void **out, size_t alignment, size_t size) {
    note();
    void *p = __libc_memalign(alignment, size);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

void cb_allocations_begin(void) { counted = 0; counting = 1; }
long cb_allocations_end(void) { counting = 0; return counted; }
int cb_allocations_interposed(void) {
    seen = 0;
    void *volatile p = malloc(16);
    free(p);
    return seen;
}
