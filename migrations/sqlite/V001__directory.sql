-- V001: the key directory and its transparency log. Shipped migrations are never edited:
-- add V002__... instead (the checksum manifest in Migrations.swift and a test enforce this).

-- Every key version of every name, in log order.
CREATE TABLE identities (
    name        TEXT    NOT NULL,
    key_version INTEGER NOT NULL CHECK (key_version >= 1),
    bundle      BLOB    NOT NULL,
    fingerprint BLOB    NOT NULL UNIQUE CHECK (length(fingerprint) = 32),
    log_index   INTEGER NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (name, key_version)
) STRICT;

-- The append-only log: leaf data in order.
CREATE TABLE log_leaves (
    leaf_index INTEGER PRIMARY KEY CHECK (leaf_index >= 0),
    leaf_data  BLOB    NOT NULL,
    added_at   INTEGER NOT NULL
) STRICT;

-- Hash of every complete, aligned subtree: level 0 are the leaf hashes; (level k, index i)
-- covers leaves i*2^k ..< (i+1)*2^k. Written once, when the subtree completes.
CREATE TABLE log_nodes (
    level      INTEGER NOT NULL CHECK (level >= 0),
    node_index INTEGER NOT NULL CHECK (node_index >= 0),
    hash       BLOB    NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, node_index)
) STRICT, WITHOUT ROWID;

-- Invite codes (stored hashed) for relays that require them.
CREATE TABLE invites (
    code_hash  BLOB    PRIMARY KEY CHECK (length(code_hash) = 32),
    created_at INTEGER NOT NULL,
    used_by    TEXT
) STRICT;

-- Authentication: one-time challenges and short-lived session tokens (stored hashed).
CREATE TABLE challenges (
    nonce      BLOB    PRIMARY KEY,
    name       TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE TABLE sessions (
    token_hash BLOB    PRIMARY KEY CHECK (length(token_hash) = 32),
    name       TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
