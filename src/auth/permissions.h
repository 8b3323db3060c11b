/*
 * permissions: the route permissions a user may be granted (a user document's
 * authorised_routes): one list, used by the user handlers (which refuse others), the
 * `ogd user` command and the demo user, who holds them all. A route marked
 * AUTH_PERMISSION in the route table names one of these.
 */
#ifndef OGD_AUTH_PERMISSIONS_H
#define OGD_AUTH_PERMISSIONS_H

#include <stdbool.h>
#include <stddef.h>

extern const char *const auth_permissions[];
extern const size_t auth_npermissions;

/* True when r is one of auth_permissions. */
bool auth_permission_known(const char *r);

#endif
