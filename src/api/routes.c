/*
 * routes.c: the route table. Order matters where patterns overlap: fixed paths come
 * before the templates that would also match them (spec/data.md §4).
 */
#include "api/api.h"
#include "api/handlers.h"

const http_route api_routes[] = {
    {OGD_GET, "/records", api_records_list, AUTH_TOKEN, NULL, 0, NULL},
    {OGD_GET, "/records/count", api_records_count, AUTH_TOKEN, NULL, 0, NULL},
    {OGD_GET, "/records/range_converter", api_records_range, AUTH_TOKEN, NULL, 0, NULL},
    {OGD_GET, "/records/{id_}", api_records_get, AUTH_TOKEN, NULL, 0, NULL},
    {OGD_DELETE, "/records/{id_}", api_records_delete, AUTH_PERMISSION, "/records/{id_} DELETE", 0,
     NULL},
    {OGD_GET, "/channels", api_channels_manifest, AUTH_TOKEN, NULL, 0, NULL},
    {OGD_GET, "/channels/summary/{channel_name}", api_channels_summary, AUTH_TOKEN, NULL, 0, NULL},
    {OGD_GET, "/channels/{channel_system_name}", api_channels_get, AUTH_TOKEN, NULL, 0, NULL},
    {OGD_POST, "/login", api_login, AUTH_NONE, NULL, 0, NULL},
    {OGD_POST, "/verify", api_verify, AUTH_NONE, NULL, 0, NULL},
    {OGD_POST, "/refresh", api_refresh, AUTH_NONE, NULL, 0, NULL},
    {OGD_GET, "/version", api_version, AUTH_NONE, NULL, 0, NULL},
    {OGD_GET, "/healthz", api_healthz, AUTH_NONE, NULL, 0, NULL},
    {OGD_GET, "/readyz", api_readyz, AUTH_NONE, NULL, 0, NULL},
#ifdef OGD_TEST_HOOKS
    {OGD_GET, "/_test/block", api_test_block, AUTH_NONE, NULL, 0, NULL},
#endif
};

const size_t api_nroutes = sizeof(api_routes) / sizeof(api_routes[0]);
