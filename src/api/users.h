/*
 * users: the user-document round trip that the handlers of /users (users.c),
 * /users/filters (filters.c) and /users/preferences (prefs.c) share; users.c implements
 * it. Favourite filters and preferences live inside the caller's user document
 * (`filters`, `user_prefs`), as in the reference.
 *
 * Every change is load -> change on the loop -> store the whole document only if nobody
 * stored it meanwhile (STORE_USER_UPDATE on the document's "_rev" counter); on a clash
 * the change is redone on a fresh copy (a bounded number of times, then 503), so
 * concurrent changes to one user (two preferences set at once, from two workers) are
 * never lost.
 */
#ifndef OGD_API_USERS_H
#define OGD_API_USERS_H

#include "api/control.h"

#include "auth/fedid.h"
#include "auth/password.h"

typedef struct api_user_ctx api_user_ctx;

/* Called on the loop once the user document is loaded (c->status 0 or -ENOENT). */
typedef enum {
    API_USER_DONE,    /* it has responded: free the context */
    API_USER_STORE,   /* store c->user, then call c->stored */
    API_USER_PENDING, /* it handed the context on (a pool job); nothing to do here */
} api_user_step;
typedef api_user_step (*api_user_apply)(api_user_ctx *c);

struct api_user_ctx {
    http_request_t *req;
    json_t *body;
    json_t *user; /* the loaded document (owned) */
    const char *id;
    int status;
    api_user_apply apply;
    void (*stored)(api_user_ctx *c);
    bool insert; /* store with insert (not conditional update) semantics */
    int64_t rev; /* the loaded document's "_rev" */
    int tries;
    /* scratch for the handlers: name (filters.c, prefs.c), filter and fid (filters.c),
     * the password, its hash and the FedID e-mail look-up (users.c), text (all) */
    const char *name, *filter, *fid;
    char *password;
    char hash[PASSWORD_HASH_BYTES];
    bool hash_failed;
    fedid_result fedid;
    api_fedid_job fedid_job;
    char email[FEDID_MAX_EMAIL_BYTES];
    char text[600];
};

/* A context for req in the request's arena (zeroed); NULL with the 500 sent. */
api_user_ctx *api_user_ctx_new(http_request_t *req);
/* Releases what the context holds (body, document, password scratch, wiped). */
void api_user_ctx_free(api_user_ctx *c);
/* Loads the user c->id and calls apply on the loop (c->status 0 or -ENOENT; other store
 * errors are answered here). On API_USER_STORE the document is stored as said above and
 * stored (which answers) runs once it is; then the context is freed. Takes c. */
void api_user_load(api_user_ctx *c, api_user_apply apply, void (*stored)(api_user_ctx *c));
/* A `stored` callback: 204 with no body. */
void api_user_no_content(api_user_ctx *c);

#endif
