/*
 * heartbeat_body: what a monitored server reports in a heartbeat, validated.
 *
 *   {identifier, openclaw_version?, agents[], cpu_pct?, mem_pct?, disk_pct?, swap_pct?}
 *
 * identifier: 1-128 of [A-Za-z0-9._:@-] (the registered identifier; the same pattern as the
 * servers table); openclaw_version: 1-64 printable ASCII; agents: at most 256 items, each a
 * string of up to 256 bytes or an object of at most 32 members whose keys are 1-64 bytes and
 * whose values are scalars (strings up to 256 bytes); percentages: numbers from 0 to 100.
 * JSON null counts as absent; members not listed are ignored. The bounds keep one server's
 * stored state small whatever it sends. Pure: no I/O; nothing is copied (strings and the
 * agents array point into doc).
 */
#ifndef EDGEGATE_API_HEARTBEAT_BODY_H
#define EDGEGATE_API_HEARTBEAT_BODY_H

#include <jansson.h>
#include <stddef.h>

#define HEARTBEAT_IDENTIFIER_MAX 128
#define HEARTBEAT_VERSION_MAX 64
#define HEARTBEAT_AGENTS_MAX 256
#define HEARTBEAT_AGENT_MEMBERS_MAX 32
#define HEARTBEAT_AGENT_KEY_MAX 64
#define HEARTBEAT_AGENT_STRING_MAX 256

enum heartbeat_pct { HEARTBEAT_CPU, HEARTBEAT_MEM, HEARTBEAT_DISK, HEARTBEAT_SWAP, HEARTBEAT_NPCT };

/* "cpu_pct", "mem_pct", "disk_pct", "swap_pct": the members and the table's columns. */
extern const char *const heartbeat_pct_names[HEARTBEAT_NPCT];

typedef struct heartbeat {
    const char *identifier;
    const char *openclaw_version; /* NULL when absent */
    const json_t *agents;         /* a validated array */
    int has_pct[HEARTBEAT_NPCT];
    double pct[HEARTBEAT_NPCT];
} heartbeat_t;

typedef struct heartbeat_error {
    const char *code; /* MISSING_FIELD, INVALID_IDENTIFIER, INVALID_VERSION, INVALID_AGENTS,
                         INVALID_PERCENTAGE */
    char message[160];
} heartbeat_error_t;

/* 0 with out filled, or -1 with err filled (the answer is 422 with err's code). */
int heartbeat_parse(const json_t *doc, heartbeat_t *out, heartbeat_error_t *err);

/* Is [s, s+len) a server identifier? */
int heartbeat_identifier_valid(const char *s, size_t len);

#endif
