/*
 * routes.c: the route table. Order matters where patterns overlap: fixed paths come
 * before the templates that would also match them (docs/api.md §2.1). The last field
 * marks the expensive routes that pass the fairness gate (src/http/gate.h): queries that
 * build whole record pages, and renders. /export is not among them: it is long but mostly
 * waits on the object store, and bounds itself (export.max_concurrency, max_buffer_bytes).
 */
#include "api/api.h"
#include "api/handlers.h"

const http_route api_routes[] = {
    {OGD_GET, "/records", api_records_list, AUTH_TOKEN, NULL, 0, NULL, true},
    {OGD_GET, "/records/count", api_records_count, AUTH_TOKEN, NULL, 0, NULL, true},
    {OGD_GET, "/records/range_converter", api_records_range, AUTH_TOKEN, NULL, 0, NULL, false},
    {OGD_GET, "/records/{id_}", api_records_get, AUTH_TOKEN, NULL, 0, NULL, true},
    {OGD_DELETE, "/records/{id_}", api_records_delete, AUTH_PERMISSION, "/records/{id_} DELETE", 0,
     NULL, false},
    {OGD_GET, "/channels", api_channels_manifest, AUTH_TOKEN, NULL, 0, NULL, false},
    {OGD_GET, "/channels/summary/{channel_name}", api_channels_summary, AUTH_TOKEN, NULL, 0, NULL,
     true},
    {OGD_GET, "/channels/{channel_system_name}", api_channels_get, AUTH_TOKEN, NULL, 0, NULL,
     false},
    {OGD_POST, "/submit/hdf", api_submit_hdf, AUTH_PERMISSION, "/submit/hdf POST", HTTP_BODY_UPLOAD,
     NULL, false},
    {OGD_POST, "/submit/manifest", api_submit_manifest, AUTH_PERMISSION, "/submit/manifest POST",
     HTTP_BODY_UPLOAD, NULL, false},
    {OGD_GET, "/images/colour_bar", api_images_colour_bar, AUTH_TOKEN, NULL, 0, NULL, false},
    {OGD_GET, "/images/colourmap_names", api_images_colourmap_names, AUTH_TOKEN, NULL, 0, NULL,
     false},
    {OGD_GET, "/images/float/{record_id}/{channel_name}", api_images_float, AUTH_TOKEN, NULL, 0,
     NULL, true},
    {OGD_GET, "/images/{record_id}/{channel_name}", api_images_get, AUTH_TOKEN, NULL, 0, NULL,
     true},
    {OGD_GET, "/images/{record_id}/{channel_name}/crosshair", api_images_crosshair, AUTH_TOKEN,
     NULL, 0, NULL, true},
    {OGD_GET, "/waveforms/{record_id}/{channel_name}", api_waveforms_get, AUTH_TOKEN, NULL, 0, NULL,
     true},
    {OGD_GET, "/vectors/{record_id}/{channel_name}", api_vectors_get, AUTH_TOKEN, NULL, 0, NULL,
     true},
    {OGD_GET, "/export", api_export, AUTH_TOKEN, NULL, 0, NULL, false},
    {OGD_GET, "/functions/tokens", api_functions_tokens, AUTH_TOKEN, NULL, 0, NULL, false},
    {OGD_POST, "/functions/validate", api_functions_validate, AUTH_TOKEN, NULL, 256 * 1024, NULL,
     false},
    {OGD_POST, "/login", api_login, AUTH_NONE, NULL, 0, NULL, false},
    {OGD_POST, "/verify", api_verify, AUTH_NONE, NULL, 0, NULL, false},
    {OGD_POST, "/refresh", api_refresh, AUTH_NONE, NULL, 0, NULL, false},
    /* the bearer of /oidc_login is the provider's id_token, checked by the handler */
    {OGD_POST, "/oidc_login/{provider_id}", api_oidc_login, AUTH_NONE, NULL, 0, NULL, false},
    {OGD_GET, "/oidc_providers", api_oidc_providers, AUTH_NONE, NULL, 0, NULL, false},
    {OGD_POST, "/users", api_users_create, AUTH_PERMISSION, "/users POST", 0, NULL, false},
    {OGD_PATCH, "/users", api_users_update, AUTH_PERMISSION, "/users PATCH", 0, NULL, false},
    {OGD_GET, "/users", api_users_list, AUTH_PERMISSION, "/users GET", 0, NULL, false},
    {OGD_GET, "/users/filters", api_filters_list, AUTH_TOKEN, NULL, 0, NULL, false},
    {OGD_GET, "/users/filters/{_id}", api_filters_get, AUTH_TOKEN, NULL, 0, NULL, false},
    {OGD_POST, "/users/filters", api_filters_create, AUTH_TOKEN, NULL, 0, NULL, false},
    {OGD_PATCH, "/users/filters/{_id}", api_filters_update, AUTH_TOKEN, NULL, 0, NULL, false},
    {OGD_DELETE, "/users/filters/{_id}", api_filters_delete, AUTH_TOKEN, NULL, 0, NULL, false},
    {OGD_GET, "/users/preferences/{name}", api_prefs_get, AUTH_TOKEN, NULL, 0, NULL, false},
    {OGD_DELETE, "/users/preferences/{name}", api_prefs_delete, AUTH_TOKEN, NULL, 0, NULL, false},
    {OGD_POST, "/users/preferences", api_prefs_set, AUTH_TOKEN, NULL, 0, NULL, false},
    {OGD_DELETE, "/users/{id_}", api_users_delete, AUTH_PERMISSION, "/users/{id_} DELETE", 0, NULL,
     false},
    {OGD_GET, "/sessions/list", api_sessions_list, AUTH_TOKEN, NULL, 0, NULL, false},
    {OGD_GET, "/sessions/{id_}", api_sessions_get, AUTH_TOKEN, NULL, 0, NULL, false},
    {OGD_DELETE, "/sessions/{id_}", api_sessions_delete, AUTH_TOKEN, NULL, 0, NULL, false},
    {OGD_POST, "/sessions", api_sessions_save, AUTH_TOKEN, NULL, 0, NULL, false},
    {OGD_PATCH, "/sessions/{id_}", api_sessions_update, AUTH_TOKEN, NULL, 0, NULL, false},
    {OGD_POST, "/experiments", api_experiments_refresh, AUTH_PERMISSION, "/experiments POST", 0,
     NULL, false},
    {OGD_GET, "/experiments", api_experiments_list, AUTH_TOKEN, NULL, 0, NULL, false},
    {OGD_GET, "/maintenance", api_maintenance_get, AUTH_NONE, NULL, 0, NULL, false},
    {OGD_PUT, "/maintenance", api_maintenance_put, AUTH_PERMISSION, "/maintenance PUT", 0, NULL,
     false},
    {OGD_GET, "/scheduled_maintenance", api_scheduled_maintenance_get, AUTH_NONE, NULL, 0, NULL,
     false},
    {OGD_PUT, "/scheduled_maintenance", api_scheduled_maintenance_put, AUTH_PERMISSION,
     "/scheduled_maintenance PUT", 0, NULL, false},
    {OGD_GET, "/version", api_version, AUTH_NONE, NULL, 0, NULL, false},
    {OGD_GET, "/healthz", api_healthz, AUTH_NONE, NULL, 0, NULL, false},
    {OGD_GET, "/readyz", api_readyz, AUTH_NONE, NULL, 0, NULL, false},
    {OGD_GET, "/metrics", api_metrics, AUTH_NONE, NULL, 0, NULL, false},
#ifdef OGD_TEST_HOOKS
    {OGD_GET, "/_test/block", api_test_block, AUTH_NONE, NULL, 0, NULL, false},
    {OGD_GET, "/_test/hold", api_test_hold, AUTH_TOKEN, NULL, 0, NULL, true},
#endif
};

const size_t api_nroutes = sizeof(api_routes) / sizeof(api_routes[0]);
