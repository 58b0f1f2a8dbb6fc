/*
 * sync_credentials: `api-server sync-credentials`, for when Redis lost its data. Writes
 * tunnel:cred:<hash> {device_id, user_id} for every device that is not revoked, from
 * PostgreSQL (devices.token_hash). It only writes those keys: nothing is deleted, sessions and
 * routes are left alone, and running it twice is harmless. Prints how many it wrote.
 *
 * Reads EDGEGATE_DATABASE_URL and EDGEGATE_REDIS_URL only. Returns the exit status: 0, 1 when
 * a store failed (the count so far is printed), 2 for bad configuration.
 */
#ifndef EDGEGATE_API_SYNC_CREDENTIALS_H
#define EDGEGATE_API_SYNC_CREDENTIALS_H

int api_sync_credentials(const char *database_url, const char *redis_url);

#endif
