-- V009: bytes each sender holds in each mailbox, kept with every deposit and delete as V003's
-- mailbox_usage is, so the sender-share check reads one row instead of summing the mailbox (the
-- sum made every deposit cost more as mailboxes filled). Shipped migrations are never edited.

CREATE TABLE sender_usage (
    recipient TEXT    NOT NULL,
    sender    TEXT    NOT NULL,
    bytes     INTEGER NOT NULL CHECK (bytes >= 0),
    PRIMARY KEY (recipient, sender)
) STRICT, WITHOUT ROWID;

INSERT INTO sender_usage (recipient, sender, bytes)
    SELECT d.recipient, e.sender, SUM(e.size) FROM deliveries d JOIN envelopes e ON e.envelope_id = d.envelope_id
    GROUP BY d.recipient, e.sender;
