// secmail's only contact with libpng, libjpeg-turbo, libdeflate, zopfli, zlib (compression) and libjxl. Every function returns a status
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
    SMIMG_EXCEEDED = 5,       // smimg_deflate/inflate: the output would not fit the given capacity
};

// Loads libpng, libjpeg-turbo, libdeflate, zopfli and zlib (once, for the whole process) and
// answers 1; or 0, with the loader's reason in `message` (when given), if one of them is missing.
// The functions below that decode, filter, compress, decompress or check-sum use them, and are
// called only after this answered 1; smimg_jxl_* load libjxl themselves.
int smimg_libraries_load(char *message, size_t message_size);

typedef struct {
    uint32_t max_width;
    uint32_t max_height;
    uint64_t max_pixels;
} smimg_limits;

// Whether an image of `width` x `height` pixels may be decoded: each side and the pixel count
// within `limits`. 1 or 0.
static inline int smimg_within_limits(const smimg_limits *limits, uint64_t width, uint64_t height) {
    return width <= limits->max_width && height <= limits->max_height && width * height <= limits->max_pixels;
}

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
    uint8_t *rendering_box;       // JPEG XL: the content of its SMIMG_JXL_RENDERING_BOX, or NULL
    size_t rendering_box_size;
} smimg_image;

int smimg_png_decode(const uint8_t *data, size_t size, const smimg_limits *limits,
                     smimg_image *out, char *message, size_t message_size);
// Whether `samples` samples of `a` (`depth_a` bits, 8 or 16; 16-bit big-endian) equal those of
// `b` (`depth_b` bits): an 8-bit sample v equals the 16-bit sample v·257 (the exact scaling every
// PNG decoder applies). 1 or 0.
int smimg_same_samples(const uint8_t *a, uint32_t depth_a, const uint8_t *b, uint32_t depth_b, size_t samples);

// Decodes a PNG as smimg_png_decode does and compares its pixels, row by row as libpng gives
// them (no copy of the image is kept), with `expected`: `width` x `height` RGBA pixels of
// `bit_depth` (8 or 16) bits a sample, where an 8-bit sample v equals the 16-bit sample v·257.
// SMIMG_OK with *same 1 or 0; otherwise the status smimg_png_decode would give.
int smimg_png_matches(const uint8_t *data, size_t size, const smimg_limits *limits, const uint8_t *expected,
                      uint32_t width, uint32_t height, uint32_t bit_depth, int *same, char *message, size_t message_size);
int smimg_jpeg_decode(const uint8_t *data, size_t size, const smimg_limits *limits,
                      smimg_image *out, char *message, size_t message_size);
// A JPEG's size from its headers alone (nothing decoded): SMIMG_ERROR when libjpeg cannot read them.
int smimg_jpeg_size(const uint8_t *data, size_t size, uint32_t *width, uint32_t *height);
void smimg_image_free(smimg_image *image);

enum {
    SMIMG_FILTER_MINSUM = 5,   // per row, the filter with the smallest sum of absolute values (libpng's)
    SMIMG_FILTER_ENTROPY = 6,  // per row, the filter whose bytes have the lowest Shannon entropy
    SMIMG_FILTER_BIGRAMS = 7,  // per row, the filter with the fewest distinct pairs of neighbouring bytes
    SMIMG_FILTER_BRUTE = 8,    // per row, the filter that deflates shortest after the rows before it
    SMIMG_FILTER_QUICK_BRUTE = 9, // the same judged by libdeflate's fastest level after fewer rows
};

// The samples of channels `channels[0..channel_count)` (0 red or grey, 1 green, 2 blue, 3 alpha)
// of `pixel_count` RGBA pixels whose samples have `sample_bytes` bytes (1, or 2 big-endian), in
// pixel order into `out`: whole (`out_sample_bytes` 2) or their first byte only (1, for 16-bit
// samples that are all v·257).
void smimg_gather_channels(const uint8_t *rgba, size_t pixel_count, size_t sample_bytes, const uint8_t *channels,
                           size_t channel_count, size_t out_sample_bytes, uint8_t *out);

// What decides a PNG layout, over `pixel_count` RGBA pixels of `sample_bytes` bytes a sample
// (1, or 2 big-endian): every 16-bit sample is v·257 (always 1 for 8-bit samples), every pixel
// is opaque, every pixel is grey (red = green = blue).
typedef struct {
    int fits_eight_bits;
    int opaque;
    int grey;
} smimg_sample_facts_result;
void smimg_sample_facts(const uint8_t *rgba, size_t pixel_count, size_t sample_bytes, smimg_sample_facts_result *facts);

// PNG filtering of `height` rows of `row_bytes` raw bytes each (`bpp` bytes per complete pixel,
// at least 1) into `out` (height * (row_bytes + 1) bytes). filter 0-4 applies that filter to
// every row; SMIMG_FILTER_* picks one per row by that heuristic.
int smimg_png_filter(const uint8_t *raw, size_t height, size_t row_bytes, size_t bpp,
                     int filter, uint8_t *out);

enum {
    SMIMG_ZLIB = 0,         // zlib container (PNG IDAT, iCCP)
    SMIMG_RAW_DEFLATE = 1,  // bare DEFLATE (compressed attachments)
};

// libdeflate at `level` (1-12) into `out`. SMIMG_EXCEEDED when the stream does not fit in
// `capacity` bytes (the caller's best size so far, so losing trials are dropped).
int smimg_deflate(const uint8_t *data, size_t size, int level, int format, uint8_t *out, size_t capacity,
                  size_t *out_size);

// Makes a complete bare DEFLATE stream (`size` bytes in `stream`) the leading part of a longer
// one, in place: the final block's BFINAL bit is cleared and an empty stored block appended (at
// most 5 more bytes, so `capacity` must be at least size + 5), so the stream ends byte-aligned
// with no final block and another part's blocks may follow. SMIMG_ERROR when `stream` is not
// exactly one valid DEFLATE stream.
int smimg_deflate_unfinish(uint8_t *stream, size_t size, size_t capacity, size_t *out_size);

// zopfli's zlib stream of `data` (`iterations` passes of its optimal parser), in `*out`, which
// the caller frees with smimg_free. Slow: the thorough level's final stream only.
int smimg_zopfli(const uint8_t *data, size_t size, int iterations, uint8_t **out, size_t *out_size);
void smimg_free(void *pointer);

// Decompresses a zlib or raw DEFLATE stream that must give exactly `expected_size` bytes into
// `out` (that many bytes): SMIMG_EXCEEDED when it would give more (a decompression bomb stops
// at the bound), SMIMG_ERROR when it is damaged, shorter, or has bytes after its end.
int smimg_inflate(const uint8_t *data, size_t size, int format, uint8_t *out, size_t expected_size);

// Loads libjxl now, once (later calls return at once): 1 when it is there to use. Every JPEG XL
// function loads it on first use otherwise.
int smimg_jxl_load(void);

// JPEG XL (libjxl): memory and threads bounded by the caller.
typedef struct {
    size_t memory_bytes;   // libjxl's allocations past this fail (and the call with them)
    size_t threads;
} smimg_jxl_bounds;

// Lossless recompression of a JPEG file: the result decodes to the same pixels and reconstructs
// the JPEG bit for bit. `chroma_from_luma` 0 turns off libjxl's prediction of the chroma DCT
// coefficients from the luma ones. SMIMG_UNSUPPORTED for a JPEG libjxl cannot take as it is.
// `*out` is freed with smimg_free.
int smimg_jxl_from_jpeg(const uint8_t *jpeg, size_t size, const smimg_jxl_bounds *bounds, int effort, int chroma_from_luma,
                        uint8_t **out, size_t *out_size);

// The box type of secmail's rendering information in a JPEG XL file (docs/PROTOCOL.md), and the
// most a decoder takes of it (decompressed).
#define SMIMG_JXL_RENDERING_BOX "smrd"
#define SMIMG_JXL_RENDERING_BOX_LIMIT (4u << 20)

// Lossless (modular) coding of pixels: `channels` 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA, samples
// of `bit_depth` 8 or 16 bits (16 big-endian), rows without padding, sRGB. With `box_size` > 0,
// `box` goes in a Brotli-compressed SMIMG_JXL_RENDERING_BOX. `patches` 0 turns off the search for
// repeated patches (text, icons), which libjxl otherwise runs from effort 7. `learning_percent`
// is the share of pixels libjxl learns its context tree from (its default, 50, when negative).
int smimg_jxl_encode_pixels(const uint8_t *pixels, uint32_t width, uint32_t height, uint32_t bit_depth, uint32_t channels,
                            const uint8_t *box, size_t box_size, const smimg_jxl_bounds *bounds, int effort, int patches,
                            int learning_percent, uint8_t **out, size_t *out_size);

// Decodes a JPEG XL stream within `limits`: with `reconstruct_jpeg`, the JPEG it was made from
// (`*jpeg`, freed with smimg_free; SMIMG_UNSUPPORTED when it was not made from one), else its
// pixels as RGBA 8 or 16 bits in `image` (free with smimg_image_free), with the content of its
// rendering box if it has one (two are an error, as is one over the limit).
int smimg_jxl_decode(const uint8_t *data, size_t size, const smimg_limits *limits, const smimg_jxl_bounds *bounds,
                     int reconstruct_jpeg, smimg_image *image, uint8_t **jpeg, size_t *jpeg_size,
                     char *message, size_t message_size);

uint32_t smimg_crc32(uint32_t crc, const uint8_t *data, size_t size);
uint32_t smimg_adler32(uint32_t adler, const uint8_t *data, size_t size);

#endif
