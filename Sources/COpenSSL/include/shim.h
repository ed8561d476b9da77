// C shims for the parts of OpenSSL 3 that Swift cannot call directly: function-like macros,
// variadic functions and OSSL_PARAM arrays whose key strings must live in stable storage.
// Every function returns 1 on success and 0 (or NULL) on failure, leaving the reason on
// OpenSSL's per-thread error queue for the Swift side to drain.
#ifndef SECMAIL_COPENSSL_SHIM_H
#define SECMAIL_COPENSSL_SHIM_H

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/// Pops the oldest error on this thread's queue into `buffer`; returns its code, 0 when empty.
static inline unsigned long secmail_err_pop(char *buffer, size_t length) {
    unsigned long code = ERR_get_error();
    if (code != 0 && buffer != NULL && length > 0) {
        ERR_error_string_n(code, buffer, length);
    }
    return code;
}

/// The reason part of an OpenSSL error code ("bad decrypt"), or NULL.
static inline const char *secmail_err_reason(unsigned long code) {
    return ERR_reason_error_string(code);
}

static inline void secmail_free(void *pointer) {
    OPENSSL_free(pointer);
}

/// Length and start of a memory BIO's contents (BIO_get_mem_data is a macro).
static inline long secmail_bio_contents(BIO *bio, const unsigned char **data) {
    char *start = NULL;
    long length = BIO_get_mem_data(bio, &start);
    *data = (const unsigned char *)start;
    return length;
}

// MARK: AES-GCM controls (EVP_CIPHER_CTX_ctrl takes macro constants)

static inline int secmail_gcm_set_iv_length(EVP_CIPHER_CTX *ctx, int length) {
    return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, length, NULL);
}

static inline int secmail_gcm_get_tag(EVP_CIPHER_CTX *ctx, unsigned char *tag, int length) {
    return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, length, tag);
}

static inline int secmail_gcm_set_tag(EVP_CIPHER_CTX *ctx, const unsigned char *tag, int length) {
    return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, length, (void *)tag);
}

// MARK: RSA

/// A fresh RSA key of `bits` bits with e = 65537 (EVP_RSA_gen is a variadic macro).
static inline EVP_PKEY *secmail_rsa_generate(unsigned int bits) {
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (ctx == NULL) return NULL;
    if (EVP_PKEY_keygen_init(ctx) == 1 && EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, (int)bits) == 1) {
        if (EVP_PKEY_generate(ctx, &key) != 1) key = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    return key;
}

// MARK: HKDF (RFC 5869) through EVP_KDF; the OSSL_PARAM names are string literals here.

static inline int secmail_hkdf_sha256(const unsigned char *ikm, size_t ikm_length,
                                      const unsigned char *salt, size_t salt_length,
                                      const unsigned char *info, size_t info_length,
                                      unsigned char *out, size_t out_length) {
    int ok = 0;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    if (kdf == NULL) return 0;
    EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(kdf);
    EVP_KDF_free(kdf);
    if (ctx == NULL) return 0;
    // OpenSSL rejects a zero-length key parameter; RFC 5869 allows an empty IKM, so pass
    // a pointer to a harmless byte with length 0 only where the provider accepts it.
    static const unsigned char empty = 0;
    OSSL_PARAM params[5];
    int n = 0;
    params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                                    (void *)(ikm_length ? ikm : &empty), ikm_length);
    params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
                                                    (void *)(salt_length ? salt : &empty), salt_length);
    params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                                    (void *)(info_length ? info : &empty), info_length);
    params[n] = OSSL_PARAM_construct_end();
    ok = EVP_KDF_derive(ctx, out, out_length, params) == 1;
    EVP_KDF_CTX_free(ctx);
    return ok;
}

// MARK: Encrypted PKCS#8 (PBES2 with scrypt and AES-256-CBC), as `openssl pkcs8 -topk8 -scrypt`.

/// Writes `key` as an encrypted PKCS#8 PEM into the memory BIO `out`.
static inline int secmail_write_pkcs8_scrypt_pem(BIO *out, EVP_PKEY *key,
                                                 const char *passphrase, int passphrase_length,
                                                 uint64_t n, uint64_t r, uint64_t p) {
    int ok = 0;
    X509_ALGOR *pbe = PKCS5_pbe2_set_scrypt(EVP_aes_256_cbc(), NULL, 0, NULL, n, r, p);
    if (pbe == NULL) return 0;
    PKCS8_PRIV_KEY_INFO *info = EVP_PKEY2PKCS8(key);
    if (info == NULL) {
        X509_ALGOR_free(pbe);
        return 0;
    }
    // PKCS8_set0_pbe takes ownership of `pbe` on success only.
    X509_SIG *sealed = PKCS8_set0_pbe(passphrase, passphrase_length, info, pbe);
    if (sealed == NULL) {
        X509_ALGOR_free(pbe);
    } else {
        ok = PEM_write_bio_PKCS8(out, sealed) == 1;
        X509_SIG_free(sealed);
    }
    PKCS8_PRIV_KEY_INFO_free(info);
    return ok;
}

/// Reads an encrypted PKCS#8 PEM ("ENCRYPTED PRIVATE KEY") and decrypts it with `passphrase`.
/// Unencrypted keys are refused: a key file at rest must always be encrypted.
/// On failure `*failed_stage` says where: 1 = not an encrypted PKCS#8 PEM, 2 = decryption or
/// decoding of the decrypted key failed (a wrong passphrase: with CBC padding, about 1 wrong
/// passphrase in 256 decrypts to valid padding and fails only at the ASN.1 stage), 3 = the
/// decrypted structure is not a usable key.
static inline EVP_PKEY *secmail_read_pkcs8_encrypted_pem(BIO *in, const char *passphrase,
                                                         int passphrase_length, int *failed_stage) {
    X509_SIG *sealed = PEM_read_bio_PKCS8(in, NULL, NULL, NULL);
    if (sealed == NULL) {
        *failed_stage = 1;
        return NULL;
    }
    PKCS8_PRIV_KEY_INFO *info = PKCS8_decrypt(sealed, passphrase, passphrase_length);
    X509_SIG_free(sealed);
    if (info == NULL) {
        *failed_stage = 2;
        return NULL;
    }
    EVP_PKEY *key = EVP_PKCS82PKEY(info);
    PKCS8_PRIV_KEY_INFO_free(info);
    if (key == NULL) *failed_stage = 3;
    return key;
}

/// Parses an unencrypted DER PKCS#8 PrivateKeyInfo (test vectors and fixtures).
static inline EVP_PKEY *secmail_read_pkcs8_der(const unsigned char *der, long length) {
    const unsigned char *cursor = der;
    PKCS8_PRIV_KEY_INFO *info = d2i_PKCS8_PRIV_KEY_INFO(NULL, &cursor, length);
    if (info == NULL) return NULL;
    EVP_PKEY *key = NULL;
    if (cursor == der + length) key = EVP_PKCS82PKEY(info);
    PKCS8_PRIV_KEY_INFO_free(info);
    return key;
}

/// Encodes an unencrypted PKCS#8 DER; the caller frees *der with secmail_free.
static inline int secmail_write_pkcs8_der(EVP_PKEY *key, unsigned char **der) {
    PKCS8_PRIV_KEY_INFO *info = EVP_PKEY2PKCS8(key);
    if (info == NULL) return -1;
    *der = NULL;
    int length = i2d_PKCS8_PRIV_KEY_INFO(info, der);
    PKCS8_PRIV_KEY_INFO_free(info);
    return length;
}

/// An RSA SubjectPublicKeyInfo read by OpenSSL's legacy RSA decoder, or NULL. Accepted only when
/// `der` is exactly the canonical encoding of the key read (i2d_PUBKEY gives back the same bytes:
/// the rsaEncryption algorithm, DER, nothing after), that is only where d2i_PUBKEY would read the
/// very same key; anything else is left to d2i_PUBKEY.
///
/// Why: OpenSSL 3.0's d2i_PUBKEY builds a chain of provider decoders on every call, about 130 us
/// for an RSA-3072 key on our machine against 3 us here, and every lookup, `open`, `seal` and
/// relay request parses identity bundles, two RSA keys each. (OpenSSL 3.2 caches the chain; Debian
/// 12 has 3.0.) d2i_RSA_PUBKEY and EVP_PKEY_assign_RSA are deprecated in 3.0 but supported there.
static inline EVP_PKEY *secmail_read_canonical_rsa_spki(const unsigned char *der, long length) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    const unsigned char *cursor = der;
    RSA *rsa = d2i_RSA_PUBKEY(NULL, &cursor, length);
    if (rsa == NULL) return NULL;
    EVP_PKEY *key = cursor == der + length ? EVP_PKEY_new() : NULL;
    if (key == NULL || EVP_PKEY_assign_RSA(key, rsa) != 1) {
        RSA_free(rsa);
        EVP_PKEY_free(key);
        return NULL;
    }
#pragma GCC diagnostic pop
    unsigned char *encoded = NULL;
    int encoded_length = i2d_PUBKEY(key, &encoded);
    int canonical = encoded_length == length && memcmp(encoded, der, (size_t)length) == 0;
    OPENSSL_free(encoded);
    if (!canonical) {
        EVP_PKEY_free(key);
        return NULL;
    }
    return key;
}

/// Parses a DER SubjectPublicKeyInfo, rejecting trailing bytes.
static inline EVP_PKEY *secmail_read_spki_der(const unsigned char *der, long length) {
    ERR_set_mark();
    EVP_PKEY *rsa = secmail_read_canonical_rsa_spki(der, length);
    ERR_pop_to_mark();
    if (rsa != NULL) return rsa;
    const unsigned char *cursor = der;
    EVP_PKEY *key = d2i_PUBKEY(NULL, &cursor, length);
    if (key != NULL && cursor != der + length) {
        EVP_PKEY_free(key);
        return NULL;
    }
    return key;
}

// MARK: TLS (SSL_CTX / SSL over memory BIOs)

/// Per-SSL_CTX data for the C callbacks: the pinned server key (client side) and the ALPN
/// protocols the server accepts, in wire format. Owned by the Swift TLSContext.
typedef struct {
    int has_pin;
    unsigned char pin[32];
    unsigned char *alpn;
    unsigned int alpn_length;
} secmail_tls_context_data;

static inline secmail_tls_context_data *secmail_tls_context_data_new(void) {
    return (secmail_tls_context_data *)calloc(1, sizeof(secmail_tls_context_data));
}

static inline void secmail_tls_context_data_free(secmail_tls_context_data *data) {
    if (data == NULL) return;
    free(data->alpn);
    free(data);
}

static inline int secmail_ssl_ctx_set_min_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}

static inline long secmail_ssl_ctx_set_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_mode(ctx, mode);
}

static inline int secmail_ssl_set_sni(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

// MARK: BIOs over the caller's buffers (bios.c)

/// A new input BIO (freed by SSL_free once given to SSL_set_bio): OpenSSL reads from up to two
/// byte ranges the caller points it at, in order (the unconsumed tail of an earlier network read,
/// then the new one), with no copy into a memory BIO.
BIO *secmail_input_bio_new(void);

/// Points the BIO at the segments (either may be empty). The pointers must stay valid until
/// `secmail_input_bio_take`.
void secmail_input_bio_set(BIO *bio, const unsigned char *first, size_t first_length,
                           const unsigned char *second, size_t second_length);

/// How many bytes of each segment OpenSSL consumed; then forgets the pointers.
void secmail_input_bio_take(BIO *bio, size_t *first_consumed, size_t *second_consumed);

/// A new output BIO (freed by SSL_free once given to SSL_set_bio): OpenSSL's output goes into
/// the buffer lent for one SSL_write, or, when none is lent or it is full, into an overflow
/// buffer the caller copies out (handshake messages, alerts, close_notify). Once anything is in
/// the overflow, later output goes there too until it is taken, so that the order holds.
BIO *secmail_output_bio_new(void);

/// Lends `capacity` bytes at `target` for the output of the calls until `secmail_output_bio_return`.
void secmail_output_bio_lend(BIO *bio, unsigned char *target, size_t capacity);

/// How many bytes of the lent buffer were filled; then forgets it.
size_t secmail_output_bio_return(BIO *bio);

/// The output that went to the overflow buffer (valid until the next call on the BIO).
size_t secmail_output_bio_overflow(BIO *bio, const unsigned char **bytes);

/// Forgets the overflow's bytes, once copied out (its memory is kept for reuse).
void secmail_output_bio_clear_overflow(BIO *bio);

// MARK: Development certificates (a CA and a server certificate for a relay's first start)

/// A fresh ECDSA P-256 key (EVP_EC_gen is a variadic macro).
static inline EVP_PKEY *secmail_ec_p256_generate(void) {
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

static inline int secmail_x509_add_extension(X509 *cert, X509 *issuer, int nid, const char *value) {
    X509V3_CTX context;
    X509V3_set_ctx_nodb(&context);
    X509V3_set_ctx(&context, issuer != NULL ? issuer : cert, cert, NULL, NULL, 0);
    X509_EXTENSION *extension = X509V3_EXT_conf_nid(NULL, &context, nid, value);
    if (extension == NULL) return 0;
    int ok = X509_add_ext(cert, extension, -1) == 1;
    X509_EXTENSION_free(extension);
    return ok;
}

/// Issues a certificate for `subject_key` named `common_name`, valid from now for `days` days,
/// signed by `issuer_key` (self-signed when `issuer` is NULL). A CA certificate when `is_ca`;
/// otherwise a TLS server certificate for the subjectAltName list `san` ("DNS:x,IP:y").
static inline X509 *secmail_x509_issue(EVP_PKEY *subject_key, const char *common_name, EVP_PKEY *issuer_key,
                                       X509 *issuer, int is_ca, const char *san, long days, long serial) {
    X509 *cert = X509_new();
    if (cert == NULL) return NULL;
    int ok = X509_set_version(cert, 2) == 1
        && ASN1_INTEGER_set(X509_get_serialNumber(cert), serial) == 1
        && X509_gmtime_adj(X509_getm_notBefore(cert), -60) != NULL
        && X509_gmtime_adj(X509_getm_notAfter(cert), days * 24 * 3600) != NULL
        && X509_set_pubkey(cert, subject_key) == 1;
    X509_NAME *name = X509_get_subject_name(cert);
    ok = ok && X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"secmail development", -1, -1, 0) == 1
        && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)common_name, -1, -1, 0) == 1
        && X509_set_issuer_name(cert, issuer != NULL ? X509_get_subject_name(issuer) : name) == 1;
    if (ok && is_ca) {
        ok = secmail_x509_add_extension(cert, issuer, NID_basic_constraints, "critical,CA:TRUE")
            && secmail_x509_add_extension(cert, issuer, NID_key_usage, "critical,keyCertSign,cRLSign")
            && secmail_x509_add_extension(cert, issuer, NID_subject_key_identifier, "hash");
    } else if (ok) {
        ok = secmail_x509_add_extension(cert, issuer, NID_basic_constraints, "critical,CA:FALSE")
            && secmail_x509_add_extension(cert, issuer, NID_key_usage, "critical,digitalSignature")
            && secmail_x509_add_extension(cert, issuer, NID_ext_key_usage, "serverAuth")
            && (san == NULL || secmail_x509_add_extension(cert, issuer, NID_subject_alt_name, san))
            && secmail_x509_add_extension(cert, issuer, NID_authority_key_identifier, "keyid");
    }
    ok = ok && X509_sign(cert, issuer_key, EVP_sha256()) > 0;
    if (!ok) {
        X509_free(cert);
        return NULL;
    }
    return cert;
}

/// PEM of a certificate into a memory BIO.
static inline int secmail_write_x509_pem(BIO *out, X509 *cert) {
    return PEM_write_bio_X509(out, cert);
}

/// Unencrypted PKCS#8 PEM of a private key into a memory BIO (a relay's TLS key, 0600 on disk).
static inline int secmail_write_private_key_pem(BIO *out, EVP_PKEY *key) {
    return PEM_write_bio_PrivateKey(out, key, NULL, NULL, 0, NULL, NULL);
}

/// SHA-256 of the DER SubjectPublicKeyInfo of `cert` into out[32].
static inline int secmail_x509_spki_sha256(X509 *cert, unsigned char *out) {
    unsigned char *der = NULL;
    int length = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
    if (length <= 0) return 0;
    unsigned int digest_length = 0;
    int ok = EVP_Digest(der, (size_t)length, out, &digest_length, EVP_sha256(), NULL) == 1 && digest_length == 32;
    OPENSSL_free(der);
    return ok;
}

/// The certificate's validity, notBefore and notAfter, in seconds since 1970; 0 when either
/// time cannot be read.
static inline int secmail_x509_validity(X509 *cert, int64_t *not_before, int64_t *not_after) {
    ASN1_TIME *epoch = ASN1_TIME_set(NULL, 0);
    if (epoch == NULL) return 0;
    int days = 0, seconds = 0, ok = 1;
    if (ASN1_TIME_diff(&days, &seconds, epoch, X509_get0_notBefore(cert)) == 1) {
        *not_before = (int64_t)days * 86400 + seconds;
    } else {
        ok = 0;
    }
    if (ok && ASN1_TIME_diff(&days, &seconds, epoch, X509_get0_notAfter(cert)) == 1) {
        *not_after = (int64_t)days * 86400 + seconds;
    } else {
        ok = 0;
    }
    ASN1_TIME_free(epoch);
    return ok;
}

/// The `index`-th DNS name (from 0) among the certificate's subject alternative names,
/// NUL-terminated in `buffer`; 0 when there is no such name (or it does not fit).
static inline int secmail_x509_dns_name(X509 *cert, int index, char *buffer, size_t length) {
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (names == NULL) return 0;
    int found = 0, seen = 0;
    for (int i = 0; i < sk_GENERAL_NAME_num(names) && !found; i++) {
        const GENERAL_NAME *name = sk_GENERAL_NAME_value(names, i);
        if (name->type != GEN_DNS || seen++ != index) continue;
        int n = ASN1_STRING_length(name->d.dNSName);
        if (n > 0 && (size_t)n < length) {
            memcpy(buffer, ASN1_STRING_get0_data(name->d.dNSName), (size_t)n);
            buffer[n] = 0;
            found = 1;
        }
        break;
    }
    GENERAL_NAMES_free(names);
    return found;
}

/// Verification by pin: the chain is not judged against any CA; the leaf's SPKI SHA-256 must
/// equal the pin (SSH-like trust on first use, decided by the caller).
static int secmail_verify_pin_callback(int preverify_ok, X509_STORE_CTX *store) {
    (void)preverify_ok;
    if (X509_STORE_CTX_get_error_depth(store) != 0) return 1;
    SSL *ssl = (SSL *)X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    if (ssl == NULL) return 0;
    secmail_tls_context_data *data = (secmail_tls_context_data *)SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    X509 *leaf = X509_STORE_CTX_get_current_cert(store);
    unsigned char digest[32];
    if (data == NULL || !data->has_pin || leaf == NULL || !secmail_x509_spki_sha256(leaf, digest)) return 0;
    if (CRYPTO_memcmp(digest, data->pin, 32) != 0) {
        X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    X509_STORE_CTX_set_error(store, X509_V_OK);
    return 1;
}

static inline void secmail_ssl_ctx_use_pin(SSL_CTX *ctx, secmail_tls_context_data *data, const unsigned char *pin) {
    memcpy(data->pin, pin, 32);
    data->has_pin = 1;
    SSL_CTX_set_app_data(ctx, data);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, secmail_verify_pin_callback);
}

static int secmail_alpn_select_callback(SSL *ssl, const unsigned char **out, unsigned char *out_length,
                                        const unsigned char *in, unsigned int in_length, void *arg) {
    (void)ssl;
    secmail_tls_context_data *data = (secmail_tls_context_data *)arg;
    unsigned char *selected = NULL;
    unsigned char selected_length = 0;
    if (data == NULL || data->alpn == NULL) return SSL_TLSEXT_ERR_NOACK;
    if (SSL_select_next_proto(&selected, &selected_length, data->alpn, data->alpn_length, in, in_length)
        != OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_ALERT_FATAL;  // RFC 7301: no_application_protocol
    }
    *out = selected;
    *out_length = selected_length;
    return SSL_TLSEXT_ERR_OK;
}

/// Server side: accept one of `wire` (ALPN wire format), preferring the server's order.
static inline int secmail_ssl_ctx_set_alpn_server(SSL_CTX *ctx, secmail_tls_context_data *data,
                                                  const unsigned char *wire, unsigned int length) {
    data->alpn = (unsigned char *)malloc(length);
    if (data->alpn == NULL) return 0;
    memcpy(data->alpn, wire, length);
    data->alpn_length = length;
    SSL_CTX_set_alpn_select_cb(ctx, secmail_alpn_select_callback, data);
    return 1;
}

#endif
