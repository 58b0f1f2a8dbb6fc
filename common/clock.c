#include "common/clock.h"

#include <stdio.h>
#include <time.h>

int64_t clock_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void clock_iso8601(int64_t unix_ms, char out[CLOCK_ISO8601_LEN])
{
    time_t sec = (time_t)(unix_ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t n = strftime(out, CLOCK_ISO8601_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, CLOCK_ISO8601_LEN - n, ".%03dZ", (int)(unix_ms % 1000));
}
