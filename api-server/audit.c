#include "api-server/audit.h"

#include <inttypes.h>
#include <stdlib.h>

#include "api-server/db.h"
#include "api-server/request.h"
#include "common/log.h"

void api_audit(http_request_t *req, const char *event, const char *outcome, int64_t account_id,
               json_t *detail)
{
    const api_principal_t *p = api_principal(req);
    int64_t actor = p != NULL && p->account.id != account_id ? p->account.id : 0;
    char *detail_text = detail != NULL ? json_dumps(detail, JSON_COMPACT) : NULL;
    json_decref(detail);
    log_info("audit", "event=%s outcome=%s account=%" PRId64 " actor=%" PRId64 " remote=%s req=%s",
             event, outcome, account_id, actor, http_request_remote_addr(req),
             http_request_id(req));
    char acc[24], act[24];
    const char *values[7] = {
        account_id ? api_i64(account_id, acc) : NULL,
        actor ? api_i64(actor, act) : NULL,
        event,
        outcome,
        http_request_remote_addr(req),
        http_request_id(req),
        detail_text ? detail_text : "{}",
    };
    api_db_background(api_app(req), "audit",
                      "INSERT INTO audit_log (account_id, actor_id, event, outcome, remote_addr,"
                      " request_id, detail) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)",
                      7, values);
    free(detail_text);
}
