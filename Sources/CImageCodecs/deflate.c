#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "CImageCodecs.h"

static inline uint8_t paeth(uint8_t a, uint8_t b, uint8_t c) {
    int p = (int)a + b - c;
    int pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    if (pa <= pb && pa <= pc) return a;
    return pb <= pc ? b : c;
}

static void filter_row(const uint8_t *row, const uint8_t *previous, size_t n, size_t bpp, int filter, uint8_t *out) {
    out[0] = (uint8_t)filter;
    out++;
    for (size_t i = 0; i < n; i++) {
        uint8_t a = i >= bpp ? row[i - bpp] : 0;
        uint8_t b = previous ? previous[i] : 0;
        uint8_t c = (previous && i >= bpp) ? previous[i - bpp] : 0;
        uint8_t predicted;
        switch (filter) {
        case 1: predicted = a; break;
        case 2: predicted = b; break;
        case 3: predicted = (uint8_t)(((unsigned)a + b) / 2); break;
        case 4: predicted = paeth(a, b, c); break;
        default: predicted = 0; break;
        }
        out[i] = (uint8_t)(row[i] - predicted);
    }
}

static uint64_t absolute_sum(const uint8_t *filtered, size_t n) {
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) sum += filtered[i] < 128 ? filtered[i] : 256 - filtered[i];
    return sum;
}

void smimg_png_filter(const uint8_t *raw, size_t height, size_t row_bytes, size_t bpp, int filter, uint8_t *out) {
    for (size_t y = 0; y < height; y++) {
        const uint8_t *row = raw + y * row_bytes;
        const uint8_t *previous = y > 0 ? row - row_bytes : NULL;
        uint8_t *target = out + y * (row_bytes + 1);
        if (filter != 5) {
            filter_row(row, previous, row_bytes, bpp, filter, target);
            continue;
        }
        // Adaptive: filter into the output row, keep the best so far there.
        uint64_t best = UINT64_MAX;
        int best_filter = 0;
        for (int candidate = 0; candidate <= 4; candidate++) {
            filter_row(row, previous, row_bytes, bpp, candidate, target);
            uint64_t sum = absolute_sum(target + 1, row_bytes);
            if (sum < best) {
                best = sum;
                best_filter = candidate;
            }
        }
        if (best_filter != 4) filter_row(row, previous, row_bytes, bpp, best_filter, target);
    }
}

int smimg_deflate(const uint8_t *data, size_t size, int level, int mem_level, int strategy,
                  uint8_t *out, size_t capacity, int project, size_t *out_size) {
    z_stream stream;
    memset(&stream, 0, sizeof stream);
    if (deflateInit2(&stream, level, Z_DEFLATED, 15, mem_level, strategy) != Z_OK) return SMIMG_ERROR;
    stream.next_out = out;
    stream.avail_out = capacity > (1u << 30) ? (1u << 30) : (uInt)capacity;
    size_t given_out = stream.avail_out;
    size_t consumed = 0;
    // Input goes in in slices, so a losing trial can be stopped between them.
    const size_t slice = 256 * 1024;
    int result = Z_OK;
    while (result != Z_STREAM_END) {
        if (stream.avail_in == 0 && consumed < size) {
            size_t count = size - consumed < slice ? size - consumed : slice;
            stream.next_in = (Bytef *)data + consumed;
            stream.avail_in = (uInt)count;
            consumed += count;
            // Projection: with a third of the input read, output growing at this rate would end
            // more than 8% above the capacity (the best so far): stop now.
            if (project && consumed > slice && consumed * 3 >= size && consumed < size) {
                double projected = (double)stream.total_out * (double)size / (double)stream.total_in;
                if (projected > (double)capacity * 1.08) {
                    deflateEnd(&stream);
                    return SMIMG_EXCEEDED;
                }
            }
        }
        if (stream.avail_out == 0) {
            if (given_out >= capacity) {
                deflateEnd(&stream);
                return SMIMG_EXCEEDED;
            }
            size_t more = capacity - given_out > (1u << 30) ? (1u << 30) : capacity - given_out;
            stream.avail_out = (uInt)more;
            given_out += more;
        }
        result = deflate(&stream, consumed == size && stream.avail_in == 0 ? Z_FINISH : Z_NO_FLUSH);
        if (result != Z_OK && result != Z_STREAM_END && result != Z_BUF_ERROR) {
            deflateEnd(&stream);
            return SMIMG_ERROR;
        }
    }
    *out_size = (size_t)stream.total_out;
    deflateEnd(&stream);
    return SMIMG_OK;
}

uint32_t smimg_crc32(uint32_t crc, const uint8_t *data, size_t size) {
    uLong value = crc;
    while (size > 0) {
        uInt slice = size > (1u << 30) ? (1u << 30) : (uInt)size;
        value = crc32(value, data, slice);
        data += slice;
        size -= slice;
    }
    return (uint32_t)value;
}
