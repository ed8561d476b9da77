-- V004: small envelopes live in the database, inside the same grouped commit as their rows, so
-- they cost no file, no file sync and no directory sync; larger ones stay files beside the
-- database (V002). Exactly one of the two holds an envelope's bytes. Shipped migrations are
-- never edited.

ALTER TABLE envelopes ADD COLUMN inline_data BLOB;
