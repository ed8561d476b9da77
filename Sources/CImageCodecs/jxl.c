#include <dlfcn.h>
#include <jxl/decode.h>
#include <jxl/version.h>
#include <pthread.h>
#include <jxl/encode.h>
#include <jxl/thread_parallel_runner.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "CImageCodecs.h"

// libjxl is loaded on first use rather than linked: loading it and what it needs (libhwy, whose
// initialiser times the clock, brotli, lcms2) took 4.9 ms of every secmail process's start,
// JPEG XL or not. The pointers have the types of the declarations in libjxl's headers.
#define SMIMG_JXL_FUNCTIONS(X) \
    X(JxlColorEncodingSetToSRGB) \
    X(JxlDecoderCloseInput) \
    X(JxlDecoderCreate) \
    X(JxlDecoderDestroy) \
    X(JxlDecoderGetBasicInfo) \
    X(JxlDecoderGetBoxType) \
    X(JxlDecoderImageOutBufferSize) \
    X(JxlDecoderProcessInput) \
    X(JxlDecoderReleaseBoxBuffer) \
    X(JxlDecoderReleaseJPEGBuffer) \
    X(JxlDecoderSetBoxBuffer) \
    X(JxlDecoderSetDecompressBoxes) \
    X(JxlDecoderSetImageOutBuffer) \
    X(JxlDecoderSetInput) \
    X(JxlDecoderSetJPEGBuffer) \
    X(JxlDecoderSetKeepOrientation) \
    X(JxlDecoderSetParallelRunner) \
    X(JxlDecoderSubscribeEvents) \
    X(JxlEncoderAddBox) \
    X(JxlEncoderAddImageFrame) \
    X(JxlEncoderAddJPEGFrame) \
    X(JxlEncoderCloseInput) \
    X(JxlEncoderCreate) \
    X(JxlEncoderDestroy) \
    X(JxlEncoderFrameSettingsCreate) \
    X(JxlEncoderFrameSettingsSetOption) \
    X(JxlEncoderFrameSettingsSetFloatOption) \
    X(JxlEncoderInitBasicInfo) \
    X(JxlEncoderProcessOutput) \
    X(JxlEncoderSetBasicInfo) \
    X(JxlEncoderSetColorEncoding) \
    X(JxlEncoderSetFrameLossless) \
    X(JxlEncoderSetParallelRunner) \
    X(JxlEncoderStoreJPEGMetadata) \
    X(JxlEncoderUseBoxes) \
    X(JxlThreadParallelRunnerCreate) \
    X(JxlThreadParallelRunnerDestroy) \
    X(JxlThreadParallelRunner)

static struct {
#define SMIMG_JXL_POINTER(name) __typeof__(&name) name;
    SMIMG_JXL_FUNCTIONS(SMIMG_JXL_POINTER)
#undef SMIMG_JXL_POINTER
} api;

#define SMIMG_TEXT(x) #x
#define SMIMG_VERSION_TEXT(major, minor) SMIMG_TEXT(major) "." SMIMG_TEXT(minor)
// The shared objects of the libjxl the headers belong to (Debian: libjxl0.7).
#define SMIMG_JXL_SUFFIX ".so." SMIMG_VERSION_TEXT(JPEGXL_MAJOR_VERSION, JPEGXL_MINOR_VERSION)

static pthread_once_t api_once = PTHREAD_ONCE_INIT;
static int api_loaded;

static void api_load(void) {
    void *codec = dlopen("libjxl" SMIMG_JXL_SUFFIX, RTLD_NOW | RTLD_LOCAL);
    void *threads = dlopen("libjxl_threads" SMIMG_JXL_SUFFIX, RTLD_NOW | RTLD_LOCAL);
    if (!codec || !threads) return;
    // POSIX's way to store dlsym's answer in a function pointer.
#define SMIMG_JXL_RESOLVE(name) \
    *(void **)&api.name = dlsym(codec, #name); \
    if (!api.name) *(void **)&api.name = dlsym(threads, #name); \
    if (!api.name) return;
    SMIMG_JXL_FUNCTIONS(SMIMG_JXL_RESOLVE)
#undef SMIMG_JXL_RESOLVE
    api_loaded = 1;
}

// Whether libjxl is there to use (loaded once, by the first caller).
static int api_ready(void) {
    pthread_once(&api_once, api_load);
    return api_loaded;
}

int smimg_jxl_load(void) {
    return api_ready();
}

// libjxl's memory goes through this counter: past the budget an allocation fails, and libjxl
// reports an error instead of taking the machine's memory.
typedef struct {
    size_t used;
    size_t budget;
} memory_budget;

typedef struct {
    size_t size;
    max_align_t alignment[];
} allocation;

static void *budget_alloc(void *opaque, size_t size) {
    memory_budget *budget = opaque;
    if (size > budget->budget - budget->used) return NULL;
    allocation *block = malloc(sizeof(allocation) + size);
    if (!block) return NULL;
    block->size = size;
    budget->used += size;
    return block->alignment;
}

static void budget_free(void *opaque, void *address) {
    if (!address) return;
    memory_budget *budget = opaque;
    allocation *block = (allocation *)((char *)address - offsetof(allocation, alignment));
    budget->used -= block->size;
    free(block);
}

static void message_set(char *message, size_t size, const char *text) {
    if (message && size) snprintf(message, size, "%s", text);
}

// Collects the encoder's output into one malloc'd buffer.
static int encode_output(JxlEncoder *encoder, uint8_t **out, size_t *out_size) {
    size_t capacity = 1 << 16, used = 0;
    uint8_t *buffer = malloc(capacity);
    if (!buffer) return SMIMG_NO_MEMORY;
    for (;;) {
        uint8_t *next = buffer + used;
        size_t available = capacity - used;
        JxlEncoderStatus status = api.JxlEncoderProcessOutput(encoder, &next, &available);
        used = (size_t)(next - buffer);
        if (status == JXL_ENC_SUCCESS) break;
        if (status != JXL_ENC_NEED_MORE_OUTPUT) {
            free(buffer);
            return SMIMG_ERROR;
        }
        uint8_t *grown = realloc(buffer, capacity * 2);
        if (!grown) {
            free(buffer);
            return SMIMG_NO_MEMORY;
        }
        buffer = grown;
        capacity *= 2;
    }
    *out = buffer;
    *out_size = used;
    return SMIMG_OK;
}

typedef struct {
    memory_budget budget;
    JxlMemoryManager manager;
    void *runner;
    JxlEncoder *encoder;
    JxlEncoderFrameSettings *settings;
} encoding;

static int encoding_begin(encoding *e, const smimg_jxl_bounds *bounds, int effort) {
    memset(e, 0, sizeof *e);
    e->budget.budget = bounds->memory_bytes;
    e->manager = (JxlMemoryManager){.opaque = &e->budget, .alloc = budget_alloc, .free = budget_free};
    e->encoder = api.JxlEncoderCreate(&e->manager);
    e->runner = api.JxlThreadParallelRunnerCreate(NULL, bounds->threads);
    if (!e->encoder || !e->runner) return SMIMG_NO_MEMORY;
    if (api.JxlEncoderSetParallelRunner(e->encoder, api.JxlThreadParallelRunner, e->runner) != JXL_ENC_SUCCESS) return SMIMG_ERROR;
    e->settings = api.JxlEncoderFrameSettingsCreate(e->encoder, NULL);
    if (!e->settings) return SMIMG_NO_MEMORY;
    if (api.JxlEncoderFrameSettingsSetOption(e->settings, JXL_ENC_FRAME_SETTING_EFFORT, effort) != JXL_ENC_SUCCESS) return SMIMG_ERROR;
    return SMIMG_OK;
}

static void encoding_end(encoding *e) {
    if (e->encoder) api.JxlEncoderDestroy(e->encoder);
    if (e->runner) api.JxlThreadParallelRunnerDestroy(e->runner);
}

int smimg_jxl_from_jpeg(const uint8_t *jpeg, size_t size, const smimg_jxl_bounds *bounds, int effort, int chroma_from_luma,
                        uint8_t **out, size_t *out_size) {
    if (!api_ready()) return SMIMG_UNSUPPORTED;
    encoding e;
    int status = encoding_begin(&e, bounds, effort);
    if (status == SMIMG_OK && api.JxlEncoderStoreJPEGMetadata(e.encoder, JXL_TRUE) != JXL_ENC_SUCCESS) status = SMIMG_ERROR;
    if (status == SMIMG_OK && !chroma_from_luma
        && api.JxlEncoderFrameSettingsSetOption(e.settings, JXL_ENC_FRAME_SETTING_JPEG_RECON_CFL, 0) != JXL_ENC_SUCCESS) status = SMIMG_ERROR;
    if (status == SMIMG_OK && api.JxlEncoderAddJPEGFrame(e.settings, jpeg, size) != JXL_ENC_SUCCESS) status = SMIMG_UNSUPPORTED;
    if (status == SMIMG_OK) {
        api.JxlEncoderCloseInput(e.encoder);
        status = encode_output(e.encoder, out, out_size);
    }
    encoding_end(&e);
    return status;
}

int smimg_jxl_encode_pixels(const uint8_t *pixels, uint32_t width, uint32_t height, uint32_t bit_depth, uint32_t channels,
                            const uint8_t *box, size_t box_size, const smimg_jxl_bounds *bounds, int effort, int patches,
                            int learning_percent, uint8_t **out, size_t *out_size) {
    if (!api_ready()) return SMIMG_UNSUPPORTED;
    encoding e;
    int status = encoding_begin(&e, bounds, effort);
    if (status == SMIMG_OK && !patches
        && api.JxlEncoderFrameSettingsSetOption(e.settings, JXL_ENC_FRAME_SETTING_PATCHES, 0) != JXL_ENC_SUCCESS) status = SMIMG_ERROR;
    if (status == SMIMG_OK && learning_percent >= 0
        && api.JxlEncoderFrameSettingsSetFloatOption(e.settings, JXL_ENC_FRAME_SETTING_MODULAR_MA_TREE_LEARNING_PERCENT,
                                                     (float)learning_percent) != JXL_ENC_SUCCESS) status = SMIMG_ERROR;
    if (status == SMIMG_OK) {
        JxlBasicInfo info;
        api.JxlEncoderInitBasicInfo(&info);
        info.xsize = width;
        info.ysize = height;
        info.bits_per_sample = bit_depth;
        info.num_color_channels = channels <= 2 ? 1 : 3;
        info.num_extra_channels = channels == 2 || channels == 4 ? 1 : 0;
        info.alpha_bits = info.num_extra_channels ? bit_depth : 0;
        info.uses_original_profile = JXL_TRUE;
        JxlColorEncoding colour;
        api.JxlColorEncodingSetToSRGB(&colour, channels <= 2);
        if (api.JxlEncoderSetBasicInfo(e.encoder, &info) != JXL_ENC_SUCCESS
            || api.JxlEncoderSetColorEncoding(e.encoder, &colour) != JXL_ENC_SUCCESS
            || api.JxlEncoderSetFrameLossless(e.settings, JXL_TRUE) != JXL_ENC_SUCCESS) status = SMIMG_ERROR;
    }
    if (status == SMIMG_OK) {
        JxlPixelFormat format = {channels, bit_depth == 16 ? JXL_TYPE_UINT16 : JXL_TYPE_UINT8, JXL_BIG_ENDIAN, 0};
        size_t size = (size_t)width * height * channels * (bit_depth / 8);
        if (api.JxlEncoderAddImageFrame(e.settings, &format, pixels, size) != JXL_ENC_SUCCESS) status = SMIMG_NO_MEMORY;
    }
    if (status == SMIMG_OK && box_size > 0) {
        if (api.JxlEncoderUseBoxes(e.encoder) != JXL_ENC_SUCCESS
            || api.JxlEncoderAddBox(e.encoder, SMIMG_JXL_RENDERING_BOX, box, box_size, JXL_TRUE) != JXL_ENC_SUCCESS) status = SMIMG_ERROR;
    }
    if (status == SMIMG_OK) {
        api.JxlEncoderCloseInput(e.encoder);
        status = encode_output(e.encoder, out, out_size);
    }
    encoding_end(&e);
    return status;
}

int smimg_jxl_decode(const uint8_t *data, size_t size, const smimg_limits *limits, const smimg_jxl_bounds *bounds,
                     int reconstruct_jpeg, smimg_image *image, uint8_t **jpeg, size_t *jpeg_size,
                     char *message, size_t message_size) {
    memset(image, 0, sizeof *image);
    image->srgb_intent = -1;
    *jpeg = NULL;
    *jpeg_size = 0;
    if (!api_ready()) {
        message_set(message, message_size, "libjxl (libjxl" SMIMG_JXL_SUFFIX ") cannot be loaded");
        return SMIMG_UNSUPPORTED;
    }
    memory_budget budget = {.used = 0, .budget = bounds->memory_bytes};
    JxlMemoryManager manager = {.opaque = &budget, .alloc = budget_alloc, .free = budget_free};
    JxlDecoder *decoder = api.JxlDecoderCreate(&manager);
    void *runner = api.JxlThreadParallelRunnerCreate(NULL, bounds->threads);
    int status = SMIMG_OK;
    size_t jpeg_capacity = 0;
    int jpeg_done = 0;
    // The rendering box being read (its buffer handed to libjxl), and its buffer's size.
    int box_open = 0;
    size_t box_capacity = 0;
    if (!decoder || !runner) status = SMIMG_NO_MEMORY;
    int events = JXL_DEC_BASIC_INFO | JXL_DEC_FULL_IMAGE | (reconstruct_jpeg ? JXL_DEC_JPEG_RECONSTRUCTION : JXL_DEC_BOX);
    if (status == SMIMG_OK && (api.JxlDecoderSetParallelRunner(decoder, api.JxlThreadParallelRunner, runner) != JXL_DEC_SUCCESS
                               || api.JxlDecoderSubscribeEvents(decoder, events) != JXL_DEC_SUCCESS
                               || (!reconstruct_jpeg && api.JxlDecoderSetDecompressBoxes(decoder, JXL_TRUE) != JXL_DEC_SUCCESS)
                               || api.JxlDecoderSetKeepOrientation(decoder, JXL_TRUE) != JXL_DEC_SUCCESS
                               || api.JxlDecoderSetInput(decoder, data, size) != JXL_DEC_SUCCESS)) status = SMIMG_ERROR;
    if (status == SMIMG_OK) api.JxlDecoderCloseInput(decoder);
    JxlPixelFormat format = {4, JXL_TYPE_UINT8, JXL_BIG_ENDIAN, 0};
    while (status == SMIMG_OK) {
        JxlDecoderStatus event = api.JxlDecoderProcessInput(decoder);
        if (box_open && event != JXL_DEC_BOX_NEED_MORE_OUTPUT) {
            // The box ended: what libjxl did not fill of the buffer is not part of it.
            image->rendering_box_size = box_capacity - api.JxlDecoderReleaseBoxBuffer(decoder);
            box_open = 0;
        }
        if (event == JXL_DEC_SUCCESS) break;
        switch (event) {
        case JXL_DEC_BOX: {
            JxlBoxType type;
            if (api.JxlDecoderGetBoxType(decoder, type, JXL_TRUE) != JXL_DEC_SUCCESS) { status = SMIMG_ERROR; break; }
            if (memcmp(type, SMIMG_JXL_RENDERING_BOX, 4) != 0) break;
            if (image->rendering_box) {
                message_set(message, message_size, "it has two rendering boxes");
                status = SMIMG_ERROR;
                break;
            }
            box_capacity = 4096;
            image->rendering_box = malloc(box_capacity);
            if (!image->rendering_box || api.JxlDecoderSetBoxBuffer(decoder, image->rendering_box, box_capacity) != JXL_DEC_SUCCESS) {
                status = SMIMG_NO_MEMORY;
                break;
            }
            box_open = 1;
            break;
        }
        case JXL_DEC_BOX_NEED_MORE_OUTPUT: {
            size_t written = box_capacity - api.JxlDecoderReleaseBoxBuffer(decoder);
            uint8_t *grown = box_capacity < SMIMG_JXL_RENDERING_BOX_LIMIT ? realloc(image->rendering_box, box_capacity * 2) : NULL;
            if (!grown) {
                message_set(message, message_size, "its rendering box is over the limit");
                status = SMIMG_TOO_LARGE;
                box_open = 0;
                break;
            }
            image->rendering_box = grown;
            box_capacity *= 2;
            if (api.JxlDecoderSetBoxBuffer(decoder, image->rendering_box + written, box_capacity - written) != JXL_DEC_SUCCESS) status = SMIMG_ERROR;
            break;
        }
        case JXL_DEC_BASIC_INFO: {
            JxlBasicInfo info;
            if (api.JxlDecoderGetBasicInfo(decoder, &info) != JXL_DEC_SUCCESS) { status = SMIMG_ERROR; break; }
            if (!smimg_within_limits(limits, info.xsize, info.ysize)) {
                message_set(message, message_size, "its size is over the limits");
                status = SMIMG_TOO_LARGE;
                break;
            }
            if (info.have_animation || info.num_extra_channels > 1 || info.bits_per_sample > 16 || info.exponent_bits_per_sample) {
                message_set(message, message_size, "animated, floating-point, over 16 bits or with extra channels beyond alpha");
                status = SMIMG_UNSUPPORTED;
                break;
            }
            image->width = info.xsize;
            image->height = info.ysize;
            image->bit_depth = info.bits_per_sample > 8 ? 16 : 8;
            image->source_color_type = info.num_color_channels;
            image->source_bit_depth = info.bits_per_sample;
            format.data_type = image->bit_depth == 16 ? JXL_TYPE_UINT16 : JXL_TYPE_UINT8;
            break;
        }
        case JXL_DEC_JPEG_RECONSTRUCTION:
            jpeg_capacity = size * 2 + 4096;
            *jpeg = malloc(jpeg_capacity);
            if (!*jpeg || api.JxlDecoderSetJPEGBuffer(decoder, *jpeg, jpeg_capacity) != JXL_DEC_SUCCESS) status = SMIMG_NO_MEMORY;
            break;
        case JXL_DEC_JPEG_NEED_MORE_OUTPUT: {
            // The buffer (which ends at jpeg_capacity) is full: keep what is written, give more.
            size_t written = jpeg_capacity - api.JxlDecoderReleaseJPEGBuffer(decoder);
            uint8_t *grown = jpeg_capacity <= bounds->memory_bytes / 2 ? realloc(*jpeg, jpeg_capacity * 2) : NULL;
            if (!grown) { status = SMIMG_TOO_LARGE; break; }
            *jpeg = grown;
            jpeg_capacity *= 2;
            if (api.JxlDecoderSetJPEGBuffer(decoder, *jpeg + written, jpeg_capacity - written) != JXL_DEC_SUCCESS) status = SMIMG_ERROR;
            break;
        }
        case JXL_DEC_NEED_IMAGE_OUT_BUFFER: {
            if (reconstruct_jpeg) {
                // Asked for pixels instead: the stream was not made from a JPEG.
                message_set(message, message_size, "it holds no JPEG to reconstruct");
                status = SMIMG_UNSUPPORTED;
                break;
            }
            size_t needed = 0;
            if (api.JxlDecoderImageOutBufferSize(decoder, &format, &needed) != JXL_DEC_SUCCESS) { status = SMIMG_ERROR; break; }
            image->pixels = malloc(needed);
            if (!image->pixels) { status = SMIMG_NO_MEMORY; break; }
            image->pixels_size = needed;
            if (api.JxlDecoderSetImageOutBuffer(decoder, &format, image->pixels, needed) != JXL_DEC_SUCCESS) status = SMIMG_ERROR;
            break;
        }
        case JXL_DEC_FULL_IMAGE:
            if (*jpeg) {
                *jpeg_size = jpeg_capacity - api.JxlDecoderReleaseJPEGBuffer(decoder);
                jpeg_done = 1;
            }
            break;
        case JXL_DEC_NEED_MORE_INPUT:
            message_set(message, message_size, "the stream is truncated");
            status = SMIMG_ERROR;
            break;
        default:
            message_set(message, message_size, budget.used >= budget.budget ? "decoding it needs more memory than allowed" : "the stream is damaged");
            status = budget.used >= budget.budget ? SMIMG_TOO_LARGE : SMIMG_ERROR;
            break;
        }
    }
    if (status == SMIMG_OK && reconstruct_jpeg && !jpeg_done) {
        message_set(message, message_size, "it holds no JPEG to reconstruct");
        status = SMIMG_UNSUPPORTED;
    }
    if (status == SMIMG_OK && !reconstruct_jpeg && !image->pixels) {
        message_set(message, message_size, "the stream holds no image");
        status = SMIMG_ERROR;
    }
    if (decoder) api.JxlDecoderDestroy(decoder);
    if (runner) api.JxlThreadParallelRunnerDestroy(runner);
    if (status != SMIMG_OK) {
        free(image->pixels);
        image->pixels = NULL;
        free(image->rendering_box);
        image->rendering_box = NULL;
        image->rendering_box_size = 0;
        free(*jpeg);
        *jpeg = NULL;
        *jpeg_size = 0;
    }
    return status;
}
