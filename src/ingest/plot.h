/*
 * plot: the small line and bar plots used as waveform and vector thumbnails at ingest
 * (white background, no axes, matplotlib's default colour #1f77b4, 5% margins), encoded as
 * RGBA PNGs of exactly the requested size. Anti-aliased by coverage. The imaging issue
 * makes them pixel-faithful to the reference; this draws the same kind of picture.
 */
#ifndef OGD_INGEST_PLOT_H
#define OGD_INGEST_PLOT_H

#include <stddef.h>
#include <stdint.h>

/* Line through (x[i], y[i]); non-finite points break the line. *out: PNG (caller frees). */
int plot_line_png(const double *x, const double *y, size_t n, uint32_t w, uint32_t h,
                  double line_width_px, unsigned char **out, size_t *outlen);
/* Bars of v[i] at x = i (width 0.8) and a black line at 0. */
int plot_bars_png(const double *v, size_t n, uint32_t w, uint32_t h, unsigned char **out,
                  size_t *outlen);

#endif
