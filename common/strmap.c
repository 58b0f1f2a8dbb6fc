#include "common/strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    void *value;
    char key[];
} entry_t;

struct strmap {
    entry_t **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
};

/* FNV-1a: keys are ids we or our own daemons made, so a keyed hash buys nothing here. */
static uint64_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

strmap_t *strmap_new(void)
{
    strmap_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->nbuckets = 64;
    m->buckets = calloc(m->nbuckets, sizeof(entry_t *));
    if (m->buckets == NULL) {
        free(m);
        return NULL;
    }
    return m;
}

void strmap_free(strmap_t *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        entry_t *e = m->buckets[i];
        while (e != NULL) {
            entry_t *next = e->next;
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    free(m);
}

static void grow(strmap_t *m)
{
    size_t n = m->nbuckets * 2;
    entry_t **b = calloc(n, sizeof(entry_t *));
    if (b == NULL)
        return; /* stay at the current size: slower, still correct */
    for (size_t i = 0; i < m->nbuckets; i++) {
        entry_t *e = m->buckets[i];
        while (e != NULL) {
            entry_t *next = e->next;
            size_t j = e->hash & (n - 1);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

void *strmap_put(strmap_t *m, const char *key, void *value, int *err)
{
    uint64_t h = hash_key(key);
    entry_t **slot = &m->buckets[h & (m->nbuckets - 1)];
    for (entry_t *e = *slot; e != NULL; e = e->next) {
        if (e->hash == h && strcmp(e->key, key) == 0) {
            void *old = e->value;
            e->value = value;
            return old;
        }
    }
    size_t klen = strlen(key);
    entry_t *e = malloc(sizeof(entry_t) + klen + 1);
    if (e == NULL) {
        if (err)
            *err = -1;
        return NULL;
    }
    memcpy(e->key, key, klen + 1);
    e->hash = h;
    e->value = value;
    e->next = *slot;
    *slot = e;
    if (++m->count > m->nbuckets)
        grow(m);
    return NULL;
}

void *strmap_get(const strmap_t *m, const char *key)
{
    uint64_t h = hash_key(key);
    for (entry_t *e = m->buckets[h & (m->nbuckets - 1)]; e != NULL; e = e->next) {
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e->value;
    }
    return NULL;
}

void *strmap_del(strmap_t *m, const char *key)
{
    uint64_t h = hash_key(key);
    for (entry_t **pe = &m->buckets[h & (m->nbuckets - 1)]; *pe != NULL; pe = &(*pe)->next) {
        entry_t *e = *pe;
        if (e->hash == h && strcmp(e->key, key) == 0) {
            void *v = e->value;
            *pe = e->next;
            free(e);
            m->count--;
            return v;
        }
    }
    return NULL;
}

size_t strmap_count(const strmap_t *m)
{
    return m->count;
}

void strmap_each(const strmap_t *m, void (*fn)(const char *, void *, void *), void *arg)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        for (entry_t *e = m->buckets[i]; e != NULL; e = e->next)
            fn(e->key, e->value, arg);
    }
}
