/*
 * tokens.c: the token list of GET /functions/tokens (docs/functions.md §5): the
 * seven operator symbols, the five numeric functions and the ten builtins, in the
 * reference's order, with help texts written for ogd that describe what ogd computes.
 */
#include <string.h>

#include "functions/functions.h"

const fn_token fn_tokens[] = {
    {"+", "Add", NULL},
    {"-", "Subtract", NULL},
    {"*", "Multiply", NULL},
    {"/", "Divide", NULL},
    {"**", "Raise to power", NULL},
    {"(", "Open bracket", NULL},
    {")", "Close bracket", NULL},
    {"mean", "Mean",
     "Arithmetic mean of all values: every pixel of an image, every y value of a waveform. "
     "Returns a scalar; NaN if any value is NaN."},
    {"exp", "Exponential",
     "e raised to the power of each value (element-wise on images and on the y values of "
     "waveforms). Returns the same type as its argument."},
    {"log", "Natural logarithm",
     "Natural logarithm of each value (element-wise on images and on the y values of "
     "waveforms). Zero gives -infinity and negative values NaN. Returns the same type as its "
     "argument."},
    {"max", "Maximum",
     "Largest value: of every pixel of an image, every y value of a waveform. Returns a "
     "scalar; NaN if any value is NaN."},
    {"min", "Minimum",
     "Smallest value: of every pixel of an image, every y value of a waveform. Returns a "
     "scalar; NaN if any value is NaN."},
    {"background", "Background",
     "Estimate of the background level. Waveform: the y values are smoothed; with fewer "
     "than 50 points the result is their mean, otherwise the average of the means of the "
     "first 25 and the last 25 points. Image: the mean of the top-left 10 x 10 pixels."},
    {"centre", "Centre",
     "x position halfway between the rising and falling half-maximum points of a waveform "
     "(after smoothing and subtracting its minimum)."},
    {"centroid_x", "Centroid (x)",
     "Column of the intensity-weighted centre of an image (the weighted mean of column "
     "indices, truncated to a whole pixel)."},
    {"centroid_y", "Centroid (y)",
     "Row of the intensity-weighted centre of an image (the weighted mean of row indices, "
     "truncated to a whole pixel)."},
    {"falling", "Falling",
     "x position of the first point at or after the peak of a waveform whose value is at "
     "most half the peak height (after smoothing and subtracting the minimum)."},
    {"fwhm", "Full Width Half Maximum",
     "Width of the peak of a waveform at half its height: falling minus rising position "
     "(after smoothing and subtracting the minimum)."},
    {"fwhm_x", "Full Width Half Maximum (x)",
     "Full width at half maximum, in pixels, of the image row through the centroid, "
     "treated as a waveform."},
    {"fwhm_y", "Full Width Half Maximum (y)",
     "Full width at half maximum, in pixels, of the image column through the centroid, "
     "treated as a waveform."},
    {"integrate", "Integrate",
     "Waveform: the smoothed y values integrated over x with a left Riemann sum. Image: the "
     "sum of all pixels."},
    {"rising", "Rising",
     "x position of the last point before the peak of a waveform whose value is at most "
     "half the peak height (after smoothing and subtracting the minimum)."},
};

const size_t fn_ntokens = sizeof(fn_tokens) / sizeof(fn_tokens[0]);

bool fn_is_token_symbol(const char *s)
{
    for (size_t i = 0; i < fn_ntokens; i++)
        if (strcmp(fn_tokens[i].symbol, s) == 0)
            return true;
    return false;
}
