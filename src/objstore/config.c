/*
 * config.c: echo.* -> objstore_options (see config.h).
 */
#include "objstore/config.h"

#include <string.h>

void objstore_options_from_config(const ogd_config *cfg, objstore_options *out)
{
    const ogd_echo_config *e = &cfg->echo;
    memset(out, 0, sizeof(*out));
    out->cache_max_entries = (size_t)e->cache_maxsize;
    out->cache_max_bytes = (size_t)e->cache_max_bytes;
    out->bucket = e->bucket_name;
    out->access_key = e->access_key;
    out->secret_key = e->secret_key;
    out->region = e->region;
    out->max_connections = (unsigned)e->max_connections;
    out->max_per_owner = (unsigned)e->max_in_flight_per_request;
    out->request_timeout_ms = (unsigned)e->request_timeout * 1000u;
    out->max_read_wait_ms = (unsigned)e->max_read_wait * 1000u;
    out->max_retries = (unsigned)e->max_retries;
    out->multipart_threshold = (size_t)e->multipart_threshold;
    out->create_bucket = e->create_bucket;
    /* The reference puts its lifecycle rule only when backups are configured. */
    out->expiry_days = cfg->backup.present ? e->expiry_days : 0;
}
