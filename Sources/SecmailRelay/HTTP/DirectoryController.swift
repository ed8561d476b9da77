import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SecmailAPI
import SecmailFormat

/// `/v1/directory`: register, look up, rotate and list key versions. See docs/API.md.
struct DirectoryController: Sendable {
    let directory: Directory
    let signer: CheckpointSigner
    let authenticator: Authenticator
    let registrations: RegistrationLimits
    static let bodyLimit = 64 * 1024

    func addRoutes(to router: Router<RelayRequestContext>) {
        router.on(.register) { request, context in try await register(request, from: context.remoteAddress) }
        router.on(.rotate) { request, _ in try await rotate(request) }
        router.on(.lookup) { _, context in try await lookup(context.parameters.require("name")) }
        router.on(.readerFeatures) { request, _ in try await setReaderFeatures(request) }
        router.on(.history) { request, context in
            let treeSize = try request.uri.queryParameters[Endpoint.Query.treeSize[...]].map { raw in
                guard let size = UInt64(String(raw)) else {
                    throw APIError(status: .badRequest, code: .malformedRequest, reason: "treeSize is a decimal log size")
                }
                return size
            }
            return try await history(context.parameters.require("name"), treeSize: treeSize)
        }
    }

    func register(_ request: Request, from address: SocketAddress?) async throws -> EditedResponse<RegisteredResponse> {
        let body = try await decodeBody(BundleRequest.self, from: request, limit: Self.bodyLimit)
        let bundle = try Self.bundle(from: body.bundle)
        if let features = body.readerFeatures { try Self.checkFeatures(features) }
        // An invite was given by the operator: it is not held to the limits meant for strangers.
        if !(directory.requiresInvite && body.invite != nil) { try registrations.take(for: address) }
        let index = try await directory.register(bundle, inviteCode: body.invite, readerFeatures: body.readerFeatures)
        return EditedResponse(status: .created, response: Self.registered(bundle, index))
    }

    /// Only the owner may rotate (P8): the bearer token must be the name's, proved with its
    /// current key; the continuity signature then proves the new keys come from that owner too.
    func rotate(_ request: Request) async throws -> RegisteredResponse {
        let owner = try await authenticatedName(request, authenticator)
        let body = try await decodeBody(BundleRequest.self, from: request, limit: Self.bodyLimit)
        let bundle = try Self.bundle(from: body.bundle)
        guard bundle.name == owner else {
            throw RelayError(.forbidden, "this token belongs to \(owner); it cannot rotate the keys of \(bundle.name)")
        }
        return Self.registered(bundle, try await directory.rotate(to: bundle))
    }

    /// Stores what the signed-in user's client reads; lookups of the name show it from then on.
    func setReaderFeatures(_ request: Request) async throws -> ReaderFeaturesBody {
        let owner = try await authenticatedName(request, authenticator)
        let body = try await decodeBody(ReaderFeaturesBody.self, from: request, limit: 4096)
        try Self.checkFeatures(body.features)
        guard try await directory.lookup(owner).entry != nil else {
            throw RelayError(.notFound, "\(owner) is not registered on this relay")
        }
        try await directory.setReaderFeatures(body.features, for: owner)
        return body
    }

    static func checkFeatures(_ features: [String]) throws {
        guard ReaderFeaturesBody.isWellFormed(features) else {
            throw APIError(status: .badRequest, code: .malformedRequest, reason: ReaderFeaturesBody.malformedReason)
        }
    }

    /// The current version with its map proof, or `404` with the map proof of absence.
    func lookup(_ rawName: String) async throws -> Response {
        let name = try IdentityName(normalised: rawName)
        switch try await directory.lookup(name) {
        case .found(let entry, let evidence, let readerFeatures):
            return try jsonResponse(.ok, LookupResponse(
                name: entry.bundle.name.value, keyVersion: entry.bundle.keyVersion, fingerprint: entry.bundle.fingerprint.hex,
                bundle: Data(entry.bundle.encoded).base64EncodedString(), leaf: Data(entry.leafData).base64EncodedString(),
                logIndex: entry.logIndex, treeSize: entry.treeSize,
                inclusionProof: entry.inclusionProof.map { Data($0).base64EncodedString() },
                checkpoint: try signer.sign(size: evidence.treeSize, rootHash: evidence.rootHash), map: Self.evidence(evidence),
                readerFeatures: readerFeatures))
        case .absent(let evidence):
            return try jsonResponse(.notFound, NotRegisteredResponse(
                reason: "no one is registered as \(name) on this relay", name: name.value, treeSize: evidence.treeSize,
                checkpoint: try signer.sign(size: evidence.treeSize, rootHash: evidence.rootHash), map: Self.evidence(evidence)))
        }
    }

    static func evidence(_ evidence: Directory.MapEvidence) -> NameMapEvidence {
        NameMapEvidence(headLeaf: evidence.headLeaf.map { Data($0).base64EncodedString() },
                        headInclusionProof: evidence.headInclusionProof.map { Data($0).base64EncodedString() },
                        mapProof: Data(evidence.mapProof.encoded).base64EncodedString())
    }

    /// Every version, proven against one checkpoint (of `treeSize` leaves, or the current log).
    func history(_ rawName: String, treeSize: UInt64?) async throws -> HistoryResponse {
        let name = try IdentityName(normalised: rawName)
        let entries = try await directory.history(name, treeSize: treeSize)
        let versions = entries.map { entry in
            HistoryResponse.Version(
                keyVersion: entry.bundle.keyVersion, fingerprint: entry.bundle.fingerprint.hex,
                bundle: Data(entry.bundle.encoded).base64EncodedString(), leaf: Data(entry.leafData).base64EncodedString(),
                logIndex: entry.logIndex, inclusionProof: entry.inclusionProof.map { Data($0).base64EncodedString() })
        }
        // `history` found at least one version, and all share one tree.
        let tree = entries[0]
        return HistoryResponse(name: name.value, treeSize: tree.treeSize,
                                       checkpoint: try signer.sign(size: tree.treeSize, rootHash: tree.rootHash), versions: versions)
    }

    static func bundle(from base64: String) throws -> IdentityBundle {
        guard let data = Data(base64Encoded: base64) else {
            throw APIError(status: .badRequest, code: .malformedRequest, reason: "the bundle is not base64")
        }
        return try IdentityBundle(encoded: Array(data))
    }

    static func registered(_ bundle: IdentityBundle, _ index: UInt64) -> RegisteredResponse {
        RegisteredResponse(name: bundle.name.value, keyVersion: bundle.keyVersion, fingerprint: bundle.fingerprint.hex, logIndex: index)
    }
}
