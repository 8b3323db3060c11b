/*
 * handlers: every HTTP handler of the API, one line each, grouped by the file that
 * implements it. routes.c puts them in the route table.
 */
#ifndef OGD_API_HANDLERS_H
#define OGD_API_HANDLERS_H

#include "http/http.h"

/* records.c */
void api_records_list(http_request_t *req);
void api_records_count(http_request_t *req);
void api_records_range(http_request_t *req);
void api_records_get(http_request_t *req);
void api_records_delete(http_request_t *req);
/* channels.c */
void api_channels_manifest(http_request_t *req);
void api_channels_summary(http_request_t *req);
void api_channels_get(http_request_t *req);
/* system.c */
void api_version(http_request_t *req);
void api_healthz(http_request_t *req);
void api_readyz(http_request_t *req);
/* auth.c */
void api_login(http_request_t *req);
void api_verify(http_request_t *req);
void api_refresh(http_request_t *req);
#ifdef OGD_TEST_HOOKS
void api_test_block(http_request_t *req);
#endif

#endif
