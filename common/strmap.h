/*
 * strmap: string keys to pointers, a chained hash table that grows with its contents.
 * Keys are copied; values are borrowed. Lookups are O(1) on average, so a proxy holding
 * 10,000 tunnels finds one without a scan. Not ordered; iteration order is unspecified and
 * the map must not change during strmap_each.
 */
#ifndef EDGEGATE_STRMAP_H
#define EDGEGATE_STRMAP_H

#include <stddef.h>

typedef struct strmap strmap_t;

strmap_t *strmap_new(void);
void strmap_free(strmap_t *m); /* values are not freed */
/* Sets key to value; returns the previous value (NULL if none), or sets *err on no memory. */
void *strmap_put(strmap_t *m, const char *key, void *value, int *err);
void *strmap_get(const strmap_t *m, const char *key);
/* Removes key; returns its value or NULL. */
void *strmap_del(strmap_t *m, const char *key);
size_t strmap_count(const strmap_t *m);
/* Calls fn for every entry. */
void strmap_each(const strmap_t *m, void (*fn)(const char *key, void *value, void *arg), void *arg);

#endif
