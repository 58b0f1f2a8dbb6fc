#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *log_component = "edgegate";
static enum log_level log_min = LOG_LEVEL_INFO;
static const char *const log_level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *component, enum log_level min_level)
{
    log_component = component;
    log_min = min_level;
    /* Line-buffered so lines from two daemons sharing a terminal do not interleave mid-line. */
    setvbuf(stderr, NULL, _IOLBF, 0);
}

int log_parse_level(const char *name, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(log_level_names) / sizeof(log_level_names[0]); i++) {
        if (strcmp(name, log_level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

int log_enabled(enum log_level level)
{
    return level >= log_min;
}

void log_write(enum log_level level, const char *event, const char *fmt, ...)
{
    if (level < log_min)
        return;
    struct timespec ts;
    struct tm tm;
    char line[2048];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line),
                     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s comp=%s event=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000L, log_level_names[level], log_component,
                     event);
    if (n < 0)
        return;
    if (fmt != NULL && fmt[0] != '\0' && (size_t)n < sizeof(line) - 2) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
        va_end(ap);
        if (m > 0)
            n += m;
    }
    if ((size_t)n >= sizeof(line) - 1)
        n = (int)sizeof(line) - 2; /* truncated: still one line */
    line[n++] = '\n';
    fwrite(line, 1, (size_t)n, stderr);
}

const char *log_quote(char *out, size_t out_size, const char *ptr, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (out_size < 8) {
        if (out_size > 0)
            out[0] = '\0';
        return out;
    }
    out[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)ptr[i];
        size_t need = (c == '"' || c == '\\') ? 2 : (c < 0x20 || c == 0x7f) ? 4 : 1;
        /* This character, then either the closing quote and NUL (last one) or room for
         * "..." after it in case the next one does not fit. */
        size_t reserve = i + 1 == len ? 2 : 5;
        if (o + need + reserve > out_size) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

const char *log_token_prefix(char out[16], const char *token, size_t len)
{
    if (len == 0) {
        strcpy(out, "-");
        return out;
    }
    size_t keep = len < 8 ? len / 2 : 8; /* a short token shows less of itself */
    for (size_t i = 0; i < keep; i++) {
        unsigned char c = (unsigned char)token[i];
        out[i] = (c > 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char)c : '?';
    }
    strcpy(out + keep, "...");
    return out;
}
