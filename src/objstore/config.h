/*
 * objstore/config: the bridge from the `echo:` section of the configuration to
 * objstore_options, so the worker, the CLI and the benchmarks open the object store the
 * same way. The options borrow strings from the config, which must outlive them.
 */
#ifndef OGD_OBJSTORE_CONFIG_H
#define OGD_OBJSTORE_CONFIG_H

#include "config/config.h"
#include "objstore/objstore.h"

void objstore_options_from_config(const ogd_config *cfg, objstore_options *out);

#endif
