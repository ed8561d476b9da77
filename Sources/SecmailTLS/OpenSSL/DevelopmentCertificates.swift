internal import COpenSSL
import FoundationEssentials
import Glibc

/// Development TLS material made at a relay's first start when no certificate is configured:
/// a private CA and a server certificate for localhost, 127.0.0.1 and ::1 (ECDSA P-256).
/// Clients trust the CA file or pin the key; a real deployment passes its own certificate.
public enum DevelopmentCertificates {
    public struct Files: Sendable {
        public let certificateAuthority: URL
        public let certificateChain: URL
        public let privateKey: URL
    }

    /// The files in `directory`, whether or not they exist yet.
    public static func files(in directory: URL) -> Files {
        Files(certificateAuthority: directory.appendingPathComponent("dev-ca.pem"),
              certificateChain: directory.appendingPathComponent("relay.pem"),
              privateKey: directory.appendingPathComponent("relay.key.pem"))
    }

    /// Creates the CA and the server certificate in `directory` (mode 0700), valid for `days`.
    /// The CA's key is used once and not kept, so nothing else can ever be issued under it.
    public static func generate(in directory: URL, days: Int = 825) throws -> Files {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        OpenSSLErrors.clear()
        guard let caKey = secmail_ec_p256_generate(), let serverKey = secmail_ec_p256_generate() else {
            throw OpenSSLErrors.error(.invalidConfiguration, "could not generate certificate keys")
        }
        defer {
            EVP_PKEY_free(caKey)
            EVP_PKEY_free(serverKey)
        }
        let serial = Int.random(in: 1...Int(Int32.max))
        guard let ca = secmail_x509_issue(caKey, "secmail relay development CA", caKey, nil, 1, nil, 3650, serial) else {
            throw OpenSSLErrors.error(.invalidConfiguration, "could not create the development CA")
        }
        defer { X509_free(ca) }
        guard let server = secmail_x509_issue(serverKey, "localhost", caKey, ca, 0, "DNS:localhost,IP:127.0.0.1,IP:::1",
                                              days, serial + 1) else {
            throw OpenSSLErrors.error(.invalidConfiguration, "could not create the relay certificate")
        }
        defer { X509_free(server) }
        let files = files(in: directory)
        try write(pem { secmail_write_x509_pem($0, ca) }, to: files.certificateAuthority, permissions: 0o644)
        try write(pem { secmail_write_x509_pem($0, server) }, to: files.certificateChain, permissions: 0o644)
        try write(pem { secmail_write_private_key_pem($0, serverKey) }, to: files.privateKey, permissions: 0o600)
        _ = OpenSSLErrors.drain()
        return files
    }

    /// SHA-256 of the SubjectPublicKeyInfo of the first certificate in a PEM file: the value a
    /// client pins with `TLSConfiguration.Trust.pinnedPublicKey`.
    public static func publicKeyPin(certificateFile: URL) throws -> [UInt8] {
        try withFirstCertificate(in: certificateFile) { cert in
            var digest = [UInt8](repeating: 0, count: 32)
            guard secmail_x509_spki_sha256(cert, &digest) == 1 else {
                throw OpenSSLErrors.error(.invalidConfiguration, "could not hash the certificate's public key")
            }
            return digest
        }
    }

    /// When the first certificate in a PEM file becomes valid and stops being valid, in seconds
    /// since 1970.
    public static func validity(certificateFile: URL) throws -> (notBefore: Int64, notAfter: Int64) {
        try withFirstCertificate(in: certificateFile) { cert in
            var notBefore: Int64 = 0, notAfter: Int64 = 0
            guard secmail_x509_validity(cert, &notBefore, &notAfter) == 1 else {
                throw OpenSSLErrors.error(.invalidConfiguration, "could not read the validity of the certificate in \(certificateFile.path)")
            }
            return (notBefore, notAfter)
        }
    }

    /// The DNS names the first certificate in a PEM file is issued for (subject alternative names).
    public static func dnsNames(certificateFile: URL) throws -> [String] {
        try withFirstCertificate(in: certificateFile) { dnsNames(of: $0) }
    }

    /// The DNS subject alternative names of `certificate`, in order.
    static func dnsNames(of certificate: OpaquePointer) -> [String] {
        var names: [String] = []
        var buffer = [CChar](repeating: 0, count: 256)
        while secmail_x509_dns_name(certificate, Int32(names.count), &buffer, buffer.count) == 1 {
            names.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return names
    }

    private static func withFirstCertificate<T>(in certificateFile: URL, _ body: (OpaquePointer) throws -> T) throws -> T {
        OpenSSLErrors.clear()
        guard let bio = BIO_new_file(certificateFile.path, "r") else {
            throw OpenSSLErrors.error(.invalidConfiguration, "cannot read \(certificateFile.path)")
        }
        defer { BIO_free(bio) }
        guard let cert = PEM_read_bio_X509(bio, nil, nil, nil) else {
            throw OpenSSLErrors.error(.invalidConfiguration, "\(certificateFile.path) holds no PEM certificate")
        }
        defer { X509_free(cert) }
        let result = try body(cert)
        _ = OpenSSLErrors.drain()
        return result
    }

    private static func pem(_ write: (OpaquePointer) -> Int32) throws -> [UInt8] {
        guard let bio = BIO_new(BIO_s_mem()) else {
            throw OpenSSLErrors.error(.invalidConfiguration, "could not allocate a memory BIO")
        }
        defer { BIO_free(bio) }
        guard write(bio) == 1 else {
            throw OpenSSLErrors.error(.invalidConfiguration, "could not encode PEM")
        }
        var data: UnsafePointer<UInt8>?
        let length = secmail_bio_contents(bio, &data)
        guard length > 0, let data else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: length))
    }

    private static func write(_ bytes: [UInt8], to url: URL, permissions: Int) throws {
        guard FileManager.default.createFile(atPath: url.path, contents: Data(bytes), attributes: [.posixPermissions: permissions]) else {
            throw TLSError(.invalidConfiguration, "cannot write \(url.path)")
        }
    }
}
