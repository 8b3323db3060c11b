/*
 * falsecolour: the figure of the imaging issue. A 2560x2160 frame of 12-bit data stored
 * as a 16-bit greyscale PNG with sBIT (as ingest writes it) is rendered to a false-colour
 * RGBA PNG by ogd's code path (falsecolour_png: decode, colour, encode, the work of
 * GET /images/{id}/{ch}), and in the same run by the reference's method (PIL decode,
 * numpy array, matplotlib imsave with the colour map, PIL PNG save), run by
 * bench/falsecolour_ref.py with Debian's python3 packages. Each side: best of R runs.
 * Then the thumbnail cost of a /records page: 25 records x 4 image thumbnails (50x50)
 * re-coloured and re-encoded (recolour_records, the post step of the store op).
 *
 *   bench_falsecolour [--runs R] [--python /usr/bin/python3] [--ref bench/falsecolour_ref.py]
 */
#include "imaging/colourmap.h"
#include "imaging/falsecolour.h"
#include "imaging/png.h"
#include "imaging/recolour.h"
#include "util/base64.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define W 2560
#define H 2160
#define LEVEL_OGD 1 /* the default of images.png_compression_level */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A beam spot on a noisy background, 12-bit values shifted into the top bits. */
static uint16_t *make_frame(void)
{
    uint16_t *px = malloc((size_t)W * H * 2);
    unsigned seed = 12345;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double dx = (x - W * 0.45) / 300.0, dy = (y - H * 0.55) / 220.0;
            seed = seed * 1103515245u + 12345u;
            double v = 3000.0 * exp(-(dx * dx + dy * dy)) + 80.0 + (double)((seed >> 16) % 64);
            px[(size_t)y * W + x] = (uint16_t)((v > 4095 ? 4095 : (int)v) << 4);
        }
    return px;
}

static double time_ogd(const unsigned char *png, size_t len, int level, int runs, size_t *outlen)
{
    falsecolour_levels lv = {.lower = 0, .upper = 255, .limit_bit_depth = 8, true, true};
    colourmap cm;
    colourmap_find("viridis", &cm);
    double best = 1e30;
    for (int r = 0; r < runs; r++) {
        unsigned char *out = NULL;
        const char *mode;
        double t0 = now_ms();
        if (falsecolour_png(png, len, &lv, &cm, level, &out, outlen, &mode) != 0) {
            fprintf(stderr, "falsecolour_png failed\n");
            exit(1);
        }
        double t = now_ms() - t0;
        free(out);
        if (t < best)
            best = t;
    }
    return best;
}

static double time_records(int runs)
{
    /* 50x50 8-bit thumbnails cut from a gradient + noise */
    uint8_t thumb[50 * 50];
    for (int i = 0; i < 50 * 50; i++)
        thumb[i] = (uint8_t)((i % 50) * 4 + (i * 7919) % 13);
    unsigned char *png = NULL;
    size_t len = 0;
    png_encode_gray(thumb, 50, 50, 8, 0, 6, &png, &len);
    size_t blen;
    char *b64 = base64_encode(png, len, &blen);
    free(png);
    recolour_opts o = {.enabled = true,
                       .lower_level = 0,
                       .upper_level = 255,
                       .colourmap_name = "viridis",
                       .float_colourmap_name = "bwr"};
    double best = 1e30;
    for (int r = 0; r < runs; r++) {
        json_t *recs = json_array();
        for (int i = 0; i < 25; i++) {
            json_t *chs = json_object();
            for (int c = 0; c < 4; c++) {
                char name[16];
                snprintf(name, sizeof(name), "CAM-%d", c);
                json_object_set_new(
                    chs, name,
                    json_pack("{s{ss}ss}", "metadata", "channel_dtype", "image", "thumbnail", b64));
            }
            json_array_append_new(recs, json_pack("{ssso}", "_id", "x", "channels", chs));
        }
        if (json_array_size(recs) != 25) {
            fprintf(stderr, "could not build the records\n");
            exit(1);
        }
        char err[256];
        double t0 = now_ms();
        if (recolour_records(recs, NULL, &o, err, sizeof(err)) != 0) {
            fprintf(stderr, "recolour failed: %s\n", err);
            exit(1);
        }
        double t = now_ms() - t0;
        const char *t0s = json_string_value(json_object_get(
            json_object_get(json_object_get(json_array_get(recs, 0), "channels"), "CAM-0"),
            "thumbnail"));
        if (!t0s || strcmp(t0s, b64) == 0) {
            fprintf(stderr, "thumbnails were not re-coloured\n");
            exit(1);
        }
        json_decref(recs);
        if (t < best)
            best = t;
    }
    free(b64);
    return best;
}

int main(int argc, char **argv)
{
    int runs = 5;
    const char *python = "/usr/bin/python3", *ref = "bench/falsecolour_ref.py";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--runs") == 0)
            runs = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--python") == 0)
            python = argv[i + 1];
        else if (strcmp(argv[i], "--ref") == 0)
            ref = argv[i + 1];
    }
    uint16_t *frame = make_frame();
    unsigned char *png = NULL;
    size_t len = 0;
    if (png_encode_gray(frame, W, H, 16, 12, PNG_COMPRESSION_DEFAULT, &png, &len) != 0)
        return 1;
    free(frame);
    char path[] = "/tmp/ogd-bench-falsecolour-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f || fwrite(png, 1, len, f) != len)
        return 1;
    fclose(f);

    size_t out1 = 0, out6 = 0;
    double ogd = time_ogd(png, len, LEVEL_OGD, runs, &out1);
    double ogd6 = time_ogd(png, len, 6, runs, &out6);
    free(png);

    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s %s %s %d", python, ref, path, runs);
    FILE *p = popen(cmd, "r");
    double py = -1, pylen = 0;
    if (!p || fscanf(p, "%lf %lf", &py, &pylen) != 2) {
        fprintf(stderr, "falsecolour: the reference method did not run (%s)\n", cmd);
        if (p)
            pclose(p);
        remove(path);
        return 1;
    }
    pclose(p);
    remove(path);
    printf("falsecolour: %dx%d 16-bit ogd=%.0fms python=%.0fms speedup=%.1fx\n", W, H, ogd, py,
           py / ogd);
    printf("falsecolour: detail: ogd PNG libdeflate level %d -> %zu bytes; at level 6 "
           "ogd=%.0fms (%zu bytes, speedup %.1fx); python PNG %.0f bytes; best of %d\n",
           LEVEL_OGD, out1, ogd6, out6, py / ogd6, pylen, runs);
    printf("falsecolour: /records thumbnails: 25 rows x 4 images re-coloured in %.2fms\n",
           time_records(runs * 4));
    return 0;
}
