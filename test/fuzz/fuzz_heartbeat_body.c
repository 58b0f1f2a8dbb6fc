/*
 * libFuzzer target for what a monitored server sends, validated by heartbeat_parse(). Two
 * modes, by the low bit of byte 0:
 *   raw       the rest is the body as api-server reads it (jansson with duplicate members
 *             refused, as http_body_json_or_reply does);
 *   template  a document built from the input: random bytes are almost never a JSON object
 *             with the right members, so the input supplies their values instead — the
 *             identifier and version as strings (NULs included), the percentages as numbers
 *             (byte pairs, some out of range, some of the wrong type), and the agents as a
 *             list of strings and flat or nested objects.
 *
 * Invariants checked on acceptance: the identifier passes the identifier rule, agents is an
 * array within its bound, every percentage present is within 0..100, the version is
 * printable; on refusal an error code and a message are set.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-server/heartbeat_body.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            abort();                                                                               \
    } while (0)

/* The next n bytes of the input (fewer at its end). */
static json_t *take_string(const uint8_t **p, const uint8_t *end, size_t n)
{
    size_t left = (size_t)(end - *p);
    if (n > left)
        n = left;
    json_t *s = json_stringn_nocheck((const char *)*p, n);
    *p += n;
    return s;
}

static json_t *take_number(const uint8_t **p, const uint8_t *end)
{
    if (end - *p < 2)
        return NULL;
    unsigned kind = (*p)[0] % 4, v = (*p)[1];
    *p += 2;
    switch (kind) {
    case 0:
        return json_integer((json_int_t)v - 20); /* -20 .. 235 */
    case 1:
        return json_real((double)v / 2.0);
    case 2:
        return json_null();
    default:
        return json_string("50");
    }
}

static json_t *template_doc(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    json_t *doc = json_object();
    if (p < end)
        json_object_set_new(doc, "identifier", take_string(&p, end, *p++ % 140));
    if (p < end && (*p & 1))
        json_object_set_new(doc, "openclaw_version", take_string(&p, end, *p++ / 2 % 70));
    else if (p < end)
        p++;
    for (int i = 0; i < HEARTBEAT_NPCT; i++) {
        json_t *v = take_number(&p, end);
        if (v != NULL)
            json_object_set_new(doc, heartbeat_pct_names[i], v);
    }
    json_t *agents = json_array();
    while (p < end) {
        uint8_t kind = *p++;
        if (kind % 3 == 0) { /* a string */
            json_array_append_new(agents, take_string(&p, end, kind));
        } else { /* an object of a few members, nested when kind says so */
            json_t *obj = json_object();
            for (int m = 0; m < kind % 40 && p < end; m++) {
                char key[8];
                snprintf(key, sizeof(key), "k%d", m);
                json_t *v = kind % 3 == 2 && m == 0 ? json_array() : take_number(&p, end);
                json_object_set_new(obj, key, v ? v : json_true());
            }
            json_array_append_new(agents, obj);
        }
        if (json_array_size(agents) > HEARTBEAT_AGENTS_MAX + 2)
            break;
    }
    json_object_set_new(doc, "agents", agents);
    return doc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    json_t *doc = data[0] & 1
                      ? template_doc(data + 1, size - 1)
                      : json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, NULL);
    if (doc == NULL)
        return 0;
    if (json_is_object(doc)) {
        heartbeat_t hb;
        heartbeat_error_t err = {0};
        if (heartbeat_parse(doc, &hb, &err) == 0) {
            CHECK(heartbeat_identifier_valid(hb.identifier, strlen(hb.identifier)));
            CHECK(json_is_array(hb.agents) && json_array_size(hb.agents) <= HEARTBEAT_AGENTS_MAX);
            for (int i = 0; i < HEARTBEAT_NPCT; i++)
                CHECK(!hb.has_pct[i] || (hb.pct[i] >= 0 && hb.pct[i] <= 100));
            if (hb.openclaw_version != NULL) {
                size_t n = strlen(hb.openclaw_version);
                CHECK(n >= 1 && n <= HEARTBEAT_VERSION_MAX);
                for (size_t i = 0; i < n; i++)
                    CHECK(hb.openclaw_version[i] >= 0x20 && hb.openclaw_version[i] <= 0x7e);
            }
        } else {
            CHECK(err.code != NULL && err.message[0] != '\0');
        }
    }
    json_decref(doc);
    return 0;
}
