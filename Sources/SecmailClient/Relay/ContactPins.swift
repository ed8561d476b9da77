import Foundation
import SecmailFormat

/// Contact keys pinned on first use ($SECMAIL_HOME/contacts/NAME.id, the armored bundle).
public struct ContactPins: Sendable {
    public let home: SecmailHome

    public init(home: SecmailHome) {
        self.home = home
    }

    var directory: URL { home.url.appendingPathComponent("contacts", isDirectory: true) }

    public func pinned(_ name: IdentityName) throws -> IdentityBundle? {
        let url = directory.appendingPathComponent("\(name.value).id")
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        do {
            return try IdentityBundle(armoredOrBinary: FileSystem.read(url))
        } catch let error as FormatError {
            throw ClientError(.corruptState, "the pinned key \(url.path) is damaged: \(error.reason)")
        }
    }

    /// Every pinned contact, by name.
    public func all() throws -> [IdentityBundle] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return try files.filter { $0.hasSuffix(".id") }.sorted().compactMap { file in
            // Files whose names are not identity names are not pins (e.g. an editor's backup).
            guard let name = try? IdentityName(String(file.dropLast(3))), name.value == String(file.dropLast(3)) else { return nil }
            return try pinned(name)
        }
    }

    /// Pins `bundle` for its name, replacing any earlier pin.
    public func pin(_ bundle: IdentityBundle) throws {
        try FileSystem.createPrivateDirectory(directory)
        let url = directory.appendingPathComponent("\(bundle.name.value).id")
        try FileSystem.replaceFile(url, bytes: Array(bundle.armored.utf8), permissions: 0o600)
    }

    /// The hard stop when a contact's key changed without a verifiable rotation (P5).
    static func keyChanged(pinned: IdentityBundle, served: IdentityBundle) -> ClientError {
        ClientError(.verificationFailed, """
            the key of \(served.name) CHANGED: pinned \(pinned.fingerprint.grouped) (version \(pinned.keyVersion)), \
            the relay now serves \(served.fingerprint.grouped) (version \(served.keyVersion)). \
            Do not send anything until you have compared the new fingerprint with \(served.name) in person; \
            then accept it with: secmail trust \(served.name) --fingerprint \(served.fingerprint.hex)
            """)
    }
}
