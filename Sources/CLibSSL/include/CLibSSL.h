// libssl, loaded when TLS is first used instead of linked (libssl.c says why and how).
#ifndef SECMAIL_LIBSSL_H
#define SECMAIL_LIBSSL_H

#include <stddef.h>

// Loads libssl (once, for the whole process) and answers 1; or 0, with the loader's reason in
// `message` (when given). SecmailTLS calls it before its first SSL_CTX; a libssl function
// called before that loads it too, and ends the program if it cannot.
int secmail_libssl_load(char *message, size_t message_size);

#endif
