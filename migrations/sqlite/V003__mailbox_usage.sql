-- V003: bytes held per mailbox, kept with every deposit and delete, so a deposit checks a quota
-- with one row read instead of summing the whole mailbox. Shipped migrations are never edited.

CREATE TABLE mailbox_usage (
    recipient TEXT    PRIMARY KEY,
    bytes     INTEGER NOT NULL CHECK (bytes >= 0)
) STRICT;

INSERT INTO mailbox_usage (recipient, bytes)
    SELECT d.recipient, SUM(e.size) FROM deliveries d JOIN envelopes e ON e.envelope_id = d.envelope_id GROUP BY d.recipient;
