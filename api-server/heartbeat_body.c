#include "api-server/heartbeat_body.h"

#include <stdio.h>
#include <string.h>

const char *const heartbeat_pct_names[HEARTBEAT_NPCT] = {"cpu_pct", "mem_pct", "disk_pct",
                                                         "swap_pct"};

static int refuse(heartbeat_error_t *err, const char *code, const char *message)
{
    err->code = code;
    snprintf(err->message, sizeof(err->message), "%s", message);
    return -1;
}

int heartbeat_identifier_valid(const char *s, size_t len)
{
    if (len == 0 || len > HEARTBEAT_IDENTIFIER_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '@' || c == '-'))
            return 0;
    }
    return 1;
}

/* A JSON string of at most max bytes without an embedded NUL (C strings would cut it). */
static int string_ok(const json_t *v, size_t max)
{
    if (!json_is_string(v))
        return 0;
    size_t len = json_string_length(v);
    return len <= max && strlen(json_string_value(v)) == len;
}

static int version_ok(const json_t *v)
{
    if (!string_ok(v, HEARTBEAT_VERSION_MAX) || json_string_length(v) == 0)
        return 0;
    for (const char *c = json_string_value(v); *c; c++)
        if (*c < 0x20 || *c > 0x7e)
            return 0;
    return 1;
}

static int agent_ok(const json_t *item)
{
    if (json_is_string(item))
        return string_ok(item, HEARTBEAT_AGENT_STRING_MAX);
    if (!json_is_object(item) || json_object_size(item) > HEARTBEAT_AGENT_MEMBERS_MAX)
        return 0;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)item, key, v)
    {
        size_t klen = strlen(key);
        if (klen == 0 || klen > HEARTBEAT_AGENT_KEY_MAX)
            return 0;
        if (json_is_string(v) ? !string_ok(v, HEARTBEAT_AGENT_STRING_MAX)
                              : !(json_is_number(v) || json_is_boolean(v) || json_is_null(v)))
            return 0;
    }
    return 1;
}

static int agents_ok(const json_t *v)
{
    if (!json_is_array(v) || json_array_size(v) > HEARTBEAT_AGENTS_MAX)
        return 0;
    for (size_t i = 0; i < json_array_size(v); i++)
        if (!agent_ok(json_array_get(v, i)))
            return 0;
    return 1;
}

/* The member, or NULL when absent or null. */
static const json_t *member(const json_t *doc, const char *name)
{
    const json_t *v = json_object_get(doc, name);
    return v == NULL || json_is_null(v) ? NULL : v;
}

int heartbeat_parse(const json_t *doc, heartbeat_t *out, heartbeat_error_t *err)
{
    memset(out, 0, sizeof(*out));
    const json_t *id = member(doc, "identifier");
    if (id == NULL)
        return refuse(err, "MISSING_FIELD", "The field 'identifier' is required.");
    if (!string_ok(id, HEARTBEAT_IDENTIFIER_MAX) ||
        !heartbeat_identifier_valid(json_string_value(id), json_string_length(id)))
        return refuse(err, "INVALID_IDENTIFIER",
                      "The identifier must be 1 to 128 of A-Z a-z 0-9 . _ : @ -.");
    out->identifier = json_string_value(id);

    const json_t *version = member(doc, "openclaw_version");
    if (version != NULL && !version_ok(version))
        return refuse(err, "INVALID_VERSION",
                      "openclaw_version must be 1 to 64 printable ASCII characters.");
    out->openclaw_version = version ? json_string_value(version) : NULL;

    const json_t *agents = member(doc, "agents");
    if (agents == NULL)
        return refuse(err, "MISSING_FIELD", "The field 'agents' is required (it may be []).");
    if (!agents_ok(agents))
        return refuse(err, "INVALID_AGENTS",
                      "agents must be an array of at most 256 strings (up to 256 bytes) or flat "
                      "objects (up to 32 members of scalar values).");
    out->agents = agents;

    for (int i = 0; i < HEARTBEAT_NPCT; i++) {
        const json_t *v = member(doc, heartbeat_pct_names[i]);
        if (v == NULL)
            continue;
        double x = json_is_number(v) ? json_number_value(v) : -1;
        if (!(x >= 0 && x <= 100)) { /* also refuses NaN */
            err->code = "INVALID_PERCENTAGE";
            snprintf(err->message, sizeof(err->message),
                     "The field '%s' must be a number from 0 to 100.", heartbeat_pct_names[i]);
            return -1;
        }
        out->has_pct[i] = 1;
        out->pct[i] = x;
    }
    return 0;
}
