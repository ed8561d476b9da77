/// The relay's database schema history, embedded in the binary (SwiftPM `.embedInCode`).
///
/// Append only: a shipped migration is never edited. Each entry carries the SHA-256 of its SQL as
/// shipped; a test fails if a file no longer matches, and the relay refuses a database whose
/// applied migrations differ from these.
public enum SchemaMigrations {
    public struct Migration: Sendable {
        /// File name without extension, e.g. "V001__directory"; migrations apply in this order.
        public let name: String
        public let sql: String
        /// Lower-case hex SHA-256 of the SQL file as shipped.
        public let sha256: String
    }

    /// The SQLite history (migrations/sqlite), from the first relay on.
    public static let sqlite: [Migration] = [
        Migration(
            name: "V001__directory",
            sql: String(decoding: PackageResources.V001__directory_sql, as: UTF8.self),
            sha256: "2358b46207c9351e1068bae55ecfa2df494e52cc8a774f5ff92b67aec2f152cf"),
        Migration(
            name: "V002__mailboxes",
            sql: String(decoding: PackageResources.V002__mailboxes_sql, as: UTF8.self),
            sha256: "86d89b837aa4c857add4ec509f2f85eac3d9a5f1198f571da42c79797cb1564d"),
        Migration(
            name: "V003__mailbox_usage",
            sql: String(decoding: PackageResources.V003__mailbox_usage_sql, as: UTF8.self),
            sha256: "f84cbc378dc0b17e92c1724cedf5baa0490881694c1e91044bb3abf9ed6e2f34"),
        Migration(
            name: "V004__inline_envelopes",
            sql: String(decoding: PackageResources.V004__inline_envelopes_sql, as: UTF8.self),
            sha256: "c98751df74a20e22bd0af7d917a6626c43cda10aee16b08eefa517a27fb5119c"),
        Migration(
            name: "V005__name_map",
            sql: String(decoding: PackageResources.V005__name_map_sql, as: UTF8.self),
            sha256: "05d1b1aa90f27d95d83d62676925f9904b92c40db76c4aa8059c719f94121e40"),
        Migration(
            name: "V006__name_skeletons",
            sql: String(decoding: PackageResources.V006__name_skeletons_sql, as: UTF8.self),
            sha256: "d7a91406544918e4aa80fe81906743d21060b23dfa88ef828dfce6ff2b0ade16"),
        Migration(
            name: "V007__key_owners",
            sql: String(decoding: PackageResources.V007__key_owners_sql, as: UTF8.self),
            sha256: "1b41954b6a30cf3b3460b5af47c1f435e985aaa418ce854b817f54dd1249da76"),
        Migration(
            name: "V008__reader_features",
            sql: String(decoding: PackageResources.V008__reader_features_sql, as: UTF8.self),
            sha256: "bea0f0b125c34d0936af546993d80de99dd9bcf073fde3f712a6809042781370"),
        Migration(
            name: "V009__sender_usage",
            sql: String(decoding: PackageResources.V009__sender_usage_sql, as: UTF8.self),
            sha256: "d43534392107dc3365aaf1a6725cc2714829cffc6e3fef3473fcb4a670286efa"),
        Migration(
            name: "V010__envelope_hash_dropped",
            sql: String(decoding: PackageResources.V010__envelope_hash_dropped_sql, as: UTF8.self),
            sha256: "b51f08e8fe9228dd866f0486f3faed55b6ad168b0f280b4b6afa20f5fbce48e8"),
    ]

    /// The PostgreSQL history (migrations/postgres): begins with SQLite's schema as of V009.
    public static let postgres: [Migration] = [
        Migration(
            name: "V001__relay",
            sql: String(decoding: PackageResources.V001__relay_sql, as: UTF8.self),
            sha256: "7d8b9824677007a109e02ed4426c1cf7afdf2fa79535cd70eb5e46658e70a75b"),
        Migration(
            name: "V002__envelope_hash_dropped",
            sql: String(decoding: PackageResources.V002__envelope_hash_dropped_sql, as: UTF8.self),
            sha256: "bb8818b17ad74f16d92265b510312b05083c74aa476ff585a093bb02518c8cb2"),
    ]
}
