/*
 * recycle: a bounded bin of freed blocks of one size, for buffers that a hot path allocates and
 * frees every request (a link's write stage, an HTTP client's head arena). Taking a block from
 * the bin instead of malloc, and giving it back instead of free, keeps those paths off the
 * allocator: at tens of thousands of requests a second, a malloc and a free of 16 KiB each time,
 * with glibc trimming the heap top on the frees, cost ~10% of a daemon's CPU.
 *
 * At most RECYCLE_MAX blocks are kept per bin; beyond that blocks are freed. Blocks come back
 * uninitialised. One loop, one thread (bins are process-wide statics of their module).
 */
#ifndef EDGEGATE_RECYCLE_H
#define EDGEGATE_RECYCLE_H

#include <stddef.h>

#define RECYCLE_MAX 64

typedef struct recycle {
    size_t size;
    unsigned n;
    void *blocks[RECYCLE_MAX];
} recycle_t;

#define RECYCLE_INIT(block_size) {(block_size), 0, {0}}

/* A block of r->size bytes, or NULL when memory runs out. */
void *recycle_alloc(recycle_t *r);
/* Gives p (from recycle_alloc, or NULL) back. */
void recycle_free(recycle_t *r, void *p);
/* Frees what the bin holds (at shutdown, so leak checkers see nothing). */
void recycle_clear(recycle_t *r);

#endif
