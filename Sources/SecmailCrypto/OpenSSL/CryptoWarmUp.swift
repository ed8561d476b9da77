internal import COpenSSL

/// Starts OpenSSL on a second thread while the command line is still being parsed.
///
/// OpenSSL 3 reads its configuration and builds its algorithm tables on first use, and each
/// algorithm's first fetch constructs its provider methods: together about 1.3 ms of every
/// `seal`, `open` and relay command, paid on the main thread after the ~3 ms of argument parsing.
/// Doing it on the machine's other core takes it off the command's path; a command that reaches
/// OpenSSL before the warm-up is done simply waits inside OpenSSL's own run-once locks.
public enum CryptoWarmUp {
    /// Initialises OpenSSL without its exit-time cleanup, then warms it on a detached thread.
    ///
    /// Without the cleanup a process may end while the warm-up thread is still inside OpenSSL
    /// (`secmail --version`), which OpenSSL's `atexit` handler does not allow. Nothing secret
    /// depends on that handler: keys are wiped by their owners, and the kernel discards the rest.
    public static func begin() {
        // The base initialisation is cheap and takes the flags of its first caller, so it runs
        // here, before any other thread can reach OpenSSL.
        _ = OPENSSL_init_crypto(UInt64(OPENSSL_INIT_NO_ATEXIT), nil)
        detachThread { warm() }
    }

    /// Loads the configuration and fetches what the commands use: SHA-256, AES-256-GCM, HKDF and
    /// the RSA key management, signature and cipher methods.
    static func warm() {
        _ = OPENSSL_init_crypto(UInt64(OPENSSL_INIT_LOAD_CONFIG), nil)
        EVP_MD_free(EVP_MD_fetch(nil, "SHA256", nil))
        EVP_CIPHER_free(EVP_CIPHER_fetch(nil, "AES-256-GCM", nil))
        EVP_KDF_free(EVP_KDF_fetch(nil, "HKDF", nil))
        EVP_KEYMGMT_free(EVP_KEYMGMT_fetch(nil, "RSA", nil))
        EVP_SIGNATURE_free(EVP_SIGNATURE_fetch(nil, "RSA", nil))
        EVP_ASYM_CIPHER_free(EVP_ASYM_CIPHER_fetch(nil, "RSA", nil))
        // The thread ends here; its error queue (anything the fetches left in it) goes with the rest.
        OpenSSLErrorQueue.releaseThreadState()
    }
}
