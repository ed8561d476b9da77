import Foundation
import SecmailCrypto
import SecmailTestSupport
@testable import SecmailFormat
import Testing

/// The naive RFC 6962 section 2.1 definitions, straight from the text, as the reference that
/// `MerkleTree` (which works from stored subtrees) must agree with.
enum ReferenceMerkle {
    static func mth(_ d: ArraySlice<[UInt8]>) -> [UInt8] {
        if d.isEmpty { return MerkleHash.emptyRoot }
        if d.count == 1 { return d[d.startIndex] }
        let k = Int(MerkleHash.split(UInt64(d.count)))
        return MerkleHash.node(mth(d.prefix(k)), mth(d.dropFirst(k)))
    }

    static func path(_ m: Int, _ d: ArraySlice<[UInt8]>) -> [[UInt8]] {
        if d.count <= 1 { return [] }
        let k = Int(MerkleHash.split(UInt64(d.count)))
        return m < k ? path(m, d.prefix(k)) + [mth(d.dropFirst(k))] : path(m - k, d.dropFirst(k)) + [mth(d.prefix(k))]
    }

    static func proof(_ m: Int, _ d: ArraySlice<[UInt8]>) -> [[UInt8]] { subproof(m, d, true) }

    static func subproof(_ m: Int, _ d: ArraySlice<[UInt8]>, _ b: Bool) -> [[UInt8]] {
        if m == d.count { return b ? [] : [mth(d)] }
        let k = Int(MerkleHash.split(UInt64(d.count)))
        return m <= k ? subproof(m, d.prefix(k), b) + [mth(d.dropFirst(k))] : subproof(m - k, d.dropFirst(k), false) + [mth(d.prefix(k))]
    }
}

@Suite(.threadsOfTheirOwn) struct MerkleTreeTests {
    let vectors = try! JSONSerialization.jsonObject(
        with: Data(contentsOf: Fixtures.directory.appendingPathComponent("transparency-vectors.json"))) as! [String: Any]
    var rfc: [String: Any] { vectors["rfc6962"] as! [String: Any] }

    @Test func rootsMatchThePublishedRFC6962TreeHeads() throws {
        let leaves = (rfc["leaves"] as! [String]).map { MerkleHash.leaf(hexBytes($0)) }
        let roots = rfc["roots"] as! [String]
        let tree = MerkleTree(leafHashes: leaves)
        for size in 0...leaves.count {
            #expect(hexString(try tree.root(size: UInt64(size))) == roots[size], "size \(size)")
        }
    }

    @Test func publishedProofsAreGeneratedAndVerified() throws {
        let leaves = (rfc["leaves"] as! [String]).map { MerkleHash.leaf(hexBytes($0)) }
        let tree = MerkleTree(leafHashes: leaves)
        for vector in rfc["inclusion"] as! [[String: Any]] {
            let index = UInt64(vector["index"] as! Int), size = UInt64(vector["size"] as! Int)
            let proof = (vector["proof"] as! [String]).map(hexBytes)
            #expect(try tree.inclusionProof(index: index, size: size) == proof)
            #expect(MerkleProof.verifyInclusion(leafHash: leaves[Int(index)], index: index, size: size, proof: proof, root: try tree.root(size: size)))
        }
        for vector in rfc["consistency"] as! [[String: Any]] {
            let from = UInt64(vector["from"] as! Int), to = UInt64(vector["to"] as! Int)
            let proof = (vector["proof"] as! [String]).map(hexBytes)
            #expect(try tree.consistencyProof(from: from, to: to) == proof)
            #expect(MerkleProof.verifyConsistency(oldSize: from, newSize: to, oldRoot: try tree.root(size: from),
                                                  newRoot: try tree.root(size: to), proof: proof))
        }
    }

    /// Every tree size 1 to 64: every leaf's inclusion proof, and every pair's consistency proof,
    /// equal the RFC's definitions, verify, and fail when anything is changed.
    @Test func everyProofForEveryTreeUpTo64LeavesMatchesTheRFCAndVerifies() throws {
        let leaves = (0..<64).map { MerkleHash.leaf([UInt8($0), UInt8(truncatingIfNeeded: $0 &* 7)]) }
        let tree = MerkleTree(leafHashes: leaves)
        for n in 1...64 {
            let d = leaves[0..<n]
            let root = try tree.root(size: UInt64(n))
            #expect(root == ReferenceMerkle.mth(d))
            for m in 0..<n {
                let proof = try tree.inclusionProof(index: UInt64(m), size: UInt64(n))
                #expect(proof == ReferenceMerkle.path(m, d), "PATH(\(m), \(n))")
                #expect(MerkleProof.verifyInclusion(leafHash: leaves[m], index: UInt64(m), size: UInt64(n), proof: proof, root: root))
                #expect(!MerkleProof.verifyInclusion(leafHash: leaves[(m + 1) % 64], index: UInt64(m), size: UInt64(n), proof: proof, root: root))
                if n > 1 {
                    #expect(!MerkleProof.verifyInclusion(leafHash: leaves[m], index: UInt64((m + 1) % n), size: UInt64(n), proof: proof, root: root))
                    var tampered = proof
                    tampered[tampered.count - 1][0] ^= 1
                    #expect(!MerkleProof.verifyInclusion(leafHash: leaves[m], index: UInt64(m), size: UInt64(n), proof: tampered, root: root))
                    #expect(!MerkleProof.verifyInclusion(leafHash: leaves[m], index: UInt64(m), size: UInt64(n), proof: Array(proof.dropLast()), root: root))
                }
            }
            for m in 1...n {
                let proof = try tree.consistencyProof(from: UInt64(m), to: UInt64(n))
                #expect(proof == ReferenceMerkle.proof(m, d), "PROOF(\(m), \(n))")
                let oldRoot = try tree.root(size: UInt64(m))
                #expect(MerkleProof.verifyConsistency(oldSize: UInt64(m), newSize: UInt64(n), oldRoot: oldRoot, newRoot: root, proof: proof))
                if m < n {
                    // A forked history: the same sizes with a different old root.
                    var forked = oldRoot
                    forked[5] ^= 1
                    #expect(!MerkleProof.verifyConsistency(oldSize: UInt64(m), newSize: UInt64(n), oldRoot: forked, newRoot: root, proof: proof))
                    #expect(!MerkleProof.verifyConsistency(oldSize: UInt64(m), newSize: UInt64(n), oldRoot: oldRoot, newRoot: root, proof: []))
                    #expect(!MerkleProof.verifyConsistency(oldSize: UInt64(m), newSize: UInt64(n), oldRoot: oldRoot, newRoot: root, proof: Array(proof.dropLast())))
                }
            }
        }
    }

    /// The audit's frontier must compute the same root as the RFC's MTH after every append, and
    /// survive being stored and reloaded at any size.
    @Test func theFrontierFollowsEveryTreeUpTo200LeavesWithLogarithmicState() throws {
        let leaves = (0..<200).map { MerkleHash.leaf(Array("leaf \($0)".utf8)) }
        var frontier = MerkleFrontier()
        #expect(frontier.root == MerkleHash.emptyRoot)
        for (index, leaf) in leaves.enumerated() {
            frontier.append(leafHash: leaf)
            let size = index + 1
            #expect(frontier.size == UInt64(size))
            #expect(frontier.hashes.count == size.nonzeroBitCount)
            #expect(frontier.root == ReferenceMerkle.mth(leaves[..<size]), "size \(size)")
            let reloaded = try MerkleFrontier(size: frontier.size, hashes: frontier.hashes)
            #expect(reloaded == frontier)
        }
        #expect(throws: FormatError.self) { try MerkleFrontier(size: 3, hashes: [[UInt8](repeating: 0, count: 32)]) }
        #expect(throws: FormatError.self) { try MerkleFrontier(size: 1, hashes: [[0]]) }
    }

    @Test func proofsOutsideTheTreeAreRefused() throws {
        let tree = MerkleTree(leafHashes: (0..<5).map { MerkleHash.leaf([UInt8($0)]) })
        #expect(throws: FormatError.self) { try tree.inclusionProof(index: 5, size: 5) }
        #expect(throws: FormatError.self) { try tree.inclusionProof(index: 0, size: 6) }
        #expect(throws: FormatError.self) { try tree.consistencyProof(from: 0, to: 5) }
        #expect(throws: FormatError.self) { try tree.consistencyProof(from: 4, to: 3) }
        #expect(throws: FormatError.self) { try tree.root(size: 6) }
        // A rolled-back log (a newer size claimed smaller) never verifies.
        #expect(!MerkleProof.verifyConsistency(oldSize: 5, newSize: 4, oldRoot: try tree.root(size: 5), newRoot: try tree.root(size: 4), proof: []))
    }
}

@Suite struct SignedNoteTests {
    let vector = (try! JSONSerialization.jsonObject(
        with: Data(contentsOf: Fixtures.directory.appendingPathComponent("transparency-vectors.json"))) as! [String: Any])["signedNote"] as! [String: String]

    /// The private key of the Go example: type byte 0x01, then the 32-byte Ed25519 seed.
    func goSigner() throws -> (name: String, key: Ed25519PrivateKey) {
        let parts = vector["signerKey"]!.split(separator: "+", maxSplits: 4)
        let material = Array(Data(base64Encoded: String(parts[4]))!)
        #expect(material.first == 0x01)
        return (String(parts[2]), try Ed25519PrivateKey(seed: Array(material.dropFirst())))
    }

    @Test func signingReproducesTheGoSumdbNoteExactly() throws {
        let (name, key) = try goSigner()
        #expect(try SignedNote.sign(vector["text"]!, name: name, key: key) == vector["note"]!)
        let verifier = try NoteVerifier(name: name, publicKey: key.publicKey)
        #expect(try verifier.verifierKey == vector["verifierKey"]!)
    }

    @Test func theGoNoteVerifiesWithTheGoVerifierKey() throws {
        let verifier = try NoteVerifier(verifierKey: vector["verifierKey"]!)
        #expect(hexString(verifier.keyID) == "c74f20a3")
        #expect(try SignedNote.open(vector["note"]!, verifier: verifier) == vector["text"]!)
    }

    /// Base64 key material often contains '+', the verifier key's field separator.
    @Test func verifierKeysWhoseKeyMaterialContainsPlusParse() throws {
        let plusKey = vector["plusKey"]!
        let verifier = try NoteVerifier(verifierKey: plusKey)
        #expect(verifier.name == "TEST")
        #expect(hexString(verifier.keyID) == "7997405c")
        #expect(try verifier.verifierKey == plusKey)
        // And for our own keys, whatever their bytes.
        for _ in 0..<40 {
            let generated = try NoteVerifier(name: "log.example/secmail", publicKey: Ed25519PrivateKey.generate().publicKey)
            #expect(try NoteVerifier(verifierKey: generated.verifierKey).keyID == generated.keyID)
        }
    }

    @Test func changedOrForeignNotesAreRefused() throws {
        let verifier = try NoteVerifier(verifierKey: vector["verifierKey"]!)
        let note = vector["note"]!
        let changedText = note.replacingOccurrences(of: "cryptography", with: "cryptographY")
        #expect((#expect(throws: FormatError.self) { try SignedNote.open(changedText, verifier: verifier) })?.code == .authenticationFailed)
        let changedSignature = note.replacingOccurrences(of: "x08go", with: "x08gp")
        #expect(throws: FormatError.self) { try SignedNote.open(changedSignature, verifier: verifier) }
        let other = try NoteVerifier(name: "OtherLog", publicKey: Ed25519PrivateKey.generate().publicKey)
        #expect((#expect(throws: FormatError.self) { try SignedNote.open(note, verifier: other) })?.code == .authenticationFailed)
        #expect(throws: FormatError.self) { try SignedNote.open(vector["text"]!, verifier: verifier) }
        // A verifier key whose hash does not match its key.
        #expect(throws: FormatError.self) { try NoteVerifier(verifierKey: vector["verifierKey"]!.replacingOccurrences(of: "c74f20a3", with: "c74f20a4")) }
    }

    @Test func checkpointsRoundTripSignedAndParseStrictly() throws {
        let tree = MerkleTree(leafHashes: (0..<10).map { MerkleHash.leaf([UInt8($0)]) })
        let checkpoint = try Checkpoint(origin: "relay.example/secmail", size: 10, rootHash: tree.root())
        #expect(checkpoint.text.hasPrefix("relay.example/secmail\n10\n"))
        let key = try Ed25519PrivateKey.generate()
        let note = try SignedNote.sign(checkpoint.text, name: checkpoint.origin, key: key)
        let verifier = try NoteVerifier(name: checkpoint.origin, publicKey: key.publicKey)
        #expect(try Checkpoint(text: SignedNote.open(note, verifier: verifier)) == checkpoint)

        let root = Data(try tree.root()).base64EncodedString()
        for bad in ["relay\n010\n\(root)\n", "relay\n10\n\(root)", "relay\nten\n\(root)\n", "relay\n10\nAAAA\n",
                    "relay\n10\n", "re lay\n10\n\(root)\n", "\n10\n\(root)\n"] {
            #expect(throws: FormatError.self, "\(bad)") { try Checkpoint(text: bad) }
        }
        #expect(try Checkpoint(text: "relay\n10\n\(root)\nextension line\n").extensions == ["extension line"])
    }
}
