/*
 * ingest_cli: `ogd ingest FILE...` loads HDF5 files through the same pipeline as
 * POST /submit/hdf (src/ingest/ingest.h), on a loop of its own against the configured
 * store and object store; `ogd ingest --url URL FILE...` posts them to a running server
 * instead. One line of progress per file on stderr (status, record id, accepted and
 * rejected channel counts, each rejected channel's reasons).
 */
#ifndef OGD_CLI_INGEST_CLI_H
#define OGD_CLI_INGEST_CLI_H

#include <stdio.h>

#include "config/config.h"

/* Exit statuses: every file stored (201/200) -> 0; some file rejected (4xx) -> 1; a
 * server, database or object-store failure (5xx, I/O) -> 3 (the worst wins). */
#define INGEST_EXIT_OK 0
#define INGEST_EXIT_REJECTED 1
#define INGEST_EXIT_FAILED 3

/* Ingests files locally. cfg: the loaded configuration (borrowed). */
int ingest_cli_local(const ogd_config *cfg, char **files, int nfiles, FILE *log);
/* Posts files to url (e.g. http://host:8000, url_prefix included) with an optional
 * bearer token. */
int ingest_cli_remote(const char *url, const char *token, char **files, int nfiles, FILE *log);

#endif
