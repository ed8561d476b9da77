import FoundationEssentials
import Glibc
import SecmailFormat

/// Contact keys pinned on first use ($SECMAIL_HOME/contacts/NAME.id, the armored bundle), and
/// the fingerprint the user compared, if any (NAME.compared: hex and key version).
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
        try names().compactMap { try pinned($0) }
    }

    /// The names of the pinned contacts, sorted, from the file names alone (nothing is parsed).
    public func names() -> [IdentityName] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return files.filter { $0.hasSuffix(".id") }.sorted().compactMap { file in
            // Files whose names are not identity names are not pins (e.g. an editor's backup).
            guard let name = try? IdentityName(String(file.dropLast(3))), name.value == String(file.dropLast(3)) else { return nil }
            return name
        }
    }

    /// "; did you mean bob?" when the names of pinned contacts other than `name` are one or two
    /// edits from it (a typo), else "".
    public func suggestion(for name: IdentityName) -> String {
        let close = names().map(\.value).filter { $0 != name.value && editDistance($0, name.value) <= 2 }
        guard !close.isEmpty else { return "" }
        return "; did you mean \(close.joined(separator: " or "))?"
    }

    /// Why a key is pinned.
    public enum PinReason: Sendable {
        /// Taken from the relay the first time the name was used (trust on first use).
        case firstUse
        /// A logged rotation whose continuity signature leads from the pinned key.
        case rotation
        /// The user compared the fingerprint out of band (`trust`), or it is the user's own key.
        case compared
    }

    /// How far a pinned key is trusted, for `contacts`.
    public enum Trust: Sendable, Equatable {
        case firstUse
        case compared
        /// Compared at `version`; the pin has since followed signed, logged rotations.
        case comparedBeforeRotation(version: UInt32)
    }

    /// Pins `bundle` for its name, replacing any earlier pin, and records whether its fingerprint
    /// was compared: a first-use pin forgets any earlier comparison, a rotation keeps it (the new
    /// key is signed by the compared one), a comparison records this key.
    public func pin(_ bundle: IdentityBundle, reason: PinReason) throws {
        try FileSystem.createPrivateDirectory(directory)
        let url = directory.appendingPathComponent("\(bundle.name.value).id")
        try FileSystem.replaceFile(url, bytes: Array(bundle.armored.utf8))
        switch reason {
        case .firstUse:
            try? FileManager.default.removeItem(at: comparisonFile(bundle.name))
        case .rotation:
            break
        case .compared:
            try FileSystem.replaceFile(comparisonFile(bundle.name), bytes: Array("\(bundle.fingerprint.hex) \(bundle.keyVersion)\n".utf8))
        }
    }

    /// Removes the pin of `name` and the record of its comparison (that first: a crash in between
    /// leaves a pin taken on first use, never a comparison without its pin); returns the key that
    /// was pinned, nil when none was.
    public func forget(_ name: IdentityName) throws -> IdentityBundle? {
        guard let pinned = try pinned(name) else { return nil }
        for file in [comparisonFile(name), directory.appendingPathComponent("\(name.value).id")]
        where FileManager.default.fileExists(atPath: file.path) {
            do {
                try FileManager.default.removeItem(at: file)
            } catch {
                throw ClientError(.io, "cannot remove \(file.path): \(String(describing: error))")
            }
        }
        try FileSystem.synchronize(directory)
        return pinned
    }

    /// Whether the pinned `bundle`'s fingerprint, or one it rotated from, was compared.
    public func trust(of bundle: IdentityBundle) -> Trust {
        guard let data = try? FileSystem.read(comparisonFile(bundle.name)) else { return .firstUse }
        let fields = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isWhitespace)
        guard fields.count == 2, let version = UInt32(fields[1]) else { return .firstUse }
        if fields[0] == bundle.fingerprint.hex { return .compared }
        return version < bundle.keyVersion ? .comparedBeforeRotation(version: version) : .firstUse
    }

    private func comparisonFile(_ name: IdentityName) -> URL {
        directory.appendingPathComponent("\(name.value).compared")
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
