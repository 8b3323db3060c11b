/*
 * check.c (fneval): the validate-style vetting of a list of functions against the channel
 * manifest and the earlier functions (docs/functions.md §4 steps 1-6): name clashes, name
 * syntax, expression syntax, types. Used by POST /functions/validate and, through
 * fneval_list_types, by the export's header. Bounded (FN_MAX_EXPRESSION bytes each, at
 * most FNEVAL_FUNCTIONS_MAX functions), so it runs on the caller's thread.
 */
#include "fneval/fneval.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

typedef struct type_env {
    json_t *manifest; /* channels object of the manifest, may be NULL */
    const fneval_function *fns;
    const fn_typeinfo *types;
    size_t n; /* functions defined so far */
} type_env;

static bool env_lookup(void *data, const char *name, fn_typeinfo *out)
{
    type_env *env = data;
    json_t *ch = json_object_get(env->manifest, name);
    if (ch) {
        const char *t = json_string_value(json_object_get(ch, "type"));
        if (!t || !fn_type_parse(t, &out->type))
            out->type = FN_SCALAR;
        out->manifest = true;
        return true;
    }
    for (size_t i = env->n; i-- > 0;)
        if (strcmp(env->fns[i].name, name) == 0) {
            *out = env->types[i];
            return true;
        }
    return false;
}

int fneval_check(arena_t *a, json_t *manifest_channels, fneval_function *fns, size_t n,
                 size_t *bad_index, char *err)
{
    fn_typeinfo *types = arena_alloc(a, (n ? n : 1) * sizeof *types);
    if (!types) {
        snprintf(err, FN_ERR_MAX, "out of memory");
        *bad_index = 0;
        return -ENOMEM;
    }
    type_env env = {manifest_channels, fns, types, 0};
    for (size_t i = 0; i < n; i++) {
        const char *name = fns[i].name;
        *bad_index = i;
        bool earlier = false;
        for (size_t k = 0; k < i; k++)
            if (strcmp(fns[k].name, name) == 0)
                earlier = true;
        if (json_object_get(manifest_channels, name)) {
            snprintf(err, FN_ERR_MAX, "name '%s' is already a channel name", name);
            return -EINVAL;
        }
        if (earlier) {
            snprintf(err, FN_ERR_MAX, "name '%s' is already a function name", name);
            return -EINVAL;
        }
        if (fn_is_token_symbol(name)) {
            snprintf(err, FN_ERR_MAX, "name '%s' is already a builtin name", name);
            return -EINVAL;
        }
        if (!fn_is_variable_name(name)) {
            snprintf(err, FN_ERR_MAX,
                     "name '%s' must start with a letter, and can only contain letters, digits, "
                     "'-' or '_' characters",
                     name);
            return -EINVAL;
        }
        if (fn_parse(a, fns[i].expression, &fns[i].tree, err) != 0)
            return -EINVAL;
        if (fn_typecheck(fns[i].tree, env_lookup, &env, &types[i], err) != 0)
            return -EINVAL;
        fns[i].type = types[i].type;
        env.n = i + 1;
    }
    return 0;
}
