// secmail's only contact with libpng, libjpeg-turbo and zlib. Every function returns a status
// code; libpng's and libjpeg's setjmp/longjmp error handling never leaves this target.
#ifndef SECMAIL_IMAGE_CODECS_H
#define SECMAIL_IMAGE_CODECS_H

#include <stddef.h>
#include <stdint.h>

enum {
    SMIMG_OK = 0,
    SMIMG_ERROR = 1,          // malformed, truncated or corrupt data; see the message
    SMIMG_TOO_LARGE = 2,      // beyond the limits (width, height, pixels)
    SMIMG_UNSUPPORTED = 3,    // valid but not supported (e.g. CMYK JPEG)
    SMIMG_NO_MEMORY = 4,
    SMIMG_EXCEEDED = 5,       // smimg_deflate: the output would not fit the given capacity
};

typedef struct {
    uint32_t max_width;
    uint32_t max_height;
    uint64_t max_pixels;
} smimg_limits;

// A decoded image: RGBA, 8 or 16 bits per sample (16-bit samples big-endian), rows top to bottom
// without padding, plus what the source said about rendering. Free with smimg_image_free.
typedef struct {
    uint32_t width;
    uint32_t height;
    uint32_t bit_depth;
    uint8_t *pixels;
    size_t pixels_size;
    // Facts about the source.
    uint32_t source_color_type;   // PNG colour type; for JPEG the number of components
    uint32_t source_bit_depth;
    uint32_t source_interlaced;   // PNG Adam7, or progressive JPEG
    // Rendering information kept in optimised output.
    uint8_t *icc_profile;         // malloc'd or NULL
    size_t icc_profile_size;
    int32_t srgb_intent;          // -1 when absent
    uint32_t gamma;               // gAMA * 100000, 0 when absent
    int32_t has_chrm;
    uint32_t chrm[8];             // white x,y, red x,y, green x,y, blue x,y (* 100000)
    uint8_t *exif;                // raw EXIF (TIFF) bytes or NULL, for the orientation tag
    size_t exif_size;
} smimg_image;

int smimg_png_decode(const uint8_t *data, size_t size, const smimg_limits *limits,
                     smimg_image *out, char *message, size_t message_size);
int smimg_jpeg_decode(const uint8_t *data, size_t size, const smimg_limits *limits,
                      smimg_image *out, char *message, size_t message_size);
void smimg_image_free(smimg_image *image);

// PNG filtering of `height` rows of `row_bytes` raw bytes each (`bpp` bytes per complete pixel,
// at least 1) into `out` (height * (row_bytes + 1) bytes). filter 0-4 applies that filter to
// every row; 5 picks per row the filter with the smallest sum of absolute values (libpng's
// heuristic).
void smimg_png_filter(const uint8_t *raw, size_t height, size_t row_bytes, size_t bpp,
                      int filter, uint8_t *out);

// zlib stream of `data` with the given parameters into `out`. SMIMG_EXCEEDED when the stream
// does not fit in `capacity` bytes (the caller's best size so far, so losing trials stop early),
// or, with `project`, when a third of the way in it is on course to end 8% above it.
int smimg_deflate(const uint8_t *data, size_t size, int level, int mem_level, int strategy,
                  uint8_t *out, size_t capacity, int project, size_t *out_size);

uint32_t smimg_crc32(uint32_t crc, const uint8_t *data, size_t size);

#endif
