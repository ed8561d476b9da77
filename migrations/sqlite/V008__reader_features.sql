-- V008: what each user's client declared it can read beyond the base format (PUT /v1/features),
-- a comma-separated list of feature names, shown in lookups so that senders use a feature only
-- for readers that have it. A hint outside the log: replaced at each declaration.
CREATE TABLE reader_features (
    name       TEXT NOT NULL PRIMARY KEY,
    features   TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
