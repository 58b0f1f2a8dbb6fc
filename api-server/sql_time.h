/*
 * sql_time: timestamps as the API shows them — ISO 8601 in UTC with milliseconds, the form
 * of common/clock.h ("2026-11-23T13:00:00.123Z") — formatted by PostgreSQL in the query, so
 * the answer does not depend on the session's TimeZone. NULL stays NULL.
 */
#ifndef EDGEGATE_API_SQL_TIME_H
#define EDGEGATE_API_SQL_TIME_H

#define SQL_ISO8601(col)                                                                           \
    "to_char((" col ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

#endif
