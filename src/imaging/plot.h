/*
 * plot: the small line and bar plots used as waveform and vector thumbnails
 * (docs/imaging.md §5), drawn without matplotlib.
 *
 * Owns the look: white opaque background, no axes, ticks or frame; data limits with a 5 %
 * margin on each side (matplotlib's default), a waveform as one anti-aliased polyline in
 * matplotlib's default blue (#1f77b4) of line_width points at 130 dpi, a vector as bars
 * of width 0.8 at x = 0..n-1 in that blue with a black 1.5 pt line at y = 0. The
 * thumbnail is exactly w x h pixels. Only the look is matched (the reference's tests
 * compare thumbnails by perceptual hash), not matplotlib's pixels. Non-finite values are
 * skipped (they break the line, as in matplotlib). Pure functions: run them on the pool.
 * Used by ingest, by waveform-valued function results and by the vector thumbnails
 * /records re-draws from the user's skip/limit (api/vector_thumbs.c).
 */
#ifndef OGD_IMAGING_PLOT_H
#define OGD_IMAGING_PLOT_H

#include <stddef.h>
#include <stdint.h>

#define PLOT_DPI 130.0

/* Draws into rgba (w * h * 4 bytes). n points of x, y. */
void plot_waveform_rgba(const double *x, const double *y, size_t n, uint32_t w, uint32_t h,
                        double line_width_pt, uint8_t *rgba);
void plot_vector_rgba(const double *v, size_t n, uint32_t w, uint32_t h, uint8_t *rgba);

/* The same, encoded as an RGBA PNG (*out malloc'd, caller frees). 0, -EINVAL (w or h
 * is 0 or over 4096), -ENOMEM. */
int plot_waveform_png(const double *x, const double *y, size_t n, uint32_t w, uint32_t h,
                      double line_width_pt, unsigned char **out, size_t *outlen);
int plot_vector_png(const double *v, size_t n, uint32_t w, uint32_t h, unsigned char **out,
                    size_t *outlen);

#endif
