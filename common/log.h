/*
 * log: one line per event on stderr, key=value, with an ISO-8601 UTC timestamp.
 *
 *   ts=2026-11-23T13:00:00.123Z level=info comp=api-server event=http.listen addr=0.0.0.0:3721
 *
 * The caller supplies the event name and the rest of the line as printf-style key=value pairs.
 * Values that come off the network must go through log_quote() so that a hostile path or header
 * cannot forge a second line. Secrets are never logged; tokens only as log_token_prefix().
 * Not thread-safe by design: only the loop thread logs (work-queue jobs report back to it).
 */
#ifndef EDGEGATE_LOG_H
#define EDGEGATE_LOG_H

#include <stddef.h>

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/* printf format checking where the compiler offers it; nothing else depends on it. */
#if defined(__GNUC__) || defined(__clang__)
#define LOG_PRINTF(fmt_idx, args_idx) __attribute__((format(printf, fmt_idx, args_idx)))
#else
#define LOG_PRINTF(fmt_idx, args_idx)
#endif

void log_init(const char *component, enum log_level min_level);
/* Parses debug|info|warn|error; returns 0, or -1 when the name is unknown. */
int log_parse_level(const char *name, enum log_level *out);
int log_enabled(enum log_level level);

void log_write(enum log_level level, const char *event, const char *fmt, ...) LOG_PRINTF(3, 4);

#define log_debug(event, ...) log_write(LOG_LEVEL_DEBUG, event, __VA_ARGS__)
#define log_info(event, ...) log_write(LOG_LEVEL_INFO, event, __VA_ARGS__)
#define log_warn(event, ...) log_write(LOG_LEVEL_WARN, event, __VA_ARGS__)
#define log_error(event, ...) log_write(LOG_LEVEL_ERROR, event, __VA_ARGS__)

/*
 * Writes ptr[0..len) into out as a double-quoted value, escaping quotes, backslashes and
 * control bytes, truncated (with "...") to fit out_size. Returns out.
 */
const char *log_quote(char *out, size_t out_size, const char *ptr, size_t len);

/* The first 8 characters of a token followed by "..." (or "-" when empty), for correlation. */
const char *log_token_prefix(char out[16], const char *token, size_t len);

#endif
