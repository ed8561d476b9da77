-- V002: mailboxes. An envelope is stored once (as a file beside the database, named by
-- envelope_id) however many recipients it has; a delivery row puts it in one recipient's mailbox.
-- Shipped migrations are never edited.

CREATE TABLE envelopes (
    envelope_id TEXT    PRIMARY KEY,
    message_id  BLOB    NOT NULL CHECK (length(message_id) = 16),
    sender      TEXT    NOT NULL,
    size        INTEGER NOT NULL CHECK (size > 0),
    sha256      BLOB    NOT NULL CHECK (length(sha256) = 32),
    received_at INTEGER NOT NULL
) STRICT;

CREATE TABLE deliveries (
    recipient   TEXT    NOT NULL,
    message_id  BLOB    NOT NULL CHECK (length(message_id) = 16),
    envelope_id TEXT    NOT NULL REFERENCES envelopes (envelope_id),
    PRIMARY KEY (recipient, message_id)
) STRICT;
CREATE INDEX deliveries_by_envelope ON deliveries (envelope_id);

-- Every (recipient, message id) ever accepted, kept after deletion: a message id is accepted
-- once per recipient (P4).
CREATE TABLE accepted_messages (
    recipient  TEXT NOT NULL,
    message_id BLOB NOT NULL CHECK (length(message_id) = 16),
    PRIMARY KEY (recipient, message_id)
) STRICT, WITHOUT ROWID;
