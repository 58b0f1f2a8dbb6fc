/*
 * clock: wall-clock time for timestamps people read (API fields, events). Durations and
 * timeouts use the loop's monotonic clock (uv_now / uv_hrtime), never this.
 */
#ifndef EDGEGATE_CLOCK_H
#define EDGEGATE_CLOCK_H

#include <stdint.h>

#define CLOCK_ISO8601_LEN 32

int64_t clock_unix_ms(void);
/* "2026-11-23T13:00:00.123Z" (UTC, milliseconds). */
void clock_iso8601(int64_t unix_ms, char out[CLOCK_ISO8601_LEN]);

#endif
