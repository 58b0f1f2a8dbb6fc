#include "common/http_router.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define ROUTER_MAX_SEGMENTS 16

enum seg_kind { SEG_LITERAL, SEG_PARAM, SEG_REST };

typedef struct segment {
    enum seg_kind kind;
    slice_t text; /* literal text, or the parameter name */
} segment_t;

typedef struct entry {
    const char *method;
    const void *route;
    unsigned nseg;
    segment_t seg[ROUTER_MAX_SEGMENTS];
} entry_t;

struct http_router {
    entry_t *entries;
    size_t n, cap;
};

http_router_t *http_router_new(void)
{
    return calloc(1, sizeof(http_router_t));
}

void http_router_free(http_router_t *router)
{
    if (router == NULL)
        return;
    free(router->entries);
    free(router);
}

/* Parameter names: lower-case letters, digits and underscores. */
static int name_ok(slice_t n)
{
    if (n.len == 0)
        return 0;
    for (size_t i = 0; i < n.len; i++) {
        char ch = n.ptr[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'))
            return 0;
    }
    return 1;
}

static int compile(entry_t *e, const char *pattern)
{
    if (pattern[0] != '/')
        return -1;
    unsigned nparams = 0;
    const char *p = pattern + 1;
    e->nseg = 0;
    if (*p == '\0') { /* "/" itself: one empty segment */
        e->seg[e->nseg++] = (segment_t){SEG_LITERAL, (slice_t){p, 0}};
        return 0;
    }
    while (*p != '\0') {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (e->nseg == ROUTER_MAX_SEGMENTS)
            return -1;
        segment_t *s = &e->seg[e->nseg++];
        if (len >= 2 && p[0] == '{' && p[len - 1] == '}') {
            s->text = (slice_t){p + 1, len - 2};
            s->kind = SEG_PARAM;
            if (s->text.len > 3 && memcmp(s->text.ptr + s->text.len - 3, "...", 3) == 0) {
                s->text.len -= 3;
                s->kind = SEG_REST;
                if (end != NULL)
                    return -1; /* a rest parameter must be last */
            }
            if (!name_ok(s->text) || ++nparams > HTTP_MAX_PARAMS)
                return -1;
        } else {
            /* Braces anywhere else are a typo in the table, not a literal path. */
            if (memchr(p, '{', len) != NULL || memchr(p, '}', len) != NULL)
                return -1;
            s->kind = SEG_LITERAL;
            s->text = (slice_t){p, len};
        }
        if (end == NULL)
            break;
        p = end + 1;
        if (*p == '\0') { /* trailing slash: an empty final literal */
            if (e->nseg == ROUTER_MAX_SEGMENTS)
                return -1;
            e->seg[e->nseg++] = (segment_t){SEG_LITERAL, (slice_t){p, 0}};
        }
    }
    return 0;
}

int http_router_add(http_router_t *router, const char *method, const char *pattern,
                    const void *route)
{
    if (router->n == router->cap) {
        size_t cap = router->cap ? router->cap * 2 : 32;
        entry_t *grown = realloc(router->entries, cap * sizeof(entry_t));
        if (grown == NULL)
            return -1;
        router->entries = grown;
        router->cap = cap;
    }
    entry_t *e = &router->entries[router->n];
    memset(e, 0, sizeof(*e));
    e->method = method;
    e->route = route;
    if (compile(e, pattern) < 0)
        return -1;
    router->n++;
    return 0;
}

static int path_matches(const entry_t *e, slice_t path, http_params_t *params)
{
    if (path.len == 0 || path.ptr[0] != '/')
        return 0;
    size_t pos = 1;
    params->n = 0;
    for (unsigned i = 0; i < e->nseg; i++) {
        const segment_t *s = &e->seg[i];
        if (s->kind == SEG_REST) {
            if (params->n == HTTP_MAX_PARAMS)
                return 0;
            params->names[params->n] = s->text;
            params->values[params->n++] = (slice_t){path.ptr + pos, path.len - pos};
            return 1;
        }
        if (pos > path.len)
            return 0;
        const char *start = path.ptr + pos;
        const char *slash = memchr(start, '/', path.len - pos);
        size_t len = slash ? (size_t)(slash - start) : path.len - pos;
        slice_t seg = {start, len};
        if (s->kind == SEG_LITERAL) {
            if (seg.len != s->text.len || memcmp(seg.ptr, s->text.ptr, seg.len) != 0)
                return 0;
        } else {
            if (seg.len == 0 || params->n == HTTP_MAX_PARAMS)
                return 0;
            params->names[params->n] = s->text;
            params->values[params->n++] = seg;
        }
        pos += len + 1; /* past the segment and its slash (or past the end) */
        /* `/a/{rest...}` also matches `/a`: the rest is then empty. */
        if (pos > path.len && i + 2 == e->nseg && e->seg[i + 1].kind == SEG_REST) {
            if (params->n == HTTP_MAX_PARAMS)
                return 0;
            params->names[params->n] = e->seg[i + 1].text;
            params->values[params->n++] = (slice_t){path.ptr + path.len, 0};
            return 1;
        }
    }
    return pos == path.len + 1;
}

static void allow_append(char *allow, size_t size, const char *method)
{
    size_t used = strlen(allow);
    if (strstr(allow, method) != NULL) /* methods are few and distinct: good enough */
        return;
    snprintf(allow + used, size - used, "%s%s", used ? ", " : "", method);
}

enum http_route_result http_router_match(const http_router_t *router, slice_t method,
                                         slice_t path, const void **route,
                                         http_params_t *params, char *allow, size_t allow_size)
{
    int path_seen = 0;
    if (allow_size > 0)
        allow[0] = '\0';
    for (size_t i = 0; i < router->n; i++) {
        const entry_t *e = &router->entries[i];
        http_params_t found;
        if (!path_matches(e, path, &found))
            continue;
        if (strcmp(e->method, "*") == 0 || slice_eq(method, e->method)) {
            *route = e->route;
            *params = found;
            return HTTP_ROUTE_FOUND;
        }
        path_seen = 1;
        if (allow_size > 0)
            allow_append(allow, allow_size, e->method);
    }
    return path_seen ? HTTP_ROUTE_BAD_METHOD : HTTP_ROUTE_NOT_FOUND;
}

slice_t http_params_get(const http_params_t *params, const char *name)
{
    for (unsigned i = 0; i < params->n; i++) {
        if (slice_eq(params->names[i], name))
            return params->values[i];
    }
    return SLICE_NULL;
}
