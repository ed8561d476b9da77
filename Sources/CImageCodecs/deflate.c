#include <libdeflate.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zopfli/zopfli.h>
#include <zopfli/zlib_container.h>
#include <zlib.h>
#include "CImageCodecs.h"
#include "libraries.h"

int smimg_deflate(const uint8_t *data, size_t size, int level, int format, uint8_t *out, size_t capacity, size_t *out_size) {
    struct libdeflate_compressor *compressor = libdeflate_alloc_compressor(level);
    if (!compressor) return SMIMG_NO_MEMORY;
    size_t written = format == SMIMG_RAW_DEFLATE
        ? libdeflate_deflate_compress(compressor, data, size, out, capacity)
        : libdeflate_zlib_compress(compressor, data, size, out, capacity);
    libdeflate_free_compressor(compressor);
    if (written == 0) return SMIMG_EXCEEDED;
    *out_size = written;
    return SMIMG_OK;
}

int smimg_deflate_unfinish(uint8_t *stream, size_t size, size_t capacity, size_t *out_size) {
    // zlib counts in uInt: a part is never that large here (images are bounded far below).
    if (size == 0 || size > UINT_MAX) return SMIMG_ERROR;
    if (capacity < size + 5) return SMIMG_EXCEEDED;
    z_stream inflater;
    memset(&inflater, 0, sizeof inflater);
    if (inflateInit2(&inflater, -MAX_WBITS) != Z_OK) return SMIMG_NO_MEMORY;
    inflater.next_in = stream;
    inflater.avail_in = (uInt)size;
    // Where the header of the block being decoded starts: its first bit is BFINAL. The walk
    // (inflate with Z_BLOCK, which stops after every block, as zlib's examples/gzjoin.c does)
    // keeps the output in a scratch buffer: only the block boundaries are wanted.
    size_t header_byte = 0;
    unsigned header_mask = 1;
    // The unused bits of the last byte when the last block ended (inflate reports them there,
    // not with the stream's end), and the bytes consumed by then.
    unsigned end_unused = 0;
    size_t end_consumed = 0;
    uint8_t scratch[1 << 15];
    int status = SMIMG_ERROR;
    for (;;) {
        inflater.next_out = scratch;
        inflater.avail_out = sizeof scratch;
        int result = inflate(&inflater, Z_BLOCK);
        if (result == Z_STREAM_END) {
            status = SMIMG_OK;
            break;
        }
        if (result != Z_OK) break;  // damaged, or truncated (Z_BUF_ERROR with no input left)
        if (inflater.data_type & 128) {
            // At a block boundary: the next header, if any, starts at the first bit not yet used.
            unsigned unused = inflater.data_type & 7;
            size_t consumed = (size_t)(inflater.next_in - stream);
            if (inflater.data_type & 64) {
                // After the last block (inflate stops once more, with 64 set, before its end).
                end_unused = unused;
                end_consumed = consumed;
            } else if (unused != 0) {
                header_byte = consumed - 1;
                header_mask = 0x100u >> unused;
            } else {
                header_byte = consumed;
                header_mask = 1;
            }
        }
    }
    inflateEnd(&inflater);
    // A stream with anything after its final block is not one stream.
    if (status != SMIMG_OK || end_consumed != size) return SMIMG_ERROR;
    stream[header_byte] &= (uint8_t)~header_mask;
    // An empty non-final stored block after the last one: its three header bits (all zero) in
    // the last byte's unused bits when they fit, else in one more byte; then the boundary and
    // LEN 0, NLEN 0xffff. The stream now ends byte-aligned, open for more blocks.
    size_t end = size;
    stream[end - 1] &= (uint8_t)((0x100u >> end_unused) - 1);
    if (end_unused < 3) stream[end++] = 0;
    stream[end++] = 0x00;
    stream[end++] = 0x00;
    stream[end++] = 0xff;
    stream[end++] = 0xff;
    *out_size = end;
    return SMIMG_OK;
}

int smimg_zopfli(const uint8_t *data, size_t size, int iterations, uint8_t **out, size_t *out_size) {
    ZopfliOptions options;
    ZopfliInitOptions(&options);
    options.numiterations = iterations;
    // No cap on the blocks zopfli splits a stream into (its default stops at 15): on the tuning
    // corpus's small images 0.025% fewer bytes in the same time.
    options.blocksplittingmax = 0;
    unsigned char *result = NULL;
    size_t result_size = 0;
    ZopfliZlibCompress(&options, data, size, &result, &result_size);
    if (!result) return SMIMG_NO_MEMORY;
    *out = result;
    *out_size = result_size;
    return SMIMG_OK;
}

void smimg_free(void *pointer) {
    free(pointer);
}

int smimg_inflate(const uint8_t *data, size_t size, int format, uint8_t *out, size_t expected_size) {
    struct libdeflate_decompressor *decompressor = libdeflate_alloc_decompressor();
    if (!decompressor) return SMIMG_NO_MEMORY;
    size_t consumed = 0, produced = 0;
    enum libdeflate_result result = format == SMIMG_RAW_DEFLATE
        ? libdeflate_deflate_decompress_ex(decompressor, data, size, out, expected_size, &consumed, &produced)
        : libdeflate_zlib_decompress_ex(decompressor, data, size, out, expected_size, &consumed, &produced);
    libdeflate_free_decompressor(decompressor);
    switch (result) {
    case LIBDEFLATE_SUCCESS:
        // Exactly the declared size from exactly the given bytes: anything else is damage.
        return consumed == size && produced == expected_size ? SMIMG_OK : SMIMG_ERROR;
    case LIBDEFLATE_INSUFFICIENT_SPACE:
        return SMIMG_EXCEEDED;
    default:
        return SMIMG_ERROR;
    }
}

uint32_t smimg_crc32(uint32_t crc, const uint8_t *data, size_t size) {
    return libdeflate_crc32(crc, data, size);
}

uint32_t smimg_adler32(uint32_t adler, const uint8_t *data, size_t size) {
    return libdeflate_adler32(adler, data, size);
}
