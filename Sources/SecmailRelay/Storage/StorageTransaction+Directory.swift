import Foundation

/// Reads of the identities and the log that the directory, sign-in, deposits and the log store
/// each make: one statement each, on either engine.
extension StorageTransaction {
    /// The encoding of `name`'s current (highest) key version, or nil when no one registered it.
    func latestBundleEncoding(of name: String) throws -> Data? {
        try fetchOne(Data.self, "SELECT bundle FROM identities WHERE name = ? ORDER BY key_version DESC LIMIT 1", [name])
    }

    /// Whether someone registered `name`.
    func isRegistered(_ name: String) throws -> Bool {
        try fetchOne(Int.self, "SELECT 1 FROM identities WHERE name = ? LIMIT 1", [name]) != nil
    }

    /// The data of log leaf `index`, or nil past the end of the log.
    func logLeafData(at index: UInt64) throws -> Data? {
        try fetchOne(Data.self, "SELECT leaf_data FROM log_leaves WHERE leaf_index = ?", [Int64(index)])
    }

    /// Removes the challenge `nonce`; whether there was one to remove.
    func consumeChallenge(_ nonce: [UInt8]) throws -> Bool {
        try execute("DELETE FROM challenges WHERE nonce = ?", [Data(nonce)]) == 1
    }
}
