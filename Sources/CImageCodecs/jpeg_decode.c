#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include "CImageCodecs.h"
#include "libraries.h"

typedef struct {
    struct jpeg_error_mgr manager;
    jmp_buf jump;
    int status;
} jpeg_failure;

static void on_jpeg_error(j_common_ptr cinfo) {
    jpeg_failure *failure = (jpeg_failure *)cinfo->err;
    longjmp(failure->jump, 1);
}

// A warning means corrupt or truncated data (libjpeg then invents pixels): an error here.
static void on_jpeg_message(j_common_ptr cinfo, int level) {
    if (level < 0) on_jpeg_error(cinfo);
}

// Bounds the work a progressive file can demand: real encoders write about ten scans.
static void limit_scans(j_common_ptr cinfo) {
    j_decompress_ptr decompress = (j_decompress_ptr)cinfo;
    if (decompress->input_scan_number > 256) {
        jpeg_failure *failure = (jpeg_failure *)cinfo->err;
        failure->status = SMIMG_TOO_LARGE;
        longjmp(failure->jump, 2);
    }
}

int smimg_jpeg_decode(const uint8_t *data, size_t size, const smimg_limits *limits,
                      smimg_image *out, char *message, size_t message_size) {
    memset(out, 0, sizeof *out);
    out->srgb_intent = -1;
    struct jpeg_decompress_struct cinfo;
    jpeg_failure failure;
    struct jpeg_progress_mgr progress;
    cinfo.err = jpeg_std_error(&failure.manager);
    failure.manager.error_exit = on_jpeg_error;
    failure.manager.emit_message = on_jpeg_message;
    failure.status = SMIMG_ERROR;
    int jumped = setjmp(failure.jump);
    if (jumped) {
        if (jumped == 2) {
            snprintf(message, message_size, "the progressive JPEG has more than 256 scans");
        } else if (failure.status == SMIMG_NO_MEMORY) {
            snprintf(message, message_size, "out of memory");
        } else {
            char text[JMSG_LENGTH_MAX];
            (*cinfo.err->format_message)((j_common_ptr)&cinfo, text);
            snprintf(message, message_size, "%s", text);
        }
        smimg_image_free(out);
        jpeg_destroy_decompress(&cinfo);
        return failure.status;
    }
    jpeg_create_decompress(&cinfo);
    progress.progress_monitor = limit_scans;
    cinfo.progress = &progress;
    // Progressive files buffer all coefficients; bound what libjpeg may allocate.
    cinfo.mem->max_memory_to_use = 1024L << 20;
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xffff);
    jpeg_save_markers(&cinfo, JPEG_APP0 + 2, 0xffff);
    jpeg_read_header(&cinfo, TRUE);

    if (!smimg_within_limits(limits, cinfo.image_width, cinfo.image_height)) {
        snprintf(message, message_size, "the image is %ux%u, beyond the allowed size", cinfo.image_width, cinfo.image_height);
        jpeg_destroy_decompress(&cinfo);
        return SMIMG_TOO_LARGE;
    }
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        snprintf(message, message_size, "CMYK JPEG images are not supported; convert the image to RGB first");
        jpeg_destroy_decompress(&cinfo);
        return SMIMG_UNSUPPORTED;
    }
    // libjpeg-turbo writes RGBA rows itself (alpha 255; a grey sample in R, G and B), with the
    // same colour conversion as for RGB output.
    cinfo.out_color_space = JCS_EXT_RGBA;
    cinfo.dct_method = JDCT_ISLOW;
    out->width = cinfo.image_width;
    out->height = cinfo.image_height;
    out->bit_depth = 8;
    out->source_color_type = (uint32_t)cinfo.num_components;
    out->source_bit_depth = (uint32_t)cinfo.data_precision;
    out->source_interlaced = jpeg_has_multiple_scans(&cinfo) ? 1 : 0;

    JOCTET *icc = NULL;
    unsigned int icc_size = 0;
    if (jpeg_read_icc_profile(&cinfo, &icc, &icc_size) && icc_size > 0) {
        out->icc_profile = icc;
        out->icc_profile_size = icc_size;
    }
    for (jpeg_saved_marker_ptr marker = cinfo.marker_list; marker; marker = marker->next) {
        if (marker->marker == JPEG_APP0 + 1 && marker->data_length > 6 && memcmp(marker->data, "Exif\0\0", 6) == 0 && !out->exif) {
            out->exif = malloc(marker->data_length - 6);
            if (!out->exif) { failure.status = SMIMG_NO_MEMORY; longjmp(failure.jump, 1); }
            memcpy(out->exif, marker->data + 6, marker->data_length - 6);
            out->exif_size = marker->data_length - 6;
        }
    }

    jpeg_start_decompress(&cinfo);
    size_t width = cinfo.output_width;
    out->pixels_size = width * 4 * cinfo.output_height;
    out->pixels = malloc(out->pixels_size);
    if (!out->pixels) { failure.status = SMIMG_NO_MEMORY; longjmp(failure.jump, 1); }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW rows[16];
        JDIMENSION count = cinfo.output_height - cinfo.output_scanline;
        if (count > 16) count = 16;
        for (JDIMENSION i = 0; i < count; i++) rows[i] = out->pixels + (size_t)(cinfo.output_scanline + i) * width * 4;
        jpeg_read_scanlines(&cinfo, rows, count);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return SMIMG_OK;
}

int smimg_jpeg_size(const uint8_t *data, size_t size, uint32_t *width, uint32_t *height) {
    struct jpeg_decompress_struct cinfo;
    jpeg_failure failure;
    cinfo.err = jpeg_std_error(&failure.manager);
    failure.manager.error_exit = on_jpeg_error;
    failure.manager.emit_message = on_jpeg_message;
    if (setjmp(failure.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return SMIMG_ERROR;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    *width = cinfo.image_width;
    *height = cinfo.image_height;
    jpeg_destroy_decompress(&cinfo);
    return SMIMG_OK;
}
