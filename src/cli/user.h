/*
 * user: `ogd user add|passwd|routes|delete|list`, the operator's way to manage local
 * users (and FedID user entries) without the HTTP API, e.g. to create the first
 * administrator. Passwords are read from standard input (one line), never from the
 * command line, and stored as argon2id.
 */
#ifndef OGD_CLI_USER_H
#define OGD_CLI_USER_H

#include <stdio.h>

#include "store/store.h"

/* argv[0] is the subcommand ("add", ...). Returns the process exit status. */
int user_command(store_t *store, int argc, char **argv, FILE *in, FILE *out, FILE *err);

#endif
