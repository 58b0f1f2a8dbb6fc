#include "common/recycle.h"

#include <stdlib.h>

void *recycle_alloc(recycle_t *r)
{
    return r->n > 0 ? r->blocks[--r->n] : malloc(r->size);
}

void recycle_free(recycle_t *r, void *p)
{
    if (p == NULL)
        return;
    if (r->n < RECYCLE_MAX)
        r->blocks[r->n++] = p;
    else
        free(p);
}

void recycle_clear(recycle_t *r)
{
    while (r->n > 0)
        free(r->blocks[--r->n]);
}
