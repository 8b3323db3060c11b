/*
 * permissions.c: see permissions.h.
 */
#include "auth/permissions.h"

#include <string.h>

const char *const auth_permissions[] = {
    "/submit/hdf POST",
    "/submit/manifest POST",
    "/records/{id_} DELETE",
    "/experiments POST",
    "/users POST",
    "/users PATCH",
    "/users GET",
    "/users/{id_} DELETE",
    "/maintenance PUT",
    "/scheduled_maintenance PUT",
};
const size_t auth_npermissions = sizeof(auth_permissions) / sizeof(auth_permissions[0]);

bool auth_permission_known(const char *r)
{
    for (size_t i = 0; i < auth_npermissions; i++)
        if (strcmp(auth_permissions[i], r) == 0)
            return true;
    return false;
}
