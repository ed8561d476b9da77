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
static const char *const library_names[] = {
    "libpng" SMIMG_NUMBER_TEXT(PNG_LIBPNG_VER_DLLNUM) ".so." SMIMG_NUMBER_TEXT(PNG_LIBPNG_VER_SONUM),
    "libjpeg.so." SMIMG_NUMBER_TEXT(JPEG_LIB_VERSION),
    "libdeflate.so.0",
    "libzopfli.so.1",
    "libz.so.1",
};
#define SMIMG_LIBRARY_COUNT (sizeof library_names / sizeof library_names[0])

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int loaded;
static char failure[512];

static void load(void) {
    void *handles[SMIMG_LIBRARY_COUNT];
    for (size_t index = 0; index < SMIMG_LIBRARY_COUNT; index++) {
        handles[index] = dlopen(library_names[index], RTLD_NOW | RTLD_LOCAL);
        if (!handles[index]) {
            const char *reason = dlerror();
            snprintf(failure, sizeof failure, "%s", reason ? reason : library_names[index]);
            return;
        }
    }
    // Each function from the first library that has it (each is in exactly one); POSIX's way to
    // store dlsym's answer in a function pointer.
#define SMIMG_RESOLVE(name) \
    for (size_t index = 0; index < SMIMG_LIBRARY_COUNT && !smimg_library.name; index++) \
        *(void **)&smimg_library.name = dlsym(handles[index], #name); \
    if (!smimg_library.name) { \
        snprintf(failure, sizeof failure, "no function %s in %s, %s, %s, %s or %s", #name, library_names[0], library_names[1], \
                 library_names[2], library_names[3], library_names[4]); \
        return; \
    }
    SMIMG_LIBRARY_FUNCTIONS(SMIMG_RESOLVE)
#undef SMIMG_RESOLVE
    loaded = 1;
}

int smimg_libraries_load(char *message, size_t message_size) {
    pthread_once(&load_once, load);
    if (!loaded && message && message_size > 0) snprintf(message, message_size, "%s", failure);
    return loaded;
}
