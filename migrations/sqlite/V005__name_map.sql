-- V005: the name map (docs/PROTOCOL.md, "Name map"): the interior nodes of the sparse Merkle tree
-- from SHA-256(name) to the name's current key version, each stored with its two children. A
-- registration or rotation rewrites the nodes on its path in the transaction that appends the
-- log leaf committing the new root.
CREATE TABLE map_nodes (
    depth  INTEGER NOT NULL CHECK (depth BETWEEN 0 AND 255),
    prefix BLOB    NOT NULL CHECK (length(prefix) = (depth + 7) / 8),
    node   BLOB    NOT NULL,
    PRIMARY KEY (depth, prefix)
) STRICT, WITHOUT ROWID;

