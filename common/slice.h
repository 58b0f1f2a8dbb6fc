/*
 * slice: a (pointer, length) view of bytes that came off the wire. Nothing here assumes NUL
 * termination; a slice never owns its bytes.
 */
#ifndef EDGEGATE_SLICE_H
#define EDGEGATE_SLICE_H

#include <stddef.h>
#include <string.h>
#include <strings.h>

typedef struct slice {
    const char *ptr;
    size_t len;
} slice_t;

#define SLICE_LIT(s) ((slice_t){(s), sizeof(s) - 1})
#define SLICE_NULL ((slice_t){NULL, 0})

static inline slice_t slice_from(const char *s)
{
    return (slice_t){s, s ? strlen(s) : 0};
}

static inline int slice_eq(slice_t a, const char *lit)
{
    size_t n = strlen(lit);
    return a.len == n && memcmp(a.ptr, lit, n) == 0;
}

static inline int slice_case_eq(slice_t a, const char *lit)
{
    size_t n = strlen(lit);
    return a.len == n && strncasecmp(a.ptr, lit, n) == 0;
}

/* Does the comma-separated header value contain token (case-insensitive, spaces trimmed)? */
int slice_has_token(slice_t list, const char *token);

/*
 * Percent-decodes in into out (NUL-terminated); '+' becomes a space when plus_is_space (query
 * strings). Returns the decoded length, or -1 for a bad escape, an encoded NUL, or an out
 * buffer of fewer than length + 1 bytes.
 */
long slice_percent_decode(slice_t in, int plus_is_space, char *out, size_t size);

/* Parses a whole slice as an unsigned decimal no greater than max. 0 on success, -1 otherwise. */
int slice_to_u64(slice_t s, unsigned long long max, unsigned long long *out);

#endif
