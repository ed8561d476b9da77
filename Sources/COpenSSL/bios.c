// The BIOs that let OpenSSL read received bytes from, and write records into, buffers the Swift
// side lends (SecmailTLS's TLSSession), declared in shim.h. Their method tables and state live
// here, once for the process.
#include "shim.h"

/// A BIO method of our own named `name`, or NULL.
static BIO_METHOD *secmail_bio_method(const char *name, int (*read)(BIO *, char *, int), int (*write)(BIO *, const char *, int),
                                      long (*ctrl)(BIO *, int, long, void *), int (*create)(BIO *), int (*destroy)(BIO *)) {
    BIO_METHOD *method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, name);
    if (method == NULL) return NULL;
    BIO_meth_set_read(method, read);
    BIO_meth_set_write(method, write);
    BIO_meth_set_ctrl(method, ctrl);
    BIO_meth_set_create(method, create);
    BIO_meth_set_destroy(method, destroy);
    return method;
}

/// Gives a new BIO `size` bytes of zeroed state; 0 when out of memory.
static int secmail_bio_attach_state(BIO *bio, size_t size) {
    void *state = calloc(1, size);
    if (state == NULL) return 0;
    BIO_set_data(bio, state);
    BIO_set_init(bio, 1);
    return 1;
}

// MARK: Inbound BIO reading straight from the caller's buffers (no copy into a memory BIO)

/// Up to two byte ranges OpenSSL reads from in order: the unconsumed tail of an earlier network
/// read, then the new one. The pointers are valid only while the Swift side holds the buffers.
typedef struct {
    const unsigned char *segment[2];
    size_t length[2];
    size_t offset[2];
} secmail_input;

static int secmail_input_bio_read(BIO *bio, char *out, int size) {
    secmail_input *input = (secmail_input *)BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    if (input == NULL || out == NULL || size <= 0) return 0;
    size_t copied = 0;
    for (int i = 0; i < 2 && copied < (size_t)size; i++) {
        size_t available = input->length[i] - input->offset[i];
        size_t wanted = (size_t)size - copied;
        size_t take = available < wanted ? available : wanted;
        if (take > 0) {
            memcpy(out + copied, input->segment[i] + input->offset[i], take);
            input->offset[i] += take;
            copied += take;
        }
    }
    if (copied == 0) {
        BIO_set_retry_read(bio);
        return -1;
    }
    return (int)copied;
}

static int secmail_input_bio_write(BIO *bio, const char *in, int size) {
    (void)bio; (void)in; (void)size;
    return -1;
}

static long secmail_input_bio_ctrl(BIO *bio, int command, long number, void *pointer) {
    (void)number; (void)pointer;
    secmail_input *input = (secmail_input *)BIO_get_data(bio);
    switch (command) {
    case BIO_CTRL_PENDING:
        return input == NULL ? 0 : (long)((input->length[0] - input->offset[0]) + (input->length[1] - input->offset[1]));
    case BIO_CTRL_FLUSH:
        return 1;
    default:
        return 0;
    }
}

static int secmail_input_bio_create(BIO *bio) {
    return secmail_bio_attach_state(bio, sizeof(secmail_input));
}

static int secmail_input_bio_destroy(BIO *bio) {
    free(BIO_get_data(bio));
    BIO_set_data(bio, NULL);
    return 1;
}

void secmail_input_bio_set(BIO *bio, const unsigned char *first, size_t first_length,
                           const unsigned char *second, size_t second_length) {
    secmail_input *input = (secmail_input *)BIO_get_data(bio);
    input->segment[0] = first;
    input->length[0] = first_length;
    input->offset[0] = 0;
    input->segment[1] = second;
    input->length[1] = second_length;
    input->offset[1] = 0;
}

void secmail_input_bio_take(BIO *bio, size_t *first_consumed, size_t *second_consumed) {
    secmail_input *input = (secmail_input *)BIO_get_data(bio);
    *first_consumed = input->offset[0];
    *second_consumed = input->offset[1];
    memset(input, 0, sizeof(*input));
}

// MARK: Outbound BIO writing straight into the caller's buffer (no copy out of a memory BIO)

/// Where OpenSSL's output goes: into the buffer the Swift side lends for one SSL_write (the
/// records go to the network from there), or, when none is lent or it is full, into `overflow`,
/// which the Swift side copies out (handshake messages, alerts, close_notify). Once anything is in
/// `overflow`, later output goes there too until it is taken, so that the order holds.
typedef struct {
    unsigned char *target;
    size_t capacity;
    size_t used;
    unsigned char *overflow;
    size_t overflow_length;
    size_t overflow_capacity;
} secmail_output;

static int secmail_output_bio_write(BIO *bio, const char *in, int size) {
    secmail_output *output = (secmail_output *)BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    if (output == NULL || in == NULL || size < 0) return -1;
    size_t count = (size_t)size;
    if (output->overflow_length == 0 && output->target != NULL && output->capacity - output->used >= count) {
        memcpy(output->target + output->used, in, count);
        output->used += count;
        return size;
    }
    if (output->overflow_capacity - output->overflow_length < count) {
        size_t capacity = output->overflow_capacity > 0 ? output->overflow_capacity : 16384;
        while (capacity - output->overflow_length < count) {
            if (capacity > SIZE_MAX / 2) return -1;
            capacity *= 2;
        }
        unsigned char *grown = (unsigned char *)realloc(output->overflow, capacity);
        if (grown == NULL) return -1;
        output->overflow = grown;
        output->overflow_capacity = capacity;
    }
    memcpy(output->overflow + output->overflow_length, in, count);
    output->overflow_length += count;
    return size;
}

static int secmail_output_bio_read(BIO *bio, char *out, int size) {
    (void)bio; (void)out; (void)size;
    return -1;
}

static long secmail_output_bio_ctrl(BIO *bio, int command, long number, void *pointer) {
    (void)number; (void)pointer;
    secmail_output *output = (secmail_output *)BIO_get_data(bio);
    switch (command) {
    case BIO_CTRL_PENDING:
    case BIO_CTRL_WPENDING:
        return output == NULL ? 0 : (long)(output->used + output->overflow_length);
    case BIO_CTRL_FLUSH:
        return 1;
    default:
        return 0;
    }
}

static int secmail_output_bio_create(BIO *bio) {
    return secmail_bio_attach_state(bio, sizeof(secmail_output));
}

static int secmail_output_bio_destroy(BIO *bio) {
    secmail_output *output = (secmail_output *)BIO_get_data(bio);
    if (output != NULL) free(output->overflow);
    free(output);
    BIO_set_data(bio, NULL);
    return 1;
}

void secmail_output_bio_lend(BIO *bio, unsigned char *target, size_t capacity) {
    secmail_output *output = (secmail_output *)BIO_get_data(bio);
    output->target = target;
    output->capacity = capacity;
    output->used = 0;
}

size_t secmail_output_bio_return(BIO *bio) {
    secmail_output *output = (secmail_output *)BIO_get_data(bio);
    size_t used = output->used;
    output->target = NULL;
    output->capacity = 0;
    output->used = 0;
    return used;
}

size_t secmail_output_bio_overflow(BIO *bio, const unsigned char **bytes) {
    secmail_output *output = (secmail_output *)BIO_get_data(bio);
    *bytes = output->overflow;
    return output->overflow_length;
}

void secmail_output_bio_clear_overflow(BIO *bio) {
    ((secmail_output *)BIO_get_data(bio))->overflow_length = 0;
}

// MARK: The two methods, made once for the process

static BIO_METHOD *secmail_input_bio_method = NULL;
static BIO_METHOD *secmail_output_bio_method = NULL;
static CRYPTO_ONCE secmail_bio_methods_once = CRYPTO_ONCE_STATIC_INIT;

static void secmail_bio_methods_init(void) {
    secmail_input_bio_method = secmail_bio_method("secmail input", secmail_input_bio_read, secmail_input_bio_write,
                                                  secmail_input_bio_ctrl, secmail_input_bio_create, secmail_input_bio_destroy);
    secmail_output_bio_method = secmail_bio_method("secmail output", secmail_output_bio_read, secmail_output_bio_write,
                                                   secmail_output_bio_ctrl, secmail_output_bio_create, secmail_output_bio_destroy);
}

/// A new BIO of the method `*method`, once the methods are made; NULL when either fails.
static BIO *secmail_bio_new_of(BIO_METHOD *const *method) {
    if (!CRYPTO_THREAD_run_once(&secmail_bio_methods_once, secmail_bio_methods_init) || *method == NULL) return NULL;
    return BIO_new(*method);
}

BIO *secmail_input_bio_new(void) {
    return secmail_bio_new_of(&secmail_input_bio_method);
}

BIO *secmail_output_bio_new(void) {
    return secmail_bio_new_of(&secmail_output_bio_method);
}
