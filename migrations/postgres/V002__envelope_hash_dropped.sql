-- V002: envelopes lose their sha256 column, as SQLite's V010 does. Nothing ever read it (an
-- envelope's integrity is its sender's signature, checked at deposit and by every reader), and
-- hashing every byte for it slowed large deposits (64 MiB ones by about 40% on the test machine).
-- Shipped migrations are never edited.

ALTER TABLE envelopes DROP COLUMN sha256;
