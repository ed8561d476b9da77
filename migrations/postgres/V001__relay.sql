-- V001 (PostgreSQL): the relay's whole schema as of SQLite's V009, for relays that share one
-- database. Same tables, columns and checks as the SQLite history; integers are BIGINT and byte
-- strings BYTEA. Large envelopes live here too, in chunks (no shared file system is needed).
-- Shipped migrations are never edited.

-- The log's origin and key, as the first relay to serve this database signed with them: every
-- relay sharing the database must sign with the same ones (one row).
CREATE TABLE log_signer (
    singleton    BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    origin       TEXT    NOT NULL,
    verifier_key TEXT    NOT NULL
);

-- The key directory: every key version of every name, each also a log leaf.
CREATE TABLE identities (
    name        TEXT   NOT NULL,
    key_version BIGINT NOT NULL CHECK (key_version >= 1),
    bundle      BYTEA  NOT NULL,
    fingerprint BYTEA  NOT NULL UNIQUE CHECK (length(fingerprint) = 32),
    log_index   BIGINT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (name, key_version)
);

-- The transparency log: leaves in order, and the hash of every complete subtree.
CREATE TABLE log_leaves (
    leaf_index BIGINT PRIMARY KEY CHECK (leaf_index >= 0),
    leaf_data  BYTEA  NOT NULL,
    added_at   BIGINT NOT NULL
);

CREATE TABLE log_nodes (
    level      BIGINT NOT NULL CHECK (level >= 0),
    node_index BIGINT NOT NULL CHECK (node_index >= 0),
    hash       BYTEA  NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, node_index)
);

-- The name map's interior nodes.
CREATE TABLE map_nodes (
    depth  BIGINT NOT NULL CHECK (depth BETWEEN 0 AND 255),
    prefix BYTEA  NOT NULL CHECK (length(prefix) = (depth + 7) / 8),
    node   BYTEA  NOT NULL,
    PRIMARY KEY (depth, prefix)
);

-- Registration rules: look-alike names, one name per key, invites.
CREATE TABLE name_skeletons (
    skeleton TEXT NOT NULL PRIMARY KEY,
    name     TEXT NOT NULL
);

CREATE TABLE key_owners (
    key_hash BYTEA NOT NULL PRIMARY KEY CHECK (length(key_hash) = 32),
    name     TEXT  NOT NULL
);

CREATE TABLE invites (
    code_hash  BYTEA  PRIMARY KEY CHECK (length(code_hash) = 32),
    created_at BIGINT NOT NULL,
    used_by    TEXT
);

CREATE TABLE reader_features (
    name       TEXT   NOT NULL PRIMARY KEY,
    features   TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Sign-in: single-use nonces and the SHA-256 of bearer tokens, shared by every relay.
CREATE TABLE challenges (
    nonce      BYTEA  PRIMARY KEY,
    name       TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE sessions (
    token_hash BYTEA  PRIMARY KEY CHECK (length(token_hash) = 32),
    name       TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Mailboxes: an envelope stored once (inline when small, else in envelope_chunks), a delivery
-- row per recipient.
CREATE TABLE envelopes (
    envelope_id TEXT   PRIMARY KEY,
    message_id  BYTEA  NOT NULL CHECK (length(message_id) = 16),
    sender      TEXT   NOT NULL,
    size        BIGINT NOT NULL CHECK (size > 0),
    sha256      BYTEA  NOT NULL CHECK (length(sha256) = 32),
    received_at BIGINT NOT NULL,
    inline_data BYTEA
);

-- A large envelope's bytes in order, at most 1 MiB a chunk, written in the transaction that
-- commits its envelopes row and removed with it.
CREATE TABLE envelope_chunks (
    envelope_id TEXT   NOT NULL REFERENCES envelopes (envelope_id) ON DELETE CASCADE,
    chunk_index BIGINT NOT NULL CHECK (chunk_index >= 0),
    data        BYTEA  NOT NULL,
    PRIMARY KEY (envelope_id, chunk_index)
);

CREATE TABLE deliveries (
    recipient   TEXT  NOT NULL,
    message_id  BYTEA NOT NULL CHECK (length(message_id) = 16),
    envelope_id TEXT  NOT NULL REFERENCES envelopes (envelope_id),
    PRIMARY KEY (recipient, message_id)
);
CREATE INDEX deliveries_by_envelope ON deliveries (envelope_id);

-- Every (recipient, message id) ever accepted, kept after deletion (a message id is accepted once).
CREATE TABLE accepted_messages (
    recipient  TEXT  NOT NULL,
    message_id BYTEA NOT NULL CHECK (length(message_id) = 16),
    PRIMARY KEY (recipient, message_id)
);

-- Bytes held per mailbox, and per sender in each mailbox (quotas without a scan).
CREATE TABLE mailbox_usage (
    recipient TEXT   PRIMARY KEY,
    bytes     BIGINT NOT NULL CHECK (bytes >= 0)
);

CREATE TABLE sender_usage (
    recipient TEXT   NOT NULL,
    sender    TEXT   NOT NULL,
    bytes     BIGINT NOT NULL CHECK (bytes >= 0),
    PRIMARY KEY (recipient, sender)
);
