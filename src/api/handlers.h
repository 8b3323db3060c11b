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
/* submit.c */
void api_submit_hdf(http_request_t *req);
void api_submit_manifest(http_request_t *req);
/* export.c */
void api_export(http_request_t *req);

/* images.c */
void api_images_get(http_request_t *req);
void api_images_float(http_request_t *req);
void api_images_crosshair(http_request_t *req);
void api_images_colour_bar(http_request_t *req);
void api_images_colourmap_names(http_request_t *req);
void api_waveforms_get(http_request_t *req);
void api_vectors_get(http_request_t *req);
/* functions.c */
void api_functions_tokens(http_request_t *req);
void api_functions_validate(http_request_t *req);
/* system.c */
void api_version(http_request_t *req);
void api_healthz(http_request_t *req);
void api_readyz(http_request_t *req);
void api_metrics(http_request_t *req);
/* auth.c */
void api_login(http_request_t *req);
void api_verify(http_request_t *req);
void api_refresh(http_request_t *req);
/* oidc.c */
void api_oidc_providers(http_request_t *req);
void api_oidc_login(http_request_t *req);
/* users.c */
void api_users_create(http_request_t *req);
void api_users_update(http_request_t *req);
void api_users_list(http_request_t *req);
void api_users_delete(http_request_t *req);
/* filters.c */
void api_filters_list(http_request_t *req);
void api_filters_get(http_request_t *req);
void api_filters_create(http_request_t *req);
void api_filters_update(http_request_t *req);
void api_filters_delete(http_request_t *req);
/* prefs.c */
void api_prefs_get(http_request_t *req);
void api_prefs_set(http_request_t *req);
void api_prefs_delete(http_request_t *req);
/* experiments.c */
void api_experiments_list(http_request_t *req);
void api_experiments_refresh(http_request_t *req);

/* sessions.c */
void api_sessions_list(http_request_t *req);
void api_sessions_get(http_request_t *req);
void api_sessions_save(http_request_t *req);
void api_sessions_update(http_request_t *req);
void api_sessions_delete(http_request_t *req);
/* maintenance.c */
void api_maintenance_get(http_request_t *req);
void api_maintenance_put(http_request_t *req);
void api_scheduled_maintenance_get(http_request_t *req);
void api_scheduled_maintenance_put(http_request_t *req);
#ifdef OGD_TEST_HOOKS
void api_test_block(http_request_t *req);
void api_test_hold(http_request_t *req);
#endif

#endif
