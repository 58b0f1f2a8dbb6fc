#include "api-server/row_cache.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-server/uuid_text.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/strmap.h"

/* Keys are the notification payloads themselves, so a notification names its entry. */
#define KEY_MAX (sizeof("accounts:") + UUID_TEXT_LEN + 24)

enum entry_kind { ENTRY_ACCOUNT, ENTRY_DEVICE };

typedef struct entry {
    enum entry_kind kind;
    uint64_t expires; /* loop time, ms */
    account_t account;  /* ENTRY_ACCOUNT */
    int64_t owner;      /* ENTRY_DEVICE */
} entry_t;

struct row_cache {
    uv_loop_t *loop;
    strmap_t *map;
    uint64_t generation; /* advanced by every notification and every loss of LISTEN */
    int trusted;         /* LISTEN in force: changes reach us */
    metric_t *hits[2], *misses[2], *invalidations, *trusted_gauge;
};

static void entry_free(entry_t *e)
{
    if (e->kind == ENTRY_ACCOUNT)
        account_clear(&e->account);
    free(e);
}

static void free_each(const char *key, void *value, void *arg)
{
    (void)key;
    (void)arg;
    entry_free(value);
}

static void clear_all(row_cache_t *c)
{
    strmap_each(c->map, free_each, NULL);
    strmap_free(c->map);
    c->map = strmap_new(); /* NULL on no memory: every lookup then misses, every put is dropped */
}

row_cache_t *row_cache_new(uv_loop_t *loop)
{
    row_cache_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->loop = loop;
    c->map = strmap_new();
    if (c->map == NULL) {
        free(c);
        return NULL;
    }
    static const char *const kinds[2] = {"kind=\"account\"", "kind=\"device\""};
    for (int k = 0; k < 2; k++) {
        c->hits[k] = metrics_counter("edgegate_row_cache_hits_total",
                                     "Rows answered from memory instead of PostgreSQL.", kinds[k]);
        c->misses[k] = metrics_counter("edgegate_row_cache_misses_total",
                                       "Rows read from PostgreSQL (not cached, expired or "
                                       "not trusted).",
                                       kinds[k]);
    }
    c->invalidations = metrics_counter("edgegate_row_cache_invalidations_total",
                                       "Change notifications from PostgreSQL.", NULL);
    c->trusted_gauge = metrics_gauge("edgegate_row_cache_trusted",
                                     "1 while the LISTEN connection is in force.", NULL);
    return c;
}

void row_cache_free(row_cache_t *c)
{
    if (c == NULL)
        return;
    if (c->map != NULL)
        clear_all(c);
    strmap_free(c->map);
    free(c);
}

void row_cache_on_listen(void *cache, enum pgpool_listen_event event, const char *payload)
{
    row_cache_t *c = cache;
    c->generation++;
    switch (event) {
    case PGPOOL_LISTEN_READY:
        /* Changes made while we were not listening were missed: start from nothing. */
        clear_all(c);
        c->trusted = 1;
        log_info("row_cache.trusted", "channel=%s", ROW_CACHE_CHANNEL);
        break;
    case PGPOOL_LISTEN_LOST:
        clear_all(c);
        c->trusted = 0;
        log_warn("row_cache.untrusted", "reason=\"LISTEN connection lost\" note=\"every request "
                                        "reads PostgreSQL until it is back\"");
        break;
    case PGPOOL_LISTEN_NOTIFY:
        metric_inc(c->invalidations);
        if (strcmp(payload, "*") == 0) {
            clear_all(c);
        } else if (c->map != NULL) {
            entry_t *e = strmap_del(c->map, payload);
            if (e != NULL)
                entry_free(e);
        }
        break;
    }
    metric_set(c->trusted_gauge, c->trusted);
}

uint64_t row_cache_ticket(const row_cache_t *c)
{
    return c != NULL ? c->generation : 0;
}

/* The live entry of that kind under key, or NULL (an expired one is dropped on the way). */
static entry_t *lookup(row_cache_t *c, const char *key, enum entry_kind kind)
{
    if (c == NULL)
        return NULL;
    entry_t *e = c->trusted && c->map != NULL ? strmap_get(c->map, key) : NULL;
    if (e != NULL && (e->kind != kind || e->expires <= uv_now(c->loop))) {
        entry_free(strmap_del(c->map, key));
        e = NULL;
    }
    metric_inc(e != NULL ? c->hits[kind] : c->misses[kind]);
    return e;
}

/* Takes e into the map, or frees it when it may not be kept. */
static void store(row_cache_t *c, uint64_t ticket, const char *key, entry_t *e)
{
    if (c == NULL || !c->trusted || ticket != c->generation || c->map == NULL) {
        entry_free(e);
        return;
    }
    if (strmap_count(c->map) >= ROW_CACHE_MAX_ENTRIES) {
        clear_all(c);
        if (c->map == NULL) {
            entry_free(e);
            return;
        }
    }
    e->expires = uv_now(c->loop) + ROW_CACHE_TTL_MS;
    int err = 0;
    entry_t *old = strmap_put(c->map, key, e, &err);
    if (err) {
        entry_free(e);
        return;
    }
    if (old != NULL)
        entry_free(old);
}

static void account_key(int64_t id, char key[KEY_MAX])
{
    snprintf(key, KEY_MAX, "accounts:%" PRId64, id);
}

int row_cache_get_account(row_cache_t *c, int64_t id, account_t *out)
{
    char key[KEY_MAX];
    account_key(id, key);
    entry_t *e = lookup(c, key, ENTRY_ACCOUNT);
    return e != NULL && account_copy(out, &e->account) == 0;
}

void row_cache_put_account(row_cache_t *c, uint64_t ticket, const account_t *a)
{
    if (c == NULL)
        return;
    entry_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return;
    e->kind = ENTRY_ACCOUNT;
    if (account_copy(&e->account, a) < 0) {
        free(e);
        return;
    }
    char key[KEY_MAX];
    account_key(a->id, key);
    store(c, ticket, key, e);
}

static int device_key(const char *device_id, char key[KEY_MAX])
{
    return snprintf(key, KEY_MAX, "devices:%s", device_id) < (int)KEY_MAX ? 0 : -1;
}

int row_cache_get_device_owner(row_cache_t *c, const char *device_id, int64_t *owner)
{
    char key[KEY_MAX];
    if (device_key(device_id, key) < 0)
        return 0;
    entry_t *e = lookup(c, key, ENTRY_DEVICE);
    if (e == NULL)
        return 0;
    *owner = e->owner;
    return 1;
}

void row_cache_put_device_owner(row_cache_t *c, uint64_t ticket, const char *device_id,
                                int64_t owner)
{
    char key[KEY_MAX];
    if (c == NULL || device_key(device_id, key) < 0)
        return;
    entry_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return;
    e->kind = ENTRY_DEVICE;
    e->owner = owner;
    store(c, ticket, key, e);
}
