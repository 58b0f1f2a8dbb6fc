/*
 * ops: the operational endpoints both daemons serve.
 *   GET /healthz  the process is alive (no credentials: probes)
 *   GET /metrics  Prometheus text; needs Authorization: Bearer <EDGEGATE_INTERNAL_TOKEN>
 * /readyz depends on each daemon's dependencies and lives with the daemon.
 */
#ifndef EDGEGATE_OPS_H
#define EDGEGATE_OPS_H

#include "common/http_server.h"

/* The shared secret of the internal API; the string must outlive every request. */
void ops_set_internal_token(const char *token);
/* Does the request carry the internal token (constant-time comparison)? */
int ops_has_internal_token(const http_request_t *req);

void ops_healthz(http_request_t *req);
void ops_metrics(http_request_t *req);

#endif
