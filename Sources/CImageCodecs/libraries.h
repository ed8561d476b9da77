// libpng, libjpeg-turbo, libdeflate, zopfli and zlib, called through pointers that
// smimg_libraries_load() fills on first use instead of being linked: loading these five shared
// objects and binding their symbols took 0.24 ms of the start of every secmail process, with an
// image or not (a C program linked with them and with OpenSSL against one with OpenSSL alone,
// 400 paired runs). Each codec file includes this header after the libraries' own, so that its
// calls, and those the libraries' macros expand to (png_jmpbuf, jpeg_create_decompress,
// inflateInit2), go through the pointers. The entry points that use them are called only after
// smimg_libraries_load() answered 1 (SecmailImages' ImageCodecs sees to that).
#ifndef SECMAIL_IMAGE_LIBRARIES_H
#define SECMAIL_IMAGE_LIBRARIES_H

// Every library's header, for the declarations the pointers take their types from (jpeglib.h
// needs stdio.h first).
#include <stdio.h>
#include <jpeglib.h>
#include <libdeflate.h>
#include <png.h>
#include <zlib.h>
#include <zopfli/zlib_container.h>
#include <zopfli/zopfli.h>

#define SMIMG_PNG_FUNCTIONS(X) \
    X(png_create_info_struct) X(png_create_read_struct) X(png_destroy_read_struct) X(png_error) \
    X(png_get_IHDR) X(png_get_bit_depth) X(png_get_cHRM_fixed) X(png_get_channels) X(png_get_eXIf_1) \
    X(png_get_error_ptr) X(png_get_gAMA_fixed) X(png_get_iCCP) X(png_get_io_ptr) X(png_get_rowbytes) \
    X(png_get_sRGB) X(png_get_valid) X(png_longjmp) X(png_read_end) X(png_read_image) X(png_read_info) \
    X(png_read_row) X(png_read_update_info) X(png_set_add_alpha) X(png_set_chunk_malloc_max) \
    X(png_set_expand) X(png_set_gray_to_rgb) X(png_set_interlace_handling) X(png_set_longjmp_fn) \
    X(png_set_read_fn) X(png_set_user_limits) X(png_sig_cmp)

#define SMIMG_JPEG_FUNCTIONS(X) \
    X(jpeg_CreateDecompress) X(jpeg_destroy_decompress) X(jpeg_finish_decompress) X(jpeg_has_multiple_scans) \
    X(jpeg_mem_src) X(jpeg_read_header) X(jpeg_read_icc_profile) X(jpeg_read_scanlines) X(jpeg_save_markers) \
    X(jpeg_start_decompress) X(jpeg_std_error)

#define SMIMG_DEFLATE_FUNCTIONS(X) \
    X(libdeflate_adler32) X(libdeflate_alloc_compressor) X(libdeflate_alloc_decompressor) X(libdeflate_crc32) \
    X(libdeflate_deflate_compress) X(libdeflate_deflate_compress_bound) X(libdeflate_deflate_decompress_ex) \
    X(libdeflate_free_compressor) X(libdeflate_free_decompressor) X(libdeflate_zlib_compress) \
    X(libdeflate_zlib_decompress_ex)

#define SMIMG_ZOPFLI_FUNCTIONS(X) X(ZopfliInitOptions) X(ZopfliZlibCompress)

#define SMIMG_ZLIB_FUNCTIONS(X) X(inflate) X(inflateEnd) X(inflateInit2_)

#define SMIMG_LIBRARY_FUNCTIONS(X) \
    SMIMG_PNG_FUNCTIONS(X) SMIMG_JPEG_FUNCTIONS(X) SMIMG_DEFLATE_FUNCTIONS(X) SMIMG_ZOPFLI_FUNCTIONS(X) \
    SMIMG_ZLIB_FUNCTIONS(X)

// The pointers have the types of the declarations in the libraries' headers.
struct smimg_library_functions {
#define SMIMG_POINTER(name) __typeof__(&name) name;
    SMIMG_LIBRARY_FUNCTIONS(SMIMG_POINTER)
#undef SMIMG_POINTER
};

extern struct smimg_library_functions smimg_library;

#ifndef SMIMG_LIBRARIES_DEFINITION
#define png_create_info_struct (smimg_library.png_create_info_struct)
#define png_create_read_struct (smimg_library.png_create_read_struct)
#define png_destroy_read_struct (smimg_library.png_destroy_read_struct)
#define png_error (smimg_library.png_error)
#define png_get_IHDR (smimg_library.png_get_IHDR)
#define png_get_bit_depth (smimg_library.png_get_bit_depth)
#define png_get_cHRM_fixed (smimg_library.png_get_cHRM_fixed)
#define png_get_channels (smimg_library.png_get_channels)
#define png_get_eXIf_1 (smimg_library.png_get_eXIf_1)
#define png_get_error_ptr (smimg_library.png_get_error_ptr)
#define png_get_gAMA_fixed (smimg_library.png_get_gAMA_fixed)
#define png_get_iCCP (smimg_library.png_get_iCCP)
#define png_get_io_ptr (smimg_library.png_get_io_ptr)
#define png_get_rowbytes (smimg_library.png_get_rowbytes)
#define png_get_sRGB (smimg_library.png_get_sRGB)
#define png_get_valid (smimg_library.png_get_valid)
#define png_longjmp (smimg_library.png_longjmp)
#define png_read_end (smimg_library.png_read_end)
#define png_read_image (smimg_library.png_read_image)
#define png_read_info (smimg_library.png_read_info)
#define png_read_row (smimg_library.png_read_row)
#define png_read_update_info (smimg_library.png_read_update_info)
#define png_set_add_alpha (smimg_library.png_set_add_alpha)
#define png_set_chunk_malloc_max (smimg_library.png_set_chunk_malloc_max)
#define png_set_expand (smimg_library.png_set_expand)
#define png_set_gray_to_rgb (smimg_library.png_set_gray_to_rgb)
#define png_set_interlace_handling (smimg_library.png_set_interlace_handling)
#define png_set_longjmp_fn (smimg_library.png_set_longjmp_fn)
#define png_set_read_fn (smimg_library.png_set_read_fn)
#define png_set_user_limits (smimg_library.png_set_user_limits)
#define png_sig_cmp (smimg_library.png_sig_cmp)
#define jpeg_CreateDecompress (smimg_library.jpeg_CreateDecompress)
#define jpeg_destroy_decompress (smimg_library.jpeg_destroy_decompress)
#define jpeg_finish_decompress (smimg_library.jpeg_finish_decompress)
#define jpeg_has_multiple_scans (smimg_library.jpeg_has_multiple_scans)
#define jpeg_mem_src (smimg_library.jpeg_mem_src)
#define jpeg_read_header (smimg_library.jpeg_read_header)
#define jpeg_read_icc_profile (smimg_library.jpeg_read_icc_profile)
#define jpeg_read_scanlines (smimg_library.jpeg_read_scanlines)
#define jpeg_save_markers (smimg_library.jpeg_save_markers)
#define jpeg_start_decompress (smimg_library.jpeg_start_decompress)
#define jpeg_std_error (smimg_library.jpeg_std_error)
#define libdeflate_adler32 (smimg_library.libdeflate_adler32)
#define libdeflate_alloc_compressor (smimg_library.libdeflate_alloc_compressor)
#define libdeflate_alloc_decompressor (smimg_library.libdeflate_alloc_decompressor)
#define libdeflate_crc32 (smimg_library.libdeflate_crc32)
#define libdeflate_deflate_compress (smimg_library.libdeflate_deflate_compress)
#define libdeflate_deflate_compress_bound (smimg_library.libdeflate_deflate_compress_bound)
#define libdeflate_deflate_decompress_ex (smimg_library.libdeflate_deflate_decompress_ex)
#define libdeflate_free_compressor (smimg_library.libdeflate_free_compressor)
#define libdeflate_free_decompressor (smimg_library.libdeflate_free_decompressor)
#define libdeflate_zlib_compress (smimg_library.libdeflate_zlib_compress)
#define libdeflate_zlib_decompress_ex (smimg_library.libdeflate_zlib_decompress_ex)
#define ZopfliInitOptions (smimg_library.ZopfliInitOptions)
#define ZopfliZlibCompress (smimg_library.ZopfliZlibCompress)
#define inflate (smimg_library.inflate)
#define inflateEnd (smimg_library.inflateEnd)
#define inflateInit2_ (smimg_library.inflateInit2_)
#endif

#endif
