/*
 * buf: a growable byte buffer with a hard cap. Appends that would exceed the cap fail with
 * -ENOBUFS and leave the buffer unchanged, so a caller can never grow one without bound.
 * The buffer owns its bytes; buf_free() releases them. data is NUL-terminated after every
 * successful append (the NUL is not counted in len) so text can be handed to C APIs.
 */
#ifndef EDGEGATE_BUF_H
#define EDGEGATE_BUF_H

#include <stddef.h>

#include "common/log.h" /* LOG_PRINTF */

typedef struct buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max; /* 0: no cap beyond memory (only for data we produce ourselves) */
} buf_t;

#define BUF_INIT(max_bytes) ((buf_t){NULL, 0, 0, (max_bytes)})

int buf_reserve(buf_t *b, size_t extra);
int buf_append(buf_t *b, const void *data, size_t len);
int buf_append_str(buf_t *b, const char *s);
int buf_printf(buf_t *b, const char *fmt, ...) LOG_PRINTF(2, 3);
void buf_reset(buf_t *b); /* len = 0, memory kept */
void buf_free(buf_t *b);

#endif
