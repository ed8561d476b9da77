-- V007: which name each public key belongs to (SHA-256 of the key's SubjectPublicKeyInfo DER,
-- signing and encryption keys alike), so a registration or rotation bringing a key that another
-- name already uses is refused with one index lookup per key. Filled at registration and
-- rotation; a relay fills it for older names at start-up.
CREATE TABLE key_owners (
    key_hash BLOB NOT NULL PRIMARY KEY CHECK (length(key_hash) = 32),
    name     TEXT NOT NULL
) STRICT, WITHOUT ROWID;
