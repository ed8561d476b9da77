internal import COpenSSL

/// Wiping of plain byte arrays that held secret material (key bytes, passphrases, decrypted
/// text, agent frames): one function for every module, on OpenSSL's cleanse, which the compiler
/// cannot drop as a dead store.
public enum SecretBytes {
    /// Overwrites every byte of `bytes` with zeros.
    public static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { buffer in
            if let base = buffer.baseAddress { OPENSSL_cleanse(base, buffer.count) }
        }
    }
}
