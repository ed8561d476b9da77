import Foundation
import SecmailCrypto
@testable import SecmailFormat
import Testing

/// The name map: roots against a recomputation from the definition, proofs of presence and
/// absence, their wire form, and the replay checks monitors rely on.
@Suite struct NameMapTests {
    /// The map root computed straight from docs/PROTOCOL.md's definition, from the set of entries.
    static func definitionRoot(_ entries: [[UInt8]: [UInt8]]) -> [UInt8] {
        func subtree(_ items: [(key: [UInt8], value: [UInt8])], depth: Int) -> [UInt8] {
            // The root (depth 0) is always an interior node; below it, an empty subtree is zeros
            // and a subtree of one key is that key's leaf.
            if depth > 0, items.isEmpty { return [UInt8](repeating: 0, count: 32) }
            if depth > 0, items.count == 1 { return SHA256.hash([0x00] + items[0].key + items[0].value) }
            let left = items.filter { NameMapKey.bit($0.key, depth) == 0 }, right = items.filter { NameMapKey.bit($0.key, depth) == 1 }
            return SHA256.hash([0x01] + subtree(left, depth: depth + 1) + subtree(right, depth: depth + 1))
        }
        return subtree(entries.map { ($0.key, $0.value) }, depth: 0)
    }

    static func randomKey() throws -> [UInt8] { try SystemRandom().bytes(count: 32) }

    @Test func rootsFollowTheDefinitionWhateverTheOrder() throws {
        var entries: [[UInt8]: [UInt8]] = [:]
        var map = NameMap(store: InMemoryNameMapNodes())
        #expect(try map.root() == Self.definitionRoot([:]))
        #expect(try map.root() == NameMapKey.emptyRoot)
        for _ in 0..<150 {
            let key = try Self.randomKey(), value = try Self.randomKey()
            entries[key] = value
            #expect(try map.set(key, valueHash: value) == Self.definitionRoot(entries))
        }
        // Replacing values (rotations) keeps following the definition.
        for key in entries.keys.prefix(30) {
            let value = try Self.randomKey()
            entries[key] = value
            try map.set(key, valueHash: value)
        }
        #expect(try map.root() == Self.definitionRoot(entries))
        // Another insertion order gives the same root: the map is a function of its entries.
        var other = NameMap(store: InMemoryNameMapNodes())
        for (key, value) in entries.shuffled() { try other.set(key, valueHash: value) }
        #expect(try other.root() == map.root())
    }

    @Test func keysSharingLongPrefixesGetChainsOfNodes() throws {
        let base = try Self.randomKey()
        var near = base
        near[25] ^= 0x01  // first differing bit: 207
        var map = NameMap(store: InMemoryNameMapNodes())
        let a = try Self.randomKey(), b = try Self.randomKey()
        try map.set(base, valueHash: a)
        let root = try map.set(near, valueHash: b)
        #expect(root == Self.definitionRoot([base: a, near: b]))
        let proof = try map.proof(for: near)
        #expect(proof.siblings.count == 208)
        #expect(proof.root(for: near) == root)
        #expect(proof.encoded.count < 2 + 26 + 32 + 1 + 1)  // only the deepest sibling is not empty
        #expect(try NameMapProof(encoded: proof.encoded, foundValueHash: b) == proof)
    }

    @Test func proofsShowPresenceAndAbsenceAndNothingElse() throws {
        var map = NameMap(store: InMemoryNameMapNodes())
        var entries: [[UInt8]: [UInt8]] = [:]
        for _ in 0..<64 {
            let key = try Self.randomKey(), value = try Self.randomKey()
            entries[key] = value
            try map.set(key, valueHash: value)
        }
        let root = try map.root()
        for (key, value) in entries {
            let proof = try map.proof(for: key)
            #expect(proof.terminal == .found(valueHash: value))
            #expect(proof.root(for: key) == root)
            // The wire form does not carry the value: a verifier with another value gets another root.
            let wrongValue = try NameMapProof(encoded: proof.encoded, foundValueHash: Self.randomKey())
            #expect(wrongValue.root(for: key) != root)
            // Presented for another key, it leads elsewhere.
            #expect(proof.root(for: try Self.randomKey()) != root)
        }
        for _ in 0..<64 {
            let absent = try Self.randomKey()
            let proof = try map.proof(for: absent)
            #expect(proof.provesAbsence)
            #expect(proof.root(for: absent) == root)
            let decoded = try NameMapProof(encoded: proof.encoded, foundValueHash: nil)
            #expect(decoded == proof)
            // Any changed sibling breaks it.
            var siblings = proof.siblings
            siblings[siblings.count - 1][0] ^= 1
            #expect(NameMapProof(siblings: siblings, terminal: proof.terminal).root(for: absent) != root)
        }
        // An absence proof for a present key cannot be made from the real path: the path ends in
        // the key's own leaf, and passing it off as empty or as another key's leaf fails.
        let (present, value) = try #require(entries.first)
        let real = try map.proof(for: present)
        #expect(NameMapProof(siblings: real.siblings, terminal: .empty).root(for: present) != root)
        #expect(NameMapProof(siblings: real.siblings, terminal: .otherLeaf(key: present, valueHash: value)).root(for: present) == nil)
        // A found proof decoded without a value (as for a "not found" answer) is refused.
        #expect(throws: FormatError.self) { try NameMapProof(encoded: real.encoded, foundValueHash: nil) }
    }

    @Test func malformedProofEncodingsAreRefused() throws {
        var map = NameMap(store: InMemoryNameMapNodes())
        for _ in 0..<8 { try map.set(try Self.randomKey(), valueHash: try Self.randomKey()) }
        let proof = try map.proof(for: try Self.randomKey())
        let encoded = proof.encoded
        #expect(throws: FormatError.self) { try NameMapProof(encoded: encoded + [0], foundValueHash: nil) }
        #expect(throws: FormatError.self) { try NameMapProof(encoded: Array(encoded.dropLast()), foundValueHash: nil) }
        #expect(throws: FormatError.self) { try NameMapProof(encoded: [0, 0, 1], foundValueHash: nil) }
        var badTerminal = encoded
        badTerminal[badTerminal.count - 1] = 9
        // The terminal's kind is the last byte only for an empty terminal (another leaf's ends in
        // its value hash, whose last byte is 1 one time in 256).
        if proof.terminal == .empty { #expect(throws: FormatError.self) { try NameMapProof(encoded: badTerminal, foundValueHash: nil) } }
    }

    @Test func replayChecksEntriesAndCommittedRoots() throws {
        let alice = Fixtures.alice.bundle, bob = Fixtures.bob.bundle
        var honest = NameMap(store: InMemoryNameMapNodes())
        func entry(_ bundle: IdentityBundle, at index: UInt64, root: [UInt8]? = nil) throws -> [UInt8] {
            let value = NameMapValue(keyVersion: bundle.keyVersion, logIndex: index, fingerprint: bundle.fingerprint)
            let computed = try honest.set(NameMapKey.of(bundle.name), valueHash: value.hash)
            return try DirectoryEntry(kind: .registration, time: 0, bundle: bundle, mapRoot: root ?? computed).encoded
        }
        var replay = NameMapReplay()
        try replay.apply(try entry(alice, at: 0))
        try replay.apply(try entry(bob, at: 1))
        #expect(try replay.root() == honest.root())
        #expect(replay.values[NameMapKey.of(alice.name)]?.logIndex == 0)

        // A root that does not follow from the log.
        let lying = try entry(Fixtures.carol.bundle, at: 2, root: [UInt8](repeating: 7, count: 32))
        let error = #expect(throws: FormatError.self) { try replay.apply(lying) }
        #expect(error?.reason.contains("does not follow from its log") == true)
        #expect(replay.size == 2)

        // A second registration of a name.
        let again = try DirectoryEntry(kind: .registration, time: 0, bundle: alice, mapRoot: [UInt8](repeating: 0, count: 32)).encoded
        #expect((#expect(throws: FormatError.self) { try replay.apply(again) })?.reason.contains("registers alice again") == true)

        // Saved and resumed, the replay goes on from the same map.
        let resumed = try NameMapReplay(encodedState: replay.encodedState)
        #expect(resumed.size == 2)
        #expect(try resumed.root() == replay.root())
        #expect(resumed.values == replay.values)

        // A damaged state file is refused before anything is sized by it. The first was found by
        // the fuzzer (scripts/fuzz.sh, target directory): its count asked for a 137 GB table.
        let fuzzed = Array(Data(base64Encoded: "gbY32PzSxtpjWeaWMROhFw3nleS3JbhNHgtM/Z7FjOkAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABgLWO0WEDRY0sh0bik2b4JJ/ySJyKJVN7DrQ8y1MIeAdKAA==")!)
        #expect((#expect(throws: FormatError.self) { try NameMapReplay(encodedState: fuzzed) })?.reason.contains("says it holds") == true)
        var state = replay.encodedState
        #expect(throws: FormatError.self) { try NameMapReplay(encodedState: Array(state.dropLast())) }
        // The same name twice (count 3, the first entry repeated).
        state[11] = 3
        state += state[12..<(12 + 76)]
        #expect((#expect(throws: FormatError.self) { try NameMapReplay(encodedState: state) })?.reason.contains("twice") == true)
    }

    @Test func aMapHeadCommitsTheMapOfAnOlderLog() throws {
        let alice = Fixtures.alice.bundle
        var replay = NameMapReplay()
        try replay.apply(try DirectoryEntry(kind: .registration, time: 0, bundle: alice, mapRoot: nil).encoded)
        let root = try replay.root()
        #expect(try replay.apply(try MapHead(time: 1, mapRoot: root).encoded) == .mapHead(try MapHead(time: 1, mapRoot: root)))
        #expect(throws: FormatError.self) { try replay.apply(try MapHead(time: 2, mapRoot: NameMapKey.emptyRoot).encoded) }
    }
}

/// Look-alike names and reserved names (issue 12, registration spam).
@Suite struct NameSkeletonTests {
    func skeleton(_ name: String) throws -> String { try IdentityName(name).skeleton }

    @Test func lookAlikesShareASkeletonAndOthersDoNot() throws {
        for (a, b) in [("alice", "a1ice"), ("alice", "alice."), ("alice", "allce"), ("mallory", "rnallory"), ("wendy", "vvendy"),
                       ("bob", "b0b"), ("bob-x", "bob__x"), ("bob.x", "bob-x"), ("alice", "alice--")] {
            #expect(try skeleton(a) == skeleton(b), "\(a) and \(b)")
        }
        for (a, b) in [("alice", "alicia"), ("alice", "a.lice"), ("bob", "bobby"), ("carol", "karol")] {
            #expect(try skeleton(a) != skeleton(b), "\(a) and \(b)")
        }
    }

    @Test func reservedNamesAndTheirLookAlikesAreReserved() throws {
        for name in ["postmaster", "root", "r00t", "admin.", "abuse", "mailer-daemon", "secmail"] {
            #expect(try IdentityName(name).isReserved, "\(name)")
        }
        for name in ["alice", "roots", "administrators2"] {
            #expect(try !IdentityName(name).isReserved, "\(name)")
        }
    }
}
