/*
 * figure: the full-size waveform and vector plots of GET /export (docs/imaging.md §5),
 * drawn with cairo in matplotlib's default style.
 *
 * Owns the look of a default matplotlib figure of 8 x 6 inches at 130 dpi, saved with a
 * tight bounding box and 0.1 inch of padding: white background, an axes box (0.8 pt
 * black spines) at matplotlib's default subplot position, outward ticks (3.5 pt) with
 * labels in DejaVu Sans 10 pt chosen as matplotlib's AutoLocator does (1, 2, 2.5, 5, 10
 * steps, as many as fit), a shared "1eN" multiplier above the axis for very large or
 * small values, axis labels, data limits with 5 % margins. A waveform is one 1.5 pt line
 * in matplotlib's default blue; a vector is bars of width 0.8 at 0..n-1 (bars start at
 * zero, which stays the edge of the view), with the labels as categorical tick labels
 * when there are any. The image is then cropped to what was drawn plus the padding, as
 * a tight bounding box does, so its size depends on the labels. Only the look is
 * matched (the reference's tests compare such plots by perceptual hash), not
 * matplotlib's pixels. Pure functions: run them on the thread pool.
 */
#ifndef OGD_IMAGING_FIGURE_H
#define OGD_IMAGING_FIGURE_H

#include <stddef.h>

/* n points of x, y; x_label / y_label may be NULL or empty. An RGBA PNG in *out
 * (malloc'd, caller frees). 0, -EINVAL (no points), -ENOMEM, -EIO (cairo failed). */
int figure_waveform_png(const double *x, const double *y, size_t n, const char *x_label,
                        const char *y_label, unsigned char **out, size_t *outlen);
/* n values; labels: n strings for the categorical x axis, or NULL for 0..n-1. */
int figure_vector_png(const double *v, size_t n, const char *const *labels, unsigned char **out,
                      size_t *outlen);

#endif
