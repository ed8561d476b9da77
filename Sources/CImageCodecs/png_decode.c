#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "CImageCodecs.h"
#include "libraries.h"

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t offset;
    char *message;
    size_t message_size;
} png_source;

static void on_png_error(png_structp png, png_const_charp text) {
    png_source *source = png_get_error_ptr(png);
    snprintf(source->message, source->message_size, "%s", text);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp text) {
    // Warnings concern ancillary chunks that libpng then ignores; the pixels are unaffected.
    (void)png;
    (void)text;
}

static void read_from_memory(png_structp png, png_bytep target, png_size_t count) {
    png_source *source = png_get_io_ptr(png);
    if (count > source->size - source->offset) {
        png_error(png, "the PNG file is truncated");
    }
    memcpy(target, source->data + source->offset, count);
    source->offset += count;
}

void smimg_image_free(smimg_image *image) {
    if (!image) return;
    free(image->pixels);
    free(image->icc_profile);
    free(image->exif);
    free(image->rendering_box);
    memset(image, 0, sizeof *image);
}

int smimg_same_samples(const uint8_t *a, uint32_t depth_a, const uint8_t *b, uint32_t depth_b, size_t samples) {
    if (samples == 0) return 1;
    if (depth_a == depth_b) return memcmp(a, b, samples * (size_t)(depth_a / 8)) == 0;
    const uint8_t *narrow = depth_a == 8 ? a : b, *wide = depth_a == 8 ? b : a;
    for (size_t i = 0; i < samples; i++) {
        if (wide[2 * i] != narrow[i] || wide[2 * i + 1] != narrow[i]) return 0;
    }
    return 1;
}

// Whether every chunk up to IEND fits in the file, else a message naming the first that does not.
// libpng 1.6.39 allocates an ancillary chunk's declared length before reading it, past its
// chunk_malloc_max (which only warns for those): a 284-byte file declaring a 512 MiB tEXt made it
// allocate 512 MiB. Such a file fails as truncated either way; this fails it before the allocation.
static int chunks_fit(const uint8_t *data, size_t size, char *message, size_t message_size) {
    size_t offset = 8;
    while (size - offset >= 8) {
        const uint8_t *header = data + offset;
        uint32_t length = (uint32_t)header[0] << 24 | (uint32_t)header[1] << 16 | (uint32_t)header[2] << 8 | header[3];
        size_t remaining = size - offset - 8;
        // The data and its 4-byte CRC.
        if ((size_t)length > remaining || remaining - length < 4) {
            int named = 1;
            for (int i = 4; i < 8; i++) {
                if (!((header[i] >= 'A' && header[i] <= 'Z') || (header[i] >= 'a' && header[i] <= 'z'))) named = 0;
            }
            if (named) {
                snprintf(message, message_size, "the PNG file is truncated: its %.4s chunk declares %u bytes, and %zu follow",
                         (const char *)header + 4, (unsigned)length, remaining);
            } else {
                snprintf(message, message_size, "the PNG file is truncated: a chunk declares %u bytes, and %zu follow",
                         (unsigned)length, remaining);
            }
            return 0;
        }
        if (memcmp(header + 4, "IEND", 4) == 0) break;
        offset += 12 + (size_t)length;
    }
    return 1;
}

// smimg_png_decode, or with `expected` (then `out` gets no pixels) the comparison of smimg_png_matches.
static int decode_png(const uint8_t *data, size_t size, const smimg_limits *limits, smimg_image *out,
                      const uint8_t *expected, uint32_t expected_width, uint32_t expected_height, int expected_depth,
                      int *same, char *message, size_t message_size) {
    memset(out, 0, sizeof *out);
    out->srgb_intent = -1;
    png_source source = {data, size, 0, message, message_size};
    if (size < 8 || png_sig_cmp(data, 0, 8) != 0) {
        snprintf(message, message_size, "not a PNG file");
        return SMIMG_ERROR;
    }
    if (!chunks_fit(data, size, message, message_size)) return SMIMG_ERROR;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &source, on_png_error, on_png_warning);
    if (!png) return SMIMG_NO_MEMORY;
    png_infop info = png_create_info_struct(png);
    png_bytep *volatile rows = NULL;
    uint8_t *volatile scratch = NULL;
    volatile int status = SMIMG_ERROR;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return SMIMG_NO_MEMORY;
    }
    if (setjmp(png_jmpbuf(png))) {
        free(rows);
        free(scratch);
        smimg_image_free(out);
        png_destroy_read_struct(&png, &info, NULL);
        return status;
    }
    png_set_read_fn(png, &source, read_from_memory);
    // Bounds libpng's own allocations for compressed ancillary chunks (iCCP, zTXt, ...).
    png_set_chunk_malloc_max(png, 16u << 20);
    // The size limits are checked below, so that they report as such.
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_read_info(png, info);

    png_uint_32 width, height;
    int bit_depth, color_type, interlace;
    png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, &interlace, NULL, NULL);
    if (!smimg_within_limits(limits, width, height)) {
        status = SMIMG_TOO_LARGE;
        snprintf(message, message_size, "%ux%u pixels, beyond the limit of %ux%u and %llu pixels", (unsigned)width,
                 (unsigned)height, limits->max_width, limits->max_height, (unsigned long long)limits->max_pixels);
        png_longjmp(png, 1);
    }
    out->width = width;
    out->height = height;
    out->source_color_type = (uint32_t)color_type;
    out->source_bit_depth = (uint32_t)bit_depth;
    out->source_interlaced = interlace != PNG_INTERLACE_NONE;

    png_charp icc_name;
    int compression;
    png_bytep icc;
    png_uint_32 icc_size;
    if (png_get_iCCP(png, info, &icc_name, &compression, &icc, &icc_size) && icc_size > 0) {
        out->icc_profile = malloc(icc_size);
        if (!out->icc_profile) { status = SMIMG_NO_MEMORY; png_error(png, "out of memory"); }
        memcpy(out->icc_profile, icc, icc_size);
        out->icc_profile_size = icc_size;
    }
    int intent;
    if (png_get_sRGB(png, info, &intent)) out->srgb_intent = intent;
    png_fixed_point gamma;
    if (png_get_gAMA_fixed(png, info, &gamma) && gamma > 0) out->gamma = (uint32_t)gamma;
    png_fixed_point c[8];
    if (png_get_cHRM_fixed(png, info, &c[0], &c[1], &c[2], &c[3], &c[4], &c[5], &c[6], &c[7])) {
        int valid = 1;
        for (int i = 0; i < 8; i++) {
            if (c[i] < 0) valid = 0;
            out->chrm[i] = (uint32_t)c[i];
        }
        out->has_chrm = valid;
    }
#ifdef PNG_eXIf_SUPPORTED
    png_bytep exif;
    png_uint_32 exif_size;
    if (png_get_eXIf_1(png, info, &exif_size, &exif) && exif_size > 0) {
        out->exif = malloc(exif_size);
        if (!out->exif) { status = SMIMG_NO_MEMORY; png_error(png, "out of memory"); }
        memcpy(out->exif, exif, exif_size);
        out->exif_size = exif_size;
    }
#endif

    // Every image becomes RGBA at 8 or 16 bits: palette and low-depth grey expand (by bit
    // replication, as every decoder does), tRNS becomes alpha, grey becomes RGB.
    png_set_expand(png);
    if (!(color_type & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(png);
    if (!(color_type & PNG_COLOR_MASK_ALPHA) && !png_get_valid(png, info, PNG_INFO_tRNS)) {
        png_set_add_alpha(png, 0xffff, PNG_FILLER_AFTER);
    }
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int depth = png_get_bit_depth(png, info);
    size_t row_bytes = png_get_rowbytes(png, info);
    if (png_get_channels(png, info) != 4 || (depth != 8 && depth != 16) || row_bytes != (size_t)width * 4 * (depth / 8)) {
        png_error(png, "unexpected layout after expansion");
    }
    out->bit_depth = (uint32_t)depth;
    if (expected && interlace == PNG_INTERLACE_NONE) {
        // Row by row into one row's memory, each compared as it comes: no copy of the image.
        *same = width == expected_width && height == expected_height;
        scratch = malloc(row_bytes);
        if (!scratch) { status = SMIMG_NO_MEMORY; png_error(png, "out of memory"); }
        size_t expected_row_bytes = (size_t)width * 4 * (size_t)(expected_depth / 8);
        for (png_uint_32 y = 0; y < height && *same; y++) {
            png_read_row(png, scratch, NULL);
            *same = smimg_same_samples(scratch, (uint32_t)depth, expected + (size_t)y * expected_row_bytes, (uint32_t)expected_depth,
                                       (size_t)width * 4);
        }
        if (*same) png_read_end(png, NULL);
        free(scratch);
        png_destroy_read_struct(&png, &info, NULL);
        return SMIMG_OK;
    }
    out->pixels_size = row_bytes * height;
    out->pixels = malloc(out->pixels_size);
    rows = malloc(sizeof(png_bytep) * height);
    if (!out->pixels || !rows) { status = SMIMG_NO_MEMORY; png_error(png, "out of memory"); }
    for (png_uint_32 y = 0; y < height; y++) rows[y] = out->pixels + (size_t)y * row_bytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    if (expected) {
        // An interlaced file comes whole; compared in one go.
        *same = width == expected_width && height == expected_height
            && smimg_same_samples(out->pixels, (uint32_t)depth, expected, (uint32_t)expected_depth, (size_t)width * height * 4);
        smimg_image_free(out);
    }
    return SMIMG_OK;
}

int smimg_png_decode(const uint8_t *data, size_t size, const smimg_limits *limits,
                     smimg_image *out, char *message, size_t message_size) {
    return decode_png(data, size, limits, out, NULL, 0, 0, 0, NULL, message, message_size);
}

int smimg_png_matches(const uint8_t *data, size_t size, const smimg_limits *limits, const uint8_t *expected,
                      uint32_t width, uint32_t height, uint32_t bit_depth, int *same, char *message, size_t message_size) {
    smimg_image unused;
    int status = decode_png(data, size, limits, &unused, expected, width, height, (int)bit_depth, same, message, message_size);
    smimg_image_free(&unused);
    return status;
}
