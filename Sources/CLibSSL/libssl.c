// libssl's functions that secmail calls, defined here under their own names: each forwards to
// libssl, which the first call (or secmail_libssl_load) loads. So libssl is not linked, and a
// command without TLS (init, export, seal, open, the key agent) does not map and bind it: 0.16 ms
// of every such command's start (an empty C program linked with libssl and libcrypto against one
// with libcrypto alone, 400 paired runs). The callers, the Swift TLS layer and COpenSSL's shim,
// call SSL_read and the rest as declared in <openssl/ssl.h>; the definitions below are checked
// against those declarations. `secmail` does not export them (it is linked with
// --no-export-dynamic), so libssl's own calls to these names stay inside libssl; a program that
// exports them (secmail-relay, the test runners) has such a call come through the stub, which
// hands it straight back to libssl's own definition (dlsym on libssl's handle).
#include <dlfcn.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include "CLibSSL.h"

#define SECMAIL_LIBSSL_FUNCTIONS(X) \
    X(SSL_CTX_check_private_key) X(SSL_CTX_ctrl) X(SSL_CTX_free) X(SSL_CTX_get_ex_data) \
    X(SSL_CTX_load_verify_locations) X(SSL_CTX_new) X(SSL_CTX_set_alpn_select_cb) X(SSL_CTX_set_ex_data) \
    X(SSL_CTX_set_verify) X(SSL_CTX_use_PrivateKey_file) X(SSL_CTX_use_certificate_chain_file) X(SSL_ctrl) \
    X(SSL_do_handshake) X(SSL_free) X(SSL_get0_alpn_selected) X(SSL_get0_param) X(SSL_get0_peer_certificate) \
    X(SSL_get_SSL_CTX) X(SSL_get_error) X(SSL_get_ex_data_X509_STORE_CTX_idx) X(SSL_get_verify_result) \
    X(SSL_get_version) X(SSL_key_update) X(SSL_new) X(SSL_read) X(SSL_select_next_proto) X(SSL_set1_host) \
    X(SSL_set_accept_state) X(SSL_set_alpn_protos) X(SSL_set_bio) X(SSL_set_connect_state) X(SSL_shutdown) \
    X(SSL_write) X(TLS_client_method) X(TLS_server_method)

// The pointers have the types of the declarations in <openssl/ssl.h>.
static struct {
#define SECMAIL_POINTER(name) __typeof__(&name) name;
    SECMAIL_LIBSSL_FUNCTIONS(SECMAIL_POINTER)
#undef SECMAIL_POINTER
} libssl;

// The shared object of the OpenSSL the headers belong to (Debian: libssl3).
#define SECMAIL_TEXT(x) #x
#define SECMAIL_NUMBER_TEXT(x) SECMAIL_TEXT(x)
static const char library_name[] = "libssl.so." SECMAIL_NUMBER_TEXT(OPENSSL_VERSION_MAJOR);

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int loaded;
static char failure[512];

static void load(void) {
    // RTLD_LOCAL: libssl's symbols serve these pointers only; libcrypto, which it needs, is
    // the one the program already has.
    void *handle = dlopen(library_name, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *reason = dlerror();
        snprintf(failure, sizeof failure, "%s", reason ? reason : library_name);
        return;
    }
    // POSIX's way to store dlsym's answer in a function pointer.
#define SECMAIL_RESOLVE(name) \
    *(void **)&libssl.name = dlsym(handle, #name); \
    if (!libssl.name) { \
        snprintf(failure, sizeof failure, "no function %s in %s", #name, library_name); \
        return; \
    }
    SECMAIL_LIBSSL_FUNCTIONS(SECMAIL_RESOLVE)
#undef SECMAIL_RESOLVE
    loaded = 1;
}

int secmail_libssl_load(char *message, size_t message_size) {
    pthread_once(&load_once, load);
    if (!loaded && message && message_size > 0) snprintf(message, message_size, "%s", failure);
    return loaded;
}

// As the dynamic loader would have done at the program's start had libssl been linked.
static void require_libssl(void) {
    if (secmail_libssl_load(NULL, 0)) return;
    fprintf(stderr, "secmail: cannot load %s: %s\n", library_name, failure);
    exit(127);
}

int SSL_CTX_check_private_key(const SSL_CTX *ctx) { require_libssl(); return libssl.SSL_CTX_check_private_key(ctx); }
long SSL_CTX_ctrl(SSL_CTX *ctx, int cmd, long larg, void *parg) { require_libssl(); return libssl.SSL_CTX_ctrl(ctx, cmd, larg, parg); }
void SSL_CTX_free(SSL_CTX *ctx) { require_libssl(); libssl.SSL_CTX_free(ctx); }
void *SSL_CTX_get_ex_data(const SSL_CTX *ctx, int idx) { require_libssl(); return libssl.SSL_CTX_get_ex_data(ctx, idx); }
int SSL_CTX_load_verify_locations(SSL_CTX *ctx, const char *file, const char *path) {
    require_libssl();
    return libssl.SSL_CTX_load_verify_locations(ctx, file, path);
}
SSL_CTX *SSL_CTX_new(const SSL_METHOD *method) { require_libssl(); return libssl.SSL_CTX_new(method); }
void SSL_CTX_set_alpn_select_cb(SSL_CTX *ctx, SSL_CTX_alpn_select_cb_func cb, void *arg) {
    require_libssl();
    libssl.SSL_CTX_set_alpn_select_cb(ctx, cb, arg);
}
int SSL_CTX_set_ex_data(SSL_CTX *ctx, int idx, void *data) { require_libssl(); return libssl.SSL_CTX_set_ex_data(ctx, idx, data); }
void SSL_CTX_set_verify(SSL_CTX *ctx, int mode, SSL_verify_cb callback) { require_libssl(); libssl.SSL_CTX_set_verify(ctx, mode, callback); }
int SSL_CTX_use_PrivateKey_file(SSL_CTX *ctx, const char *file, int type) {
    require_libssl();
    return libssl.SSL_CTX_use_PrivateKey_file(ctx, file, type);
}
int SSL_CTX_use_certificate_chain_file(SSL_CTX *ctx, const char *file) {
    require_libssl();
    return libssl.SSL_CTX_use_certificate_chain_file(ctx, file);
}
long SSL_ctrl(SSL *ssl, int cmd, long larg, void *parg) { require_libssl(); return libssl.SSL_ctrl(ssl, cmd, larg, parg); }
int SSL_do_handshake(SSL *ssl) { require_libssl(); return libssl.SSL_do_handshake(ssl); }
void SSL_free(SSL *ssl) { require_libssl(); libssl.SSL_free(ssl); }
void SSL_get0_alpn_selected(const SSL *ssl, const unsigned char **data, unsigned int *len) {
    require_libssl();
    libssl.SSL_get0_alpn_selected(ssl, data, len);
}
X509_VERIFY_PARAM *SSL_get0_param(SSL *ssl) { require_libssl(); return libssl.SSL_get0_param(ssl); }
X509 *SSL_get0_peer_certificate(const SSL *ssl) { require_libssl(); return libssl.SSL_get0_peer_certificate(ssl); }
SSL_CTX *SSL_get_SSL_CTX(const SSL *ssl) { require_libssl(); return libssl.SSL_get_SSL_CTX(ssl); }
int SSL_get_error(const SSL *ssl, int ret_code) { require_libssl(); return libssl.SSL_get_error(ssl, ret_code); }
int SSL_get_ex_data_X509_STORE_CTX_idx(void) { require_libssl(); return libssl.SSL_get_ex_data_X509_STORE_CTX_idx(); }
long SSL_get_verify_result(const SSL *ssl) { require_libssl(); return libssl.SSL_get_verify_result(ssl); }
const char *SSL_get_version(const SSL *ssl) { require_libssl(); return libssl.SSL_get_version(ssl); }
int SSL_key_update(SSL *ssl, int updatetype) { require_libssl(); return libssl.SSL_key_update(ssl, updatetype); }
SSL *SSL_new(SSL_CTX *ctx) { require_libssl(); return libssl.SSL_new(ctx); }
int SSL_read(SSL *ssl, void *buf, int num) { require_libssl(); return libssl.SSL_read(ssl, buf, num); }
int SSL_select_next_proto(unsigned char **out, unsigned char *outlen, const unsigned char *in, unsigned int inlen,
                          const unsigned char *client, unsigned int client_len) {
    require_libssl();
    return libssl.SSL_select_next_proto(out, outlen, in, inlen, client, client_len);
}
int SSL_set1_host(SSL *ssl, const char *hostname) { require_libssl(); return libssl.SSL_set1_host(ssl, hostname); }
void SSL_set_accept_state(SSL *ssl) { require_libssl(); libssl.SSL_set_accept_state(ssl); }
int SSL_set_alpn_protos(SSL *ssl, const unsigned char *protos, unsigned int protos_len) {
    require_libssl();
    return libssl.SSL_set_alpn_protos(ssl, protos, protos_len);
}
void SSL_set_bio(SSL *ssl, BIO *rbio, BIO *wbio) { require_libssl(); libssl.SSL_set_bio(ssl, rbio, wbio); }
void SSL_set_connect_state(SSL *ssl) { require_libssl(); libssl.SSL_set_connect_state(ssl); }
int SSL_shutdown(SSL *ssl) { require_libssl(); return libssl.SSL_shutdown(ssl); }
int SSL_write(SSL *ssl, const void *buf, int num) { require_libssl(); return libssl.SSL_write(ssl, buf, num); }
const SSL_METHOD *TLS_client_method(void) { require_libssl(); return libssl.TLS_client_method(); }
const SSL_METHOD *TLS_server_method(void) { require_libssl(); return libssl.TLS_server_method(); }
