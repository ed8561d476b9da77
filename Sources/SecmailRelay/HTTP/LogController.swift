import Foundation
import Hummingbird
import SecmailAPI

/// `/v1/log`: signed checkpoints and consistency proofs.
struct LogController: Sendable {
    let log: LogStore
    let signer: CheckpointSigner

    func addRoutes(to router: Router<RelayRequestContext>) {
        router.on(.logKey) { _, _ in try signer.verifier.verifierKey + "\n" }
        router.on(.checkpoint) { _, _ in
            let head = try await log.head()
            return try signer.sign(size: head.size, rootHash: head.rootHash)
        }
        router.on(.entries) { request, _ in
            guard let start = request.uri.queryParameters[Endpoint.Query.start[...]].flatMap({ UInt64(String($0)) }),
                  let end = request.uri.queryParameters[Endpoint.Query.end[...]].flatMap({ UInt64(String($0)) }), start <= end else {
                throw APIError(status: .badRequest, code: .malformedRequest, reason: "give ?start=S&end=E as decimal leaf indices, S <= E")
            }
            // end - start cannot overflow; start + pageLimit is only formed when it is below end.
            let pageEnd = end - start > LogEntriesResponse.pageLimit ? start + LogEntriesResponse.pageLimit : end
            let leaves = try await log.leaves(start: start, end: pageEnd)
            return LogEntriesResponse(start: start, leaves: leaves.map { Data($0).base64EncodedString() })
        }
        router.on(.consistency) { request, _ in
            guard let from = request.uri.queryParameters[Endpoint.Query.from[...]].flatMap({ UInt64(String($0)) }),
                  let to = request.uri.queryParameters[Endpoint.Query.to[...]].flatMap({ UInt64(String($0)) }) else {
                throw APIError(status: .badRequest, code: .malformedRequest, reason: "give ?from=M&to=N as decimal tree sizes")
            }
            let proof = try await log.consistencyProof(from: from, to: to)
            return ConsistencyResponse(from: from, to: to, proof: proof.map { Data($0).base64EncodedString() })
        }
    }
}
