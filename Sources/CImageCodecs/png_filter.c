#include <libdeflate.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "CImageCodecs.h"
#include "libraries.h"

void smimg_gather_channels(const uint8_t *rgba, size_t pixel_count, size_t sample_bytes, const uint8_t *channels,
                           size_t channel_count, size_t out_sample_bytes, uint8_t *out) {
    size_t pixel_bytes = 4 * sample_bytes;
    if (sample_bytes == 1 && channel_count == 3 && channels[0] == 0 && channels[1] == 1 && channels[2] == 2) {
        // RGB from RGBA, the common case (every opaque colour image): a loop the compiler unrolls.
        for (size_t i = 0; i < pixel_count; i++) {
            out[3 * i] = rgba[4 * i];
            out[3 * i + 1] = rgba[4 * i + 1];
            out[3 * i + 2] = rgba[4 * i + 2];
        }
        return;
    }
    for (size_t i = 0; i < pixel_count; i++) {
        const uint8_t *pixel = rgba + i * pixel_bytes;
        for (size_t c = 0; c < channel_count; c++) {
            const uint8_t *sample = pixel + channels[c] * sample_bytes;
            *out++ = sample[0];
            if (out_sample_bytes == 2) *out++ = sample[1];
        }
    }
}

void smimg_sample_facts(const uint8_t *rgba, size_t pixel_count, size_t sample_bytes, smimg_sample_facts_result *facts) {
    int fits = 1, opaque = 1, grey = 1;
    if (sample_bytes == 1) {
        // Branch-free per pixel, so the compiler vectorises it; a whole photo takes a few milliseconds.
        uint8_t alpha = 0xFF, colour = 0;
        for (size_t i = 0; i < pixel_count; i++) {
            const uint8_t *p = rgba + 4 * i;
            alpha &= p[3];
            colour |= (uint8_t)(p[0] ^ p[1]) | (uint8_t)(p[0] ^ p[2]);
        }
        opaque = alpha == 0xFF;
        grey = colour == 0;
    } else {
        for (size_t i = 0; i < pixel_count; i++) {
            const uint8_t *p = rgba + 8 * i;
            fits &= p[0] == p[1] && p[2] == p[3] && p[4] == p[5] && p[6] == p[7];
            opaque &= p[6] == 0xFF && p[7] == 0xFF;
            grey &= p[0] == p[2] && p[0] == p[4] && p[1] == p[3] && p[1] == p[5];
        }
    }
    facts->fits_eight_bits = fits;
    facts->opaque = opaque;
    facts->grey = grey;
}

static inline uint8_t paeth(uint8_t a, uint8_t b, uint8_t c) {
    int p = (int)a + b - c;
    int pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    if (pa <= pb && pa <= pc) return a;
    return pb <= pc ? b : c;
}

// One row through one filter. The filter is chosen outside the loops, and the first pixel (no
// left neighbour) apart, so each loop is branch-free and the compiler can vectorise it.
static void filter_row(const uint8_t *row, const uint8_t *previous, size_t n, size_t bpp, int filter, uint8_t *out) {
    out[0] = (uint8_t)filter;
    out++;
    size_t head = bpp < n ? bpp : n;
    switch (filter) {
    case 1:
        memcpy(out, row, head);
        for (size_t i = head; i < n; i++) out[i] = (uint8_t)(row[i] - row[i - bpp]);
        break;
    case 2:
        if (!previous) { memcpy(out, row, n); break; }
        for (size_t i = 0; i < n; i++) out[i] = (uint8_t)(row[i] - previous[i]);
        break;
    case 3:
        if (!previous) {
            memcpy(out, row, head);
            for (size_t i = head; i < n; i++) out[i] = (uint8_t)(row[i] - (row[i - bpp] >> 1));
            break;
        }
        for (size_t i = 0; i < head; i++) out[i] = (uint8_t)(row[i] - (previous[i] >> 1));
        for (size_t i = head; i < n; i++) out[i] = (uint8_t)(row[i] - (uint8_t)(((unsigned)row[i - bpp] + previous[i]) >> 1));
        break;
    case 4:
        if (!previous) {  // Paeth with no row above predicts the left neighbour.
            memcpy(out, row, head);
            for (size_t i = head; i < n; i++) out[i] = (uint8_t)(row[i] - row[i - bpp]);
            break;
        }
        for (size_t i = 0; i < head; i++) out[i] = (uint8_t)(row[i] - previous[i]);
        for (size_t i = head; i < n; i++) out[i] = (uint8_t)(row[i] - paeth(row[i - bpp], previous[i], previous[i - bpp]));
        break;
    default:
        memcpy(out, row, n);
        break;
    }
}

// Row scores of the heuristics: smaller is better.

static double absolute_sum(const uint8_t *filtered, size_t n) {
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) sum += filtered[i] < 128 ? filtered[i] : 256 - filtered[i];
    return (double)sum;
}

// Shannon entropy of the row's bytes, in bits (the filter byte included, as the deflater sees it).
static double entropy(const uint8_t *filtered, size_t n) {
    uint32_t counts[256] = {0};
    for (size_t i = 0; i < n; i++) counts[filtered[i]]++;
    double bits = 0;
    for (int value = 0; value < 256; value++) {
        if (counts[value]) bits -= counts[value] * log2((double)counts[value] / (double)n);
    }
    return bits;
}

// Distinct pairs of neighbouring bytes: fewer pairs leave LZ77 more repeats to find. `seen` is
// 65536 generation stamps; `generation` makes clearing it per candidate unnecessary.
static double distinct_bigrams(const uint8_t *filtered, size_t n, uint32_t *seen, uint32_t generation) {
    uint32_t distinct = 0;
    for (size_t i = 1; i < n; i++) {
        uint32_t pair = (uint32_t)filtered[i - 1] << 8 | filtered[i];
        if (seen[pair] != generation) {
            seen[pair] = generation;
            distinct++;
        }
    }
    return distinct;
}

// Brute force: each row takes the filter whose bytes, deflated at `level` after the
// `context_rows` rows chosen before it (the window a deflater would match in), give the shortest
// stream. The two settings in use (level 4 after four rows; level 1 after three) pick different
// rows, and on the tuning corpus each gave the smallest file on images where the other did not.
static int filter_brute(const uint8_t *raw, size_t height, size_t row_bytes, size_t bpp, int level, size_t context_rows,
                        uint8_t *out) {
    size_t line = row_bytes + 1;
    size_t window = (context_rows + 1) * line;
    size_t capacity = libdeflate_deflate_compress_bound(NULL, window);
    struct libdeflate_compressor *compressor = libdeflate_alloc_compressor(level);
    uint8_t *trial = malloc(window), *scratch = malloc(capacity), *candidate = malloc(line);
    if (!compressor || !trial || !scratch || !candidate) {
        libdeflate_free_compressor(compressor);
        free(trial); free(scratch); free(candidate);
        return SMIMG_NO_MEMORY;
    }
    for (size_t y = 0; y < height; y++) {
        const uint8_t *row = raw + y * row_bytes;
        const uint8_t *previous = y > 0 ? row - row_bytes : NULL;
        size_t context = y < context_rows ? y : context_rows;
        memcpy(trial, out + (y - context) * line, context * line);
        size_t best = SIZE_MAX;
        int best_filter = 0;
        for (int candidate_filter = 0; candidate_filter <= 4; candidate_filter++) {
            filter_row(row, previous, row_bytes, bpp, candidate_filter, candidate);
            memcpy(trial + context * line, candidate, line);
            size_t size = libdeflate_deflate_compress(compressor, trial, (context + 1) * line, scratch, capacity);
            if (size && size < best) {
                best = size;
                best_filter = candidate_filter;
            }
        }
        filter_row(row, previous, row_bytes, bpp, best_filter, out + y * line);
    }
    libdeflate_free_compressor(compressor);
    free(trial); free(scratch); free(candidate);
    return SMIMG_OK;
}

int smimg_png_filter(const uint8_t *raw, size_t height, size_t row_bytes, size_t bpp, int filter, uint8_t *out) {
    if (filter == SMIMG_FILTER_BRUTE) return filter_brute(raw, height, row_bytes, bpp, 4, 4, out);
    if (filter == SMIMG_FILTER_QUICK_BRUTE) return filter_brute(raw, height, row_bytes, bpp, 1, 3, out);
    uint32_t *seen = NULL;
    uint32_t generation = 0;
    if (filter == SMIMG_FILTER_BIGRAMS) {
        seen = calloc(65536, sizeof *seen);
        if (!seen) return SMIMG_NO_MEMORY;
    }
    for (size_t y = 0; y < height; y++) {
        const uint8_t *row = raw + y * row_bytes;
        const uint8_t *previous = y > 0 ? row - row_bytes : NULL;
        uint8_t *target = out + y * (row_bytes + 1);
        if (filter <= 4) {
            filter_row(row, previous, row_bytes, bpp, filter, target);
            continue;
        }
        // A heuristic: filter into the output row, keep the best score so far there.
        double best = INFINITY;
        int best_filter = 0;
        for (int candidate = 0; candidate <= 4; candidate++) {
            filter_row(row, previous, row_bytes, bpp, candidate, target);
            double score;
            switch (filter) {
            case SMIMG_FILTER_ENTROPY: score = entropy(target, row_bytes + 1); break;
            case SMIMG_FILTER_BIGRAMS: score = distinct_bigrams(target, row_bytes + 1, seen, ++generation); break;
            default: score = absolute_sum(target + 1, row_bytes); break;
            }
            if (score < best) {
                best = score;
                best_filter = candidate;
            }
        }
        if (best_filter != 4) filter_row(row, previous, row_bytes, bpp, best_filter, target);
    }
    free(seen);
    return SMIMG_OK;
}
