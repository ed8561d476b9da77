import Foundation
import Hummingbird
import SecmailFormat

/// `/v1/directory`: register, look up, rotate and list key versions. See docs/API.md.
struct DirectoryController: Sendable {
    let directory: Directory
    let log: LogStore
    let signer: CheckpointSigner
    static let bodyLimit = 64 * 1024

    struct BundleRequest: Decodable {
        /// Base64 of the canonical identity bundle.
        let bundle: String
        let invite: String?
    }

    struct RegisteredResponse: ResponseEncodable {
        let name: String
        let keyVersion: UInt32
        let fingerprint: String
        let logIndex: UInt64
    }

    struct HistoryResponse: ResponseEncodable {
        let name: String
        let bundles: [String]
    }

    func addRoutes(to group: RouterGroup<BasicRequestContext>) {
        group.post("register") { request, _ in try await api { try await register(request) } }
        group.post("rotate") { request, _ in try await api { try await rotate(request) } }
        group.get(":name") { _, context in try await api { try lookup(context.parameters.require("name")) } }
        group.get(":name/history") { _, context in try await api { try history(context.parameters.require("name")) } }
    }

    func register(_ request: Request) async throws -> EditedResponse<RegisteredResponse> {
        let body = try await decodeBody(BundleRequest.self, from: request, limit: Self.bodyLimit)
        let bundle = try Self.bundle(from: body.bundle)
        let index = try directory.register(bundle, inviteCode: body.invite)
        return EditedResponse(status: .created, response: Self.registered(bundle, index))
    }

    func rotate(_ request: Request) async throws -> RegisteredResponse {
        let body = try await decodeBody(BundleRequest.self, from: request, limit: Self.bodyLimit)
        let bundle = try Self.bundle(from: body.bundle)
        return Self.registered(bundle, try directory.rotate(to: bundle))
    }

    func lookup(_ rawName: String) throws -> DirectoryLookupMessage {
        let entry = try directory.lookup(IdentityName(rawName))
        return DirectoryLookupMessage(
            name: entry.bundle.name.value, keyVersion: entry.bundle.keyVersion, fingerprint: entry.bundle.fingerprint.hex,
            bundle: Data(entry.bundle.encoded).base64EncodedString(), leaf: Data(entry.leafData).base64EncodedString(),
            logIndex: entry.logIndex, treeSize: entry.treeSize,
            inclusionProof: entry.inclusionProof.map { Data($0).base64EncodedString() },
            checkpoint: try signer.sign(size: entry.treeSize, rootHash: entry.rootHash))
    }

    func history(_ rawName: String) throws -> HistoryResponse {
        let name = try IdentityName(rawName)
        let bundles = try directory.history(name)
        guard !bundles.isEmpty else { throw RelayError(.notFound, "no one is registered as \(name) on this relay") }
        return HistoryResponse(name: name.value, bundles: bundles.map { Data($0.encoded).base64EncodedString() })
    }

    static func bundle(from base64: String) throws -> IdentityBundle {
        guard let data = Data(base64Encoded: base64) else {
            throw APIError(status: .badRequest, code: "malformedRequest", reason: "the bundle is not base64")
        }
        return try IdentityBundle(encoded: Array(data))
    }

    static func registered(_ bundle: IdentityBundle, _ index: UInt64) -> RegisteredResponse {
        RegisteredResponse(name: bundle.name.value, keyVersion: bundle.keyVersion, fingerprint: bundle.fingerprint.hex, logIndex: index)
    }
}

/// `/v1/log`: signed checkpoints and consistency proofs.
struct LogController: Sendable {
    let log: LogStore
    let signer: CheckpointSigner

    struct ConsistencyResponse: ResponseEncodable {
        let from: UInt64
        let to: UInt64
        let proof: [String]
    }

    func addRoutes(to group: RouterGroup<BasicRequestContext>) {
        group.get("key") { _, _ in
            try await api { try signer.verifier.verifierKey + "\n" }
        }
        group.get("checkpoint") { _, _ in
            try await api { try signer.sign(size: log.size(), rootHash: log.root()) }
        }
        group.get("consistency") { request, _ in
            try await api {
                guard let from = request.uri.queryParameters["from"].flatMap({ UInt64(String($0)) }),
                      let to = request.uri.queryParameters["to"].flatMap({ UInt64(String($0)) }) else {
                    throw APIError(status: .badRequest, code: "malformedRequest", reason: "give ?from=M&to=N as decimal tree sizes")
                }
                let proof = try log.consistencyProof(from: from, to: to)
                return ConsistencyResponse(from: from, to: to, proof: proof.map { Data($0).base64EncodedString() })
            }
        }
    }
}

extension DirectoryLookupMessage: ResponseEncodable {}
