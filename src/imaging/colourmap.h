/*
 * colourmap: the colour maps ogd colours images with, and their catalogue.
 *
 * Owns the lookup of a map by name and the grouped catalogue served by
 * GET /images/colourmap_names (docs/imaging.md §3). The tables themselves live in the
 * generated colourmaps_data.c (tools/gen_colourmaps.py, from matplotlib): one RGB table
 * per base map, at the map's own length (256 for most, the colour count for the
 * qualitative sets, 510 for twilight), "X_r" included (sampled from matplotlib's own
 * reversed map, which is not always X's bytes backwards). A map the generating matplotlib lacked
 * has no table and is left out of the catalogue; looking it up fails like any unknown name.
 * Everything here is read-only static data: safe from any thread.
 */
#ifndef OGD_IMAGING_COLOURMAP_H
#define OGD_IMAGING_COLOURMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

typedef struct colourmap_table {
    const char *name;   /** catalogue name, e.g. "viridis", "viridis_r" */
    int n;              /** entries */
    const uint8_t *rgb; /** n * 3 bytes */
} colourmap_table;

/* Generated (colourmaps_data.c). */
extern const colourmap_table colourmap_tables[];
extern const size_t colourmap_ntables;

/* A map ready for use. */
typedef struct colourmap {
    const colourmap_table *table;
} colourmap;

/* Finds a catalogue name ("viridis", "jet_r"): exact, case-sensitive. 0 or -ENOENT. */
int colourmap_find(const char *name, colourmap *out);
/* Entries of the map (its LUT length N). */
static inline int colourmap_len(const colourmap *cm)
{
    return cm->table->n;
}
/* Entry i (0..N-1) as RGB bytes. */
static inline const uint8_t *colourmap_entry(const colourmap *cm, int i)
{
    return cm->table->rgb + 3 * i;
}

/* Appends the catalogue as JSON {group: [names...]}: groups in byte order, names in
 * case-insensitive order, only maps that have a table. */
int colourmap_catalogue_json(buf_t *out);
/* Number of names in the catalogue (with the _r forms). */
size_t colourmap_catalogue_count(void);

#endif
