/*
 * setup: start-up checks of the auth configuration, run by the master (and the CLI)
 * before any worker exists: without an `auth` section the key pair defaults to
 * <data_dir>/jwt_rsa{,.pub} and is generated there on first start, so an embedded
 * `ogd serve` needs no set-up; with one, the configured files must load. A server on
 * PostgreSQL (a cluster's node, docs/deploy.md §2) never makes a pair: both files must
 * exist, so every node signs and verifies with the same one.
 */
#ifndef OGD_AUTH_SETUP_H
#define OGD_AUTH_SETUP_H

#include <stddef.h>

#include "config/config.h"

/* 0, or -1 with a message in err. */
int auth_prepare_keys(const ogd_config *cfg, char *err, size_t errlen);

#endif
