/*
 * error.c: see error.h.
 */
#include "util/error.h"

#include <errno.h>
#include <string.h>

const char *ogd_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case OGD_EBADQUERY:
        return "invalid query";
    case OGD_EDB:
        return "database error";
    case OGD_EDB_UNAVAILABLE:
        return "database unavailable";
    case OGD_EOBJ_UNAVAILABLE:
        return "object storage unavailable";
    case OGD_EHDF5_NOT_HDF5:
        return "not an HDF5 file";
    case OGD_EHDF5_TOO_LARGE:
        return "HDF5 description too large";
    case OGD_EHDF5_CRASHED:
        return "HDF5 reader failed";
    case OGD_EHDF5_TIMEOUT:
        return "HDF5 reader timed out";
    case OGD_EUPSTREAM:
        return "upstream service failed";
    case OGD_EMODEL:
        return "invalid document";
    default:
        return err < 0 && err > -4096 ? strerror(-err) : "unknown error";
    }
}

bool ogd_unavailable(int err)
{
    switch (err) {
    case OGD_EDB_UNAVAILABLE:
    case OGD_EOBJ_UNAVAILABLE:
    case -ETIMEDOUT:
    case -ECONNREFUSED:
    case -ECONNRESET:
    case -EHOSTUNREACH:
    case -ENETUNREACH:
    case -ECONNABORTED:
    case -ESHUTDOWN:
        return true;
    default:
        return false;
    }
}
