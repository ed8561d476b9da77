import SecmailCrypto

/// The verifiable map from every registered name to its current key version: a sparse Merkle
/// tree over the 256-bit keys SHA-256(name), in the compressed form where a subtree holding one
/// leaf is that leaf and an empty subtree is 32 zero bytes (docs/PROTOCOL.md, "Name map").
/// The map after N log entries is a function of those entries alone (`NameMapValue`), and every
/// directory log leaf carries the root after it, so a checkpoint commits the map.
///
/// Storage is the caller's (`NameMapNodeStore`): the relay keeps the nodes in its database, a
/// monitor in memory. Only interior nodes are stored, each with its two children, so a proof
/// reads one node per level: about log2(names) + 1 levels.
public struct NameMap<Store: NameMapNodeStore> {
    public var store: Store

    public init(store: Store) {
        self.store = store
    }

    /// The root: the hash of the interior node at depth 0 (an empty map's too).
    public func root() throws -> [UInt8] {
        try rootNode().hash
    }

    /// Sets `key`'s value hash (inserting or replacing); returns the new root.
    @discardableResult
    public mutating func set(_ key: [UInt8], valueHash: [UInt8]) throws -> [UInt8] {
        precondition(key.count == 32 && valueHash.count == 32, "map keys and value hashes are 32 bytes")
        // Walk down to where the key's leaf belongs, remembering the interior nodes passed.
        var path: [(depth: Int, node: NameMapNode)] = []
        var depth = 0
        var node = try rootNode()
        var child: NameMapChild
        while true {
            path.append((depth, node))
            child = node.child(towards: key, atDepth: depth)
            guard case .node = child else { break }
            depth += 1
            guard let next = try store.node(depth: depth, prefix: NameMapKey.prefix(of: key, bits: depth)) else {
                throw FormatError(.invalidField, "the name map has no node at depth \(depth) below a node that names it: the map is damaged")
            }
            node = next
        }
        // The new subtree that replaces `child` below the deepest interior node.
        var replacement: NameMapChild = .leaf(key: key, valueHash: valueHash)
        if case .leaf(let otherKey, let otherValue) = child, otherKey != key {
            // Two keys now share this subtree: interior nodes down to the first bit they differ in.
            let split = NameMapKey.firstDifferingBit(key, otherKey)
            let mine = NameMapChild.leaf(key: key, valueHash: valueHash)
            let other = NameMapChild.leaf(key: otherKey, valueHash: otherValue)
            var below = NameMapKey.bit(key, split) == 0 ? NameMapNode(left: mine, right: other) : NameMapNode(left: other, right: mine)
            try store.setNode(below, depth: split, prefix: NameMapKey.prefix(of: key, bits: split))
            var level = split
            while level > depth + 1 {
                level -= 1
                let up = NameMapChild.node(hash: below.hash)
                below = NameMapKey.bit(key, level) == 0 ? NameMapNode(left: up, right: .empty) : NameMapNode(left: .empty, right: up)
                try store.setNode(below, depth: level, prefix: NameMapKey.prefix(of: key, bits: level))
            }
            replacement = .node(hash: below.hash)
        }
        // Rehash the path bottom-up.
        for (level, var node) in path.reversed() {
            node.setChild(towards: key, atDepth: level, to: replacement)
            try store.setNode(node, depth: level, prefix: NameMapKey.prefix(of: key, bits: level))
            replacement = .node(hash: node.hash)
        }
        guard case .node(let root) = replacement else { preconditionFailure("the root is an interior node") }
        return root
    }

    /// The proof of what the map holds for `key`: its value hash, or that it holds nothing.
    public func proof(for key: [UInt8]) throws -> NameMapProof {
        var siblings: [[UInt8]] = []
        var depth = 0
        var node = try rootNode()
        while true {
            let mine = node.child(towards: key, atDepth: depth)
            siblings.append(node.child(awayFrom: key, atDepth: depth).hash)
            switch mine {
            case .empty:
                return NameMapProof(siblings: siblings, terminal: .empty)
            case .leaf(let leafKey, let valueHash):
                return NameMapProof(siblings: siblings, terminal: leafKey == key ? .found(valueHash: valueHash) : .otherLeaf(key: leafKey, valueHash: valueHash))
            case .node:
                depth += 1
                guard let next = try store.node(depth: depth, prefix: NameMapKey.prefix(of: key, bits: depth)) else {
                    throw FormatError(.invalidField, "the name map has no node at depth \(depth) below a node that names it: the map is damaged")
                }
                node = next
            }
        }
    }

    private func rootNode() throws -> NameMapNode {
        try store.node(depth: 0, prefix: []) ?? NameMapNode(left: .empty, right: .empty)
    }
}

/// Where a `NameMap` keeps its interior nodes, each addressed by its depth and the first `depth`
/// bits of the keys below it (`NameMapKey.prefix`).
public protocol NameMapNodeStore {
    func node(depth: Int, prefix: [UInt8]) throws -> NameMapNode?
    mutating func setNode(_ node: NameMapNode, depth: Int, prefix: [UInt8]) throws
}

/// Nodes in memory (a monitor's replay, tests, test vectors).
public struct InMemoryNameMapNodes: NameMapNodeStore, Sendable {
    private struct Address: Hashable, Sendable {
        let depth: Int
        let prefix: [UInt8]
    }

    private var nodes: [Address: NameMapNode] = [:]

    public init() {}

    public var count: Int { nodes.count }

    public func node(depth: Int, prefix: [UInt8]) -> NameMapNode? {
        nodes[Address(depth: depth, prefix: prefix)]
    }

    public mutating func setNode(_ node: NameMapNode, depth: Int, prefix: [UInt8]) {
        nodes[Address(depth: depth, prefix: prefix)] = node
    }

    /// Every node as (depth, prefix, encoded node), for saving.
    public var encodedNodes: [(depth: Int, prefix: [UInt8], node: [UInt8])] {
        nodes.map { ($0.key.depth, $0.key.prefix, $0.value.encoded) }
    }
}

/// What sits below one side of an interior node.
public enum NameMapChild: Sendable, Equatable {
    case empty
    /// The subtree holds exactly one key.
    case leaf(key: [UInt8], valueHash: [UInt8])
    /// The subtree holds two or more keys; its interior node has this hash.
    case node(hash: [UInt8])

    /// The hash of the subtree: 32 zero bytes when empty; SHA-256(0x00 ‖ key ‖ value hash) for
    /// one key; the interior node's hash otherwise.
    public var hash: [UInt8] {
        switch self {
        case .empty: NameMapKey.emptyHash
        case .leaf(let key, let valueHash): NameMapKey.leafHash(key: key, valueHash: valueHash)
        case .node(let hash): hash
        }
    }
}

/// An interior node: SHA-256(0x01 ‖ left hash ‖ right hash). The left child holds the keys whose
/// next bit is 0.
public struct NameMapNode: Sendable, Equatable {
    public var left: NameMapChild
    public var right: NameMapChild

    public init(left: NameMapChild, right: NameMapChild) {
        self.left = left
        self.right = right
    }

    public var hash: [UInt8] { SHA256.hash([0x01] + left.hash + right.hash) }

    func child(towards key: [UInt8], atDepth depth: Int) -> NameMapChild {
        NameMapKey.bit(key, depth) == 0 ? left : right
    }

    func child(awayFrom key: [UInt8], atDepth depth: Int) -> NameMapChild {
        NameMapKey.bit(key, depth) == 0 ? right : left
    }

    mutating func setChild(towards key: [UInt8], atDepth depth: Int, to child: NameMapChild) {
        if NameMapKey.bit(key, depth) == 0 { left = child } else { right = child }
    }

    /// Storage form: each child as a kind byte (0 empty, 1 leaf, 2 node) and its bytes
    /// (leaf: key ‖ value hash; node: hash).
    public var encoded: [UInt8] {
        var bytes: [UInt8] = []
        for child in [left, right] {
            switch child {
            case .empty: bytes.append(0)
            case .leaf(let key, let valueHash): bytes += [1] + key + valueHash
            case .node(let hash): bytes += [2] + hash
            }
        }
        return bytes
    }

    public init(encoded: [UInt8]) throws {
        var reader = ByteReader(encoded, subject: "name map node")
        func readChild() throws -> NameMapChild {
            switch try reader.readUInt8() {
            case 0: return .empty
            case 1: return .leaf(key: try reader.read(count: 32), valueHash: try reader.read(count: 32))
            case 2: return .node(hash: try reader.read(count: 32))
            case let kind: throw FormatError(.invalidField, "unknown name map child kind \(kind)")
            }
        }
        left = try readChild()
        right = try readChild()
        try reader.expectEnd()
    }
}

/// Keys, bits and the fixed hashes of the name map.
public enum NameMapKey {
    /// The map key of a name: SHA-256 of its normalised form.
    public static func of(_ name: IdentityName) -> [UInt8] {
        SHA256.hash(Array(name.value.utf8))
    }

    public static let emptyHash = [UInt8](repeating: 0, count: 32)

    public static func leafHash(key: [UInt8], valueHash: [UInt8]) -> [UInt8] {
        SHA256.hash([0x00] + key + valueHash)
    }

    /// The root of the map with no names.
    public static let emptyRoot = NameMapNode(left: .empty, right: .empty).hash

    /// Bit `index` of `key`, the most significant bit of the first byte being bit 0.
    static func bit(_ key: [UInt8], _ index: Int) -> UInt8 {
        (key[index / 8] >> (7 - UInt8(index % 8))) & 1
    }

    /// The first `bits` bits of `key`, in ceil(bits / 8) bytes, the unused low bits zero.
    public static func prefix(of key: [UInt8], bits: Int) -> [UInt8] {
        var prefix = Array(key.prefix((bits + 7) / 8))
        if bits % 8 != 0 { prefix[prefix.count - 1] &= 0xFF << (8 - UInt8(bits % 8)) }
        return prefix
    }

    static func firstDifferingBit(_ a: [UInt8], _ b: [UInt8]) -> Int {
        for index in 0..<256 where bit(a, index) != bit(b, index) { return index }
        preconditionFailure("two different keys differ in some bit")
    }
}

/// What a map holds for one name, as a map leaf's value hash: SHA-256("secmail name map value v1"
/// 00 ‖ key version u32 ‖ log index u64 ‖ fingerprint[32]) of the name's latest key version and
/// the log leaf that recorded it.
public struct NameMapValue: Sendable, Equatable {
    public let keyVersion: UInt32
    public let logIndex: UInt64
    public let fingerprint: Fingerprint

    public init(keyVersion: UInt32, logIndex: UInt64, fingerprint: Fingerprint) {
        self.keyVersion = keyVersion
        self.logIndex = logIndex
        self.fingerprint = fingerprint
    }

    static let context = Array("secmail name map value v1".utf8) + [0]

    public var hash: [UInt8] {
        var writer = ByteWriter()
        writer.append(raw: Self.context)
        writer.append(keyVersion)
        writer.append(logIndex)
        writer.append(raw: fingerprint.bytes)
        return SHA256.hash(writer.bytes)
    }
}

/// The path from the map root to where a key's leaf is or would be: the sibling hash at each
/// depth (root first) and what the path ends in.
public struct NameMapProof: Sendable, Equatable {
    public enum Terminal: Sendable, Equatable {
        /// The key is in the map with this value hash.
        case found(valueHash: [UInt8])
        /// The key's subtree is empty: the key is not in the map.
        case empty
        /// The key's subtree holds only another key (sharing the path's bits): the key is not in the map.
        case otherLeaf(key: [UInt8], valueHash: [UInt8])
    }

    public let siblings: [[UInt8]]
    public let terminal: Terminal

    public init(siblings: [[UInt8]], terminal: Terminal) {
        self.siblings = siblings
        self.terminal = terminal
    }

    /// The root this proof leads to for `key`, or nil when it is not a well-formed proof for it.
    /// A found proof for a value hash leads to a root only with that value hash.
    public func root(for key: [UInt8]) -> [UInt8]? {
        guard key.count == 32, (1...256).contains(siblings.count), siblings.allSatisfy({ $0.count == 32 }) else { return nil }
        let depth = siblings.count
        var hash: [UInt8]
        switch terminal {
        case .found(let valueHash):
            guard valueHash.count == 32 else { return nil }
            hash = NameMapKey.leafHash(key: key, valueHash: valueHash)
        case .empty:
            hash = NameMapKey.emptyHash
        case .otherLeaf(let other, let valueHash):
            guard other.count == 32, valueHash.count == 32, other != key,
                  NameMapKey.prefix(of: other, bits: depth) == NameMapKey.prefix(of: key, bits: depth) else { return nil }
            hash = NameMapKey.leafHash(key: other, valueHash: valueHash)
        }
        for level in stride(from: depth - 1, through: 0, by: -1) {
            let sibling = siblings[level]
            hash = NameMapKey.bit(key, level) == 0 ? SHA256.hash([0x01] + hash + sibling) : SHA256.hash([0x01] + sibling + hash)
        }
        return hash
    }

    /// Wire form (docs/PROTOCOL.md, "Name map proof"): `u16` sibling count n (1–256), a bitmap of
    /// ceil(n / 8) bytes whose bit i (most significant first) is set when sibling i is not empty,
    /// the non-empty siblings (32 bytes each, root first), then the terminal: `u8` 0 = found,
    /// 1 = empty, 2 = another key's leaf followed by its key and value hash (32 bytes each). A
    /// found proof carries no value hash: the verifier computes it from the bundle it was served.
    public var encoded: [UInt8] {
        var writer = ByteWriter()
        writer.append(UInt16(siblings.count))
        var bitmap = [UInt8](repeating: 0, count: (siblings.count + 7) / 8)
        for (index, sibling) in siblings.enumerated() where sibling != NameMapKey.emptyHash {
            bitmap[index / 8] |= 0x80 >> UInt8(index % 8)
        }
        writer.append(raw: bitmap)
        for sibling in siblings where sibling != NameMapKey.emptyHash { writer.append(raw: sibling) }
        switch terminal {
        case .found: writer.append(UInt8(0))
        case .empty: writer.append(UInt8(1))
        case .otherLeaf(let key, let valueHash):
            writer.append(UInt8(2))
            writer.append(raw: key + valueHash)
        }
        return writer.bytes
    }

    /// Parses the wire form; a found proof takes the value hash the verifier computed.
    public init(encoded: [UInt8], foundValueHash: [UInt8]?) throws {
        var reader = ByteReader(encoded, subject: "name map proof")
        let count = Int(try reader.readUInt16())
        guard (1...256).contains(count) else {
            throw FormatError(.invalidField, "a name map proof has 1 to 256 levels, not \(count)")
        }
        let bitmap = try reader.read(count: (count + 7) / 8)
        var siblings: [[UInt8]] = []
        for index in 0..<count {
            let present = bitmap[index / 8] & (0x80 >> UInt8(index % 8)) != 0
            siblings.append(present ? try reader.read(count: 32) : NameMapKey.emptyHash)
        }
        guard count % 8 == 0 || bitmap[bitmap.count - 1] & (0xFF >> UInt8(count % 8)) == 0 else {
            throw FormatError(.invalidField, "the name map proof's bitmap has bits set past its last level")
        }
        switch try reader.readUInt8() {
        case 0:
            guard let foundValueHash else {
                throw FormatError(.invalidField, "the name map proof says the name is registered")
            }
            terminal = .found(valueHash: foundValueHash)
        case 1: terminal = .empty
        case 2: terminal = .otherLeaf(key: try reader.read(count: 32), valueHash: try reader.read(count: 32))
        case let kind: throw FormatError(.invalidField, "unknown name map proof terminal \(kind)")
        }
        try reader.expectEnd()
        self.siblings = siblings
    }

    /// True when the proof shows the key absent.
    public var provesAbsence: Bool {
        if case .found = terminal { return false }
        return true
    }
}
