/*
 * fuzz_png: the PNG reader (src/imaging/png.h: png_decode over libspng, with the size
 * limits, the palette expansion and the 1/2/4-bit greyscale unpacking of our own code),
 * and the encoders and thumbnailer the server runs on decoded frames.
 *
 * Input: a PNG file. Checks, besides memory errors, UB and leaks:
 *  - png_decode returns 0 or a negative errno, and on error holds no memory;
 *  - a decoded image is consistent: 1 <= width, height within the limits; bit depth 8 or
 *    16; channels match the colour type; stride = width * channels * bytes per sample;
 *    len = height * stride (every pixel byte is read, so ASan sees the whole buffer);
 *  - round trip: the pixels written back by the encoder for their layout (zlib: grey,
 *    grey+alpha, RGBA; and the fast libdeflate/Huffman writers for grey and RGBA) decode
 *    to identical pixels, depth and sBIT;
 *  - greyscale: png_thumbnail_png makes an 8-bit grey PNG of png_thumbnail_size's size.
 * Round trips run on images of at most 1 MiB of pixels, to keep executions fast.
 */
#include "harness.h"

#include "imaging/png.h"

#define ROUNDTRIP_MAX ((size_t)1 << 20)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_silence_logs();
    return 0;
}

/* Decodes png and compares it with img (pixels, layout, sBIT). */
static void check_same(const png_image *img, const unsigned char *png, size_t len, int sbit)
{
    png_image back;
    int rc = png_decode(png, len, &back);
    FZ_CHECK(rc == 0);
    FZ_CHECK(back.width == img->width && back.height == img->height);
    FZ_CHECK(back.bit_depth == img->bit_depth && back.channels == img->channels);
    FZ_CHECK(back.color_type == img->color_type && back.len == img->len);
    FZ_CHECK(memcmp(back.pixels, img->pixels, img->len) == 0);
    FZ_CHECK(back.sbit == sbit);
    png_image_free(&back);
}

static void roundtrip(const png_image *img)
{
    unsigned char *png = NULL;
    size_t len = 0;
    int sbit = img->sbit >= 1 && img->sbit <= img->bit_depth ? img->sbit : 0;
    switch (img->color_type) {
    case PNG_COLOR_GRAY:
        FZ_CHECK(png_encode_gray(img->pixels, img->width, img->height, img->bit_depth, sbit,
                                 PNG_COMPRESSION_DEFAULT, &png, &len) == 0);
        check_same(img, png, len, sbit);
        free(png);
        for (int level = PNG_DEFLATE_LITERALS; level <= 1; level += 3) {
            FZ_CHECK(png_encode_gray_deflate(img->pixels, img->width, img->height, img->bit_depth,
                                             sbit, level, &png, &len) == 0);
            check_same(img, png, len, sbit);
            free(png);
        }
        break;
    case PNG_COLOR_GRAY_ALPHA:
        if (img->bit_depth != 8)
            return;
        FZ_CHECK(png_encode_gray_alpha(img->pixels, img->width, img->height,
                                       PNG_COMPRESSION_DEFAULT, &png, &len) == 0);
        check_same(img, png, len, 0);
        free(png);
        break;
    case PNG_COLOR_RGBA:
        if (img->bit_depth != 8)
            return;
        FZ_CHECK(png_encode_rgba(img->pixels, img->width, img->height, PNG_COMPRESSION_DEFAULT,
                                 &png, &len) == 0);
        check_same(img, png, len, 0);
        free(png);
        FZ_CHECK(png_encode_rgba_deflate(img->pixels, img->width, img->height, PNG_DEFLATE_LITERALS,
                                         &png, &len) == 0);
        check_same(img, png, len, 0);
        free(png);
        break;
    default:
        break;
    }
}

static void thumbnail(const png_image *img)
{
    unsigned char *png = NULL;
    size_t len = 0;
    FZ_CHECK(png_thumbnail_png(img, 50, 40, &png, &len) == 0);
    uint32_t tw, th;
    png_thumbnail_size(img->width, img->height, 50, 40, &tw, &th);
    FZ_CHECK(tw >= 1 && th >= 1 && tw <= 50 && th <= 40);
    png_image t;
    FZ_CHECK(png_decode(png, len, &t) == 0);
    FZ_CHECK(t.width == tw && t.height == th && t.bit_depth == 8 && t.channels == 1);
    png_image_free(&t);
    free(png);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    png_image img;
    int rc = png_decode(data, size, &img);
    if (rc != 0) {
        FZ_CHECK(rc == -EINVAL || rc == -E2BIG || rc == -ENOMEM);
        FZ_CHECK(img.pixels == NULL);
        return 0;
    }
    FZ_CHECK(img.width >= 1 && img.height >= 1 && img.width <= PNG_MAX_DIM &&
             img.height <= PNG_MAX_DIM && (uint64_t)img.width * img.height <= PNG_MAX_PIXELS);
    FZ_CHECK(img.bit_depth == 8 || img.bit_depth == 16);
    static const int channels_of[7] = {1, 0, 3, 0, 2, 0, 4};
    FZ_CHECK(img.color_type >= 0 && img.color_type <= 6 && img.color_type != 1 &&
             img.color_type != 3 && img.color_type != 5);
    FZ_CHECK(img.channels == channels_of[img.color_type]);
    FZ_CHECK(img.stride == (size_t)img.width * (size_t)img.channels * (size_t)(img.bit_depth / 8));
    FZ_CHECK(img.len == (size_t)img.height * img.stride);
    FZ_CHECK(img.sbit >= 0 && img.sbit <= 16);
    fz_touch(img.pixels, img.len);
    if (img.len <= ROUNDTRIP_MAX) {
        roundtrip(&img);
        if (img.color_type == PNG_COLOR_GRAY)
            thumbnail(&img);
    }
    png_image_free(&img);
    return 0;
}
