/*
 * colourmap: lookup by name and the grouped catalogue (see colourmap.h).
 *
 * The grouping below is the catalogue of docs/imaging.md §3 by base map; the "_r" form of
 * every map is added (its table is generated with it), and each group is sorted
 * case-insensitively when it is written (so "gnuplot2" sorts before "gnuplot_r", as the
 * reference's catalogue has it). Maps without a generated table are skipped.
 */
#include "imaging/colourmap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/jsonw.h"

typedef struct group {
    const char *name;
    const char *const *maps;
} group;

static const char *const cyclic[] = {"hsv", "twilight", "twilight_shifted", NULL};
static const char *const diverging[] = {
    "berlin", "BrBG", "bwr",    "coolwarm", "managua", "PiYG",     "PRGn",   "PuOr",
    "RdBu",   "RdGy", "RdYlBu", "RdYlGn",   "seismic", "Spectral", "vanimo", NULL};
static const char *const misc[] = {
    "brg",          "CMRmap",     "cubehelix", "flag",     "gist_earth", "gist_ncar",
    "gist_rainbow", "gist_stern", "gnuplot",   "gnuplot2", "jet",        "nipy_spectral",
    "ocean",        "prism",      "rainbow",   "terrain",  "turbo",      NULL};
static const char *const uniform[] = {"cividis", "inferno", "magma", "plasma", "viridis", NULL};
static const char *const qualitative[] = {"Accent", "Dark2",  "Paired", "Pastel1", "Pastel2",
                                          "Set1",   "Set2",   "Set3",   "tab10",   "tab20",
                                          "tab20b", "tab20c", NULL};
static const char *const sequential[] = {
    "Blues", "BuGn",    "BuPu", "GnBu", "Greens", "Greys",  "Oranges", "OrRd",   "PuBu", "PuBuGn",
    "PuRd",  "Purples", "RdPu", "Reds", "YlGn",   "YlGnBu", "YlOrBr",  "YlOrRd", NULL};
static const char *const sequential2[] = {"afmhot", "autumn",    "binary",    "bone",      "cool",
                                          "copper", "gist_gray", "gist_heat", "gist_yarg", "gray",
                                          "hot",    "pink",      "spring",    "summer",    "winter",
                                          "Wistia", NULL};

/* In byte order of the group names. */
static const group groups[] = {
    {"Cyclic", cyclic},
    {"Diverging", diverging},
    {"Miscellaneous", misc},
    {"Perceptually Uniform Sequential", uniform},
    {"Qualitative", qualitative},
    {"Sequential", sequential},
    {"Sequential (2)", sequential2},
};

static const colourmap_table *find_table(const char *name, size_t len)
{
    for (size_t i = 0; i < colourmap_ntables; i++) {
        const char *t = colourmap_tables[i].name;
        if (strlen(t) == len && memcmp(t, name, len) == 0)
            return &colourmap_tables[i];
    }
    return NULL;
}

int colourmap_find(const char *name, colourmap *out)
{
    if (!name)
        return -ENOENT;
    const colourmap_table *t = find_table(name, strlen(name));
    if (!t)
        return -ENOENT;
    out->table = t;
    return 0;
}

static int cmp_ci(const void *a, const void *b)
{
    return strcasecmp(*(const char *const *)a, *(const char *const *)b);
}

/* Fills names (room for 2 * maps) with a group's present names and their _r forms. */
static size_t group_names(const group *g, char names[][40], const char **sorted)
{
    size_t n = 0;
    for (const char *const *m = g->maps; *m; m++) {
        if (!find_table(*m, strlen(*m)))
            continue; /* the generator writes X and X_r together */
        snprintf(names[n], 40, "%s", *m);
        sorted[n] = names[n];
        n++;
        snprintf(names[n], 40, "%s_r", *m);
        sorted[n] = names[n];
        n++;
    }
    qsort(sorted, n, sizeof(*sorted), cmp_ci);
    return n;
}

int colourmap_catalogue_json(buf_t *out)
{
    char names[64][40];
    const char *sorted[64];
    int rc = buf_putc(out, '{');
    for (size_t gi = 0; rc == 0 && gi < sizeof(groups) / sizeof(groups[0]); gi++) {
        size_t n = group_names(&groups[gi], names, sorted);
        if (gi)
            rc = buf_putc(out, ',');
        if (rc == 0)
            rc = jsonw_string(out, groups[gi].name, strlen(groups[gi].name));
        if (rc == 0)
            rc = buf_puts(out, ":[");
        for (size_t i = 0; rc == 0 && i < n; i++) {
            if (i)
                rc = buf_putc(out, ',');
            if (rc == 0)
                rc = jsonw_string(out, sorted[i], strlen(sorted[i]));
        }
        if (rc == 0)
            rc = buf_putc(out, ']');
    }
    if (rc == 0)
        rc = buf_putc(out, '}');
    return rc;
}

size_t colourmap_catalogue_count(void)
{
    size_t n = 0;
    for (size_t gi = 0; gi < sizeof(groups) / sizeof(groups[0]); gi++)
        for (const char *const *m = groups[gi].maps; *m; m++)
            if (find_table(*m, strlen(*m)))
                n += 2;
    return n;
}
