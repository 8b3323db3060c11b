/*
 * user.c: see user.h.
 *
 *   ogd user add NAME [--route R]... [--all-routes] [--fedid --email ADDR]
 *                                 local users read their password from stdin
 *   ogd user passwd NAME          new password from stdin
 *   ogd user routes NAME [--add R]... [--remove R]... [--all-routes] [--none]
 *   ogd user delete NAME
 *   ogd user list
 */
#include "cli/user.h"

#include "auth/permissions.h"
#include "auth/password.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

static int read_password(FILE *in, FILE *err, char out[PASSWORD_MAX_BYTES + 2])
{
    if (!fgets(out, PASSWORD_MAX_BYTES + 2, in)) {
        fprintf(err, "user: expected the password on standard input\n");
        return -1;
    }
    size_t n = strlen(out);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        out[--n] = '\0';
    if (n == 0 || n > PASSWORD_MAX_BYTES) {
        fprintf(err, "user: the password must be 1 to %d bytes\n", PASSWORD_MAX_BYTES);
        return -1;
    }
    return 0;
}

static int set_password(json_t *user, FILE *in, FILE *err)
{
    char pw[PASSWORD_MAX_BYTES + 2];
    char hash[PASSWORD_HASH_BYTES];
    int rc = read_password(in, err, pw);
    if (rc == 0 && password_hash(pw, hash) != 0) {
        fprintf(err, "user: hashing failed\n");
        rc = -1;
    }
    OPENSSL_cleanse(pw, sizeof(pw));
    if (rc == 0) {
        json_object_set_new(user, "password_hash", json_string(hash));
        json_object_del(user, "sha256_password");
    }
    return rc;
}

static json_t *load_user(store_t *store, const char *name, FILE *err)
{
    store_op_t op;
    store_op_init(&op, STORE_USER_GET);
    op.id = name;
    int rc = store_run_sync(store, &op);
    json_t *doc = op.result;
    op.result = NULL;
    if (rc == -ENOENT)
        fprintf(err, "user: no user \"%s\"\n", name);
    else if (rc != 0)
        fprintf(err, "user: %s\n", op.err);
    store_op_cleanup(&op);
    return rc == 0 ? doc : NULL;
}

static int save_user(store_t *store, json_t *doc, bool replace, FILE *err)
{
    if (replace) { /* a new revision, so a concurrent change in the server notices it */
        json_t *rev = json_object_get(doc, "_rev");
        json_object_set_new(doc, "_rev",
                            json_integer((json_is_integer(rev) ? json_integer_value(rev) : 0) + 1));
    }
    store_op_t op;
    store_op_init(&op, STORE_USER_PUT);
    op.doc = doc;
    op.replace = replace;
    int rc = store_run_sync(store, &op);
    if (rc == -EEXIST)
        fprintf(err, "user: \"%s\" exists already\n",
                json_string_value(json_object_get(doc, "_id")));
    else if (rc != 0)
        fprintf(err, "user: %s\n", op.err);
    store_op_cleanup(&op);
    return rc;
}

static json_t *all_routes(void)
{
    json_t *a = json_array();
    for (size_t i = 0; i < auth_npermissions; i++)
        json_array_append_new(a, json_string(auth_permissions[i]));
    return a;
}

static bool has_route(json_t *a, const char *r)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), r) == 0)
            return true;
    }
    return false;
}

static int cmd_add(store_t *store, int argc, char **argv, FILE *in, FILE *out, FILE *err)
{
    const char *name = argv[1];
    bool fedid = false;
    const char *email = NULL;
    json_t *routes = json_array();
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--route") == 0 && i + 1 < argc) {
            if (!auth_permission_known(argv[++i])) {
                fprintf(err, "user: unknown permission \"%s\"\n", argv[i]);
                json_decref(routes);
                return 2;
            }
            if (!has_route(routes, argv[i]))
                json_array_append_new(routes, json_string(argv[i]));
        } else if (strcmp(argv[i], "--all-routes") == 0) {
            json_decref(routes);
            routes = all_routes();
        } else if (strcmp(argv[i], "--fedid") == 0) {
            fedid = true;
        } else if (strcmp(argv[i], "--email") == 0 && i + 1 < argc) {
            email = argv[++i];
        } else {
            fprintf(err, "user: unknown option \"%s\"\n", argv[i]);
            json_decref(routes);
            return 2;
        }
    }
    json_t *doc = json_pack("{s:s, s:s, s:o}", "_id", name, "auth_type", fedid ? "FedID" : "local",
                            "authorised_routes", routes);
    if (email)
        json_object_set_new(doc, "email", json_string(email));
    int rc = fedid ? 0 : set_password(doc, in, err);
    if (rc == 0)
        rc = save_user(store, doc, false, err);
    if (rc == 0)
        fprintf(out, "user: added %s\n", name);
    json_decref(doc);
    return rc == 0 ? 0 : 1;
}

static int cmd_passwd(store_t *store, const char *name, FILE *in, FILE *out, FILE *err)
{
    json_t *doc = load_user(store, name, err);
    if (!doc)
        return 1;
    const char *type = json_string_value(json_object_get(doc, "auth_type"));
    int rc = -1;
    if (!type || strcmp(type, "local") != 0)
        fprintf(err, "user: %s is not a local user\n", name);
    else if (set_password(doc, in, err) == 0)
        rc = save_user(store, doc, true, err);
    if (rc == 0)
        fprintf(out, "user: password of %s changed\n", name);
    json_decref(doc);
    return rc == 0 ? 0 : 1;
}

static int cmd_routes(store_t *store, int argc, char **argv, FILE *out, FILE *err)
{
    json_t *doc = load_user(store, argv[1], err);
    if (!doc)
        return 1;
    json_t *routes = json_object_get(doc, "authorised_routes");
    routes = json_is_array(routes) ? json_deep_copy(routes) : json_array();
    int rc = 0;
    for (int i = 2; i < argc && rc == 0; i++) {
        bool add = strcmp(argv[i], "--add") == 0, del = strcmp(argv[i], "--remove") == 0;
        if ((add || del) && i + 1 < argc) {
            const char *r = argv[++i];
            if (!auth_permission_known(r)) {
                fprintf(err, "user: unknown permission \"%s\"\n", r);
                rc = 2;
            } else if (add && !has_route(routes, r)) {
                json_array_append_new(routes, json_string(r));
            } else if (del) {
                for (size_t k = json_array_size(routes); k-- > 0;)
                    if (strcmp(json_string_value(json_array_get(routes, k)), r) == 0)
                        json_array_remove(routes, k);
            }
        } else if (strcmp(argv[i], "--all-routes") == 0) {
            json_decref(routes);
            routes = all_routes();
        } else if (strcmp(argv[i], "--none") == 0) {
            json_array_clear(routes);
        } else {
            fprintf(err, "user: unknown option \"%s\"\n", argv[i]);
            rc = 2;
        }
    }
    if (rc == 0) {
        json_object_set(doc, "authorised_routes", routes);
        rc = save_user(store, doc, true, err) == 0 ? 0 : 1;
    }
    if (rc == 0) {
        fprintf(out, "%s:", argv[1]);
        size_t i;
        json_t *v;
        json_array_foreach(routes, i, v) fprintf(out, " '%s'", json_string_value(v));
        fprintf(out, "\n");
    }
    json_decref(routes);
    json_decref(doc);
    return rc;
}

static int cmd_delete(store_t *store, const char *name, FILE *out, FILE *err)
{
    store_op_t op;
    store_op_init(&op, STORE_USER_DELETE);
    op.id = name;
    int rc = store_run_sync(store, &op);
    int64_t n = op.count;
    if (rc != 0)
        fprintf(err, "user: %s\n", op.err);
    store_op_cleanup(&op);
    if (rc != 0)
        return 1;
    if (n == 0) {
        fprintf(err, "user: no user \"%s\"\n", name);
        return 1;
    }
    fprintf(out, "user: deleted %s\n", name);
    return 0;
}

static int cmd_list(store_t *store, FILE *out, FILE *err)
{
    store_op_t op;
    store_op_init(&op, STORE_USERS_LIST);
    int rc = store_run_sync(store, &op);
    if (rc != 0) {
        fprintf(err, "user: %s\n", op.err);
    } else {
        size_t i;
        json_t *u;
        json_array_foreach(op.result, i, u)
        {
            const char *type = json_string_value(json_object_get(u, "auth_type"));
            const char *hash = json_string_value(json_object_get(u, "password_hash"));
            const char *form = hash && strncmp(hash, "$argon2id$", 10) == 0            ? "argon2id"
                               : json_is_string(json_object_get(u, "sha256_password")) ? "sha256"
                                                                                       : "none";
            fprintf(out, "%s\t%s\t%zu permissions\tpassword: %s\n",
                    json_string_value(json_object_get(u, "_id")), type ? type : "?",
                    json_array_size(json_object_get(u, "authorised_routes")), form);
        }
    }
    store_op_cleanup(&op);
    return rc == 0 ? 0 : 1;
}

int user_command(store_t *store, int argc, char **argv, FILE *in, FILE *out, FILE *err)
{
    if (password_init() != 0) {
        fprintf(err, "user: libsodium failed to initialise\n");
        return 1;
    }
    if (argc >= 1 && strcmp(argv[0], "list") == 0)
        return cmd_list(store, out, err);
    if (argc < 2 || !*argv[1]) {
        fprintf(err, "usage: ogd user add|passwd|routes|delete NAME [options] | ogd user list\n");
        return 2;
    }
    if (strcmp(argv[0], "add") == 0)
        return cmd_add(store, argc, argv, in, out, err);
    if (strcmp(argv[0], "passwd") == 0)
        return cmd_passwd(store, argv[1], in, out, err);
    if (strcmp(argv[0], "routes") == 0)
        return cmd_routes(store, argc, argv, out, err);
    if (strcmp(argv[0], "delete") == 0)
        return cmd_delete(store, argv[1], out, err);
    fprintf(err, "user: unknown subcommand \"%s\"\n", argv[0]);
    return 2;
}
