#define SMIMG_LIBRARIES_DEFINITION
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include "CImageCodecs.h"
#include "libraries.h"

struct smimg_library_functions smimg_library;

#define SMIMG_TEXT(x) #x
#define SMIMG_NUMBER_TEXT(x) SMIMG_TEXT(x)

// The shared objects of the versions the headers belong to (Debian: libpng16-16, libjpeg62-turbo,
// libdeflate0, libzopfli1, zlib1g). libdeflate's and zopfli's headers do not say their soname.
enum { LIBRARY_PNG, LIBRARY_JPEG, LIBRARY_DEFLATE, LIBRARY_ZOPFLI, LIBRARY_ZLIB, SMIMG_LIBRARY_COUNT };
static const char *const library_names[SMIMG_LIBRARY_COUNT] = {
    [LIBRARY_PNG] = "libpng" SMIMG_NUMBER_TEXT(PNG_LIBPNG_VER_DLLNUM) ".so." SMIMG_NUMBER_TEXT(PNG_LIBPNG_VER_SONUM),
    [LIBRARY_JPEG] = "libjpeg.so." SMIMG_NUMBER_TEXT(JPEG_LIB_VERSION),
    [LIBRARY_DEFLATE] = "libdeflate.so.0",
    [LIBRARY_ZOPFLI] = "libzopfli.so.1",
    [LIBRARY_ZLIB] = "libz.so.1",
};

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int loaded;
static char failure[512];

static void load(void) {
    void *handles[SMIMG_LIBRARY_COUNT];
    for (int index = 0; index < SMIMG_LIBRARY_COUNT; index++) {
        handles[index] = dlopen(library_names[index], RTLD_NOW | RTLD_LOCAL);
        if (!handles[index]) {
            const char *reason = dlerror();
            snprintf(failure, sizeof failure, "%s", reason ? reason : library_names[index]);
            return;
        }
    }
    // Each function from its own library; POSIX's way to store dlsym's answer in a function pointer.
#define SMIMG_RESOLVE(library, name) \
    *(void **)&smimg_library.name = dlsym(handles[library], #name); \
    if (!smimg_library.name) { \
        snprintf(failure, sizeof failure, "no function %s in %s", #name, library_names[library]); \
        return; \
    }
#define SMIMG_RESOLVE_PNG(name) SMIMG_RESOLVE(LIBRARY_PNG, name)
#define SMIMG_RESOLVE_JPEG(name) SMIMG_RESOLVE(LIBRARY_JPEG, name)
#define SMIMG_RESOLVE_DEFLATE(name) SMIMG_RESOLVE(LIBRARY_DEFLATE, name)
#define SMIMG_RESOLVE_ZOPFLI(name) SMIMG_RESOLVE(LIBRARY_ZOPFLI, name)
#define SMIMG_RESOLVE_ZLIB(name) SMIMG_RESOLVE(LIBRARY_ZLIB, name)
    SMIMG_PNG_FUNCTIONS(SMIMG_RESOLVE_PNG)
    SMIMG_JPEG_FUNCTIONS(SMIMG_RESOLVE_JPEG)
    SMIMG_DEFLATE_FUNCTIONS(SMIMG_RESOLVE_DEFLATE)
    SMIMG_ZOPFLI_FUNCTIONS(SMIMG_RESOLVE_ZOPFLI)
    SMIMG_ZLIB_FUNCTIONS(SMIMG_RESOLVE_ZLIB)
    loaded = 1;
}

int smimg_libraries_load(char *message, size_t message_size) {
    pthread_once(&load_once, load);
    if (!loaded && message && message_size > 0) snprintf(message, message_size, "%s", failure);
    return loaded;
}
