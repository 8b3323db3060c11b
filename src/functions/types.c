/*
 * types.c: the value types of the functions language (scalar, waveform, image,
 * float_image, vector) by name: the names that error texts, the manifest and
 * POST /functions/validate use. Below the type checker and the builtins, which both name
 * types in their messages.
 */
#include <string.h>

#include "functions/functions.h"

static const char *const type_names[] = {"scalar", "waveform", "image", "float_image", "vector"};

const char *fn_type_name(fn_type_t t)
{
    return type_names[t];
}

bool fn_type_parse(const char *s, fn_type_t *out)
{
    for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++)
        if (strcmp(s, type_names[i]) == 0) {
            *out = (fn_type_t)i;
            return true;
        }
    return false;
}
