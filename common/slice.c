#include "common/slice.h"

int slice_has_token(slice_t list, const char *token)
{
    size_t i = 0;
    while (i < list.len) {
        while (i < list.len && (list.ptr[i] == ' ' || list.ptr[i] == '\t' || list.ptr[i] == ','))
            i++;
        size_t start = i;
        while (i < list.len && list.ptr[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (list.ptr[end - 1] == ' ' || list.ptr[end - 1] == '\t'))
            end--;
        if (slice_case_eq((slice_t){list.ptr + start, end - start}, token))
            return 1;
    }
    return 0;
}

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

long slice_percent_decode(slice_t in, int plus_is_space, char *out, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < in.len; i++) {
        char ch = in.ptr[i];
        if (ch == '%') {
            int hi = i + 2 < in.len ? hex_digit(in.ptr[i + 1]) : -1;
            int lo = hi >= 0 ? hex_digit(in.ptr[i + 2]) : -1;
            if (lo < 0)
                return -1;
            ch = (char)(hi << 4 | lo);
            i += 2;
        } else if (ch == '+' && plus_is_space) {
            ch = ' ';
        }
        if (ch == '\0' || o + 1 >= size)
            return -1;
        out[o++] = ch;
    }
    if (size == 0)
        return -1;
    out[o] = '\0';
    return (long)o;
}

int slice_to_u64(slice_t s, unsigned long long max, unsigned long long *out)
{
    if (s.len == 0 || s.len > 20)
        return -1;
    unsigned long long v = 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c < '0' || c > '9')
            return -1;
        unsigned d = c - '0';
        if (v > max / 10 || (v == max / 10 && d > max % 10))
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}
