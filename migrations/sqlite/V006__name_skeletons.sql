-- V006: the skeleton of every registered name (IdentityName.skeleton: look-alike characters and
-- punctuation folded), so a registration whose name looks like a registered one is refused
-- with one index lookup. Filled at registration; a relay fills it for older names at start-up.
CREATE TABLE name_skeletons (
    skeleton TEXT NOT NULL PRIMARY KEY,
    name     TEXT NOT NULL
) STRICT, WITHOUT ROWID;
