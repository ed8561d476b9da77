import FoundationEssentials
import Glibc
import SecmailFormat

/// Reading the copies this home keeps (`KeptMail`): of a message read before, and of one sent.
/// The relay is not asked for either.
extension MailClient {
    /// A message read before, from its kept copy and the sender bundle that verified it then:
    /// the same checks of signature, recipient and key commitment, no relay involved.
    func readKeptCopy(_ id: MessageID, keyring: RecipientKeyring, into output: URL, keepJPEG: Bool,
                      progress: EnvelopeSealer.Progress?, converting: ImageConversionObserver?) throws -> Read {
        let stored = KeptMail(home: home).receivedCopy(id)
        guard let senderBytes = try? Data(contentsOf: senderFile(id)) else {
            throw ClientError(.io, "message \(id) was read before, by a secmail that kept no record of the sender's key; open \(stored.path) with `secmail open --from` and the sender's identity file")
        }
        let sender: IdentityBundle
        let verified: VerifiedEnvelope
        do {
            sender = try IdentityBundle(encoded: Array(senderBytes))
            let source = try FileEnvelopeSource(url: stored)
            verified = try EnvelopeOpener.verify(source, sender: sender, keys: keyring.keys(for: source, from: sender), progress: progress)
        } catch let error as FormatError {
            throw ClientError(.verificationFailed, "the kept copy of message \(id) (\(stored.path)) no longer verifies: \(error.reason)")
        }
        let opened = try AttachmentDirectory.decrypt(verified, into: output, keepJPEG: keepJPEG, progress: progress, converting: converting)
        return Read(message: opened.message, sender: sender, saved: opened.saved,
                    notes: ["read before: this is the copy kept in \(stored.path)"], readBefore: true,
                    saveFailure: opened.saveFailure, senderContact: nil)
    }

    /// A message this home sent, from its kept copy: verified with the sender's own key version
    /// that signed it (this home's), decrypted with the content key kept for her.
    func readSentCopy(_ id: MessageID, key: SentCopyKey, keyring: RecipientKeyring, into output: URL, keepJPEG: Bool,
                      progress: EnvelopeSealer.Progress?, converting: ImageConversionObserver?) throws -> Read {
        let stored = KeptMail(home: home).sentCopy(id)
        let sender: IdentityBundle
        let verified: VerifiedEnvelope
        do {
            let source = try FileEnvelopeSource(url: stored)
            let header = try EnvelopeOpener.readHeader(source)
            guard let own = try Keystore(home: home).allBundles().first(where: { $0.fingerprint == header.senderFingerprint }) else {
                throw ClientError(.verificationFailed, "the kept copy of message \(id) (\(stored.path)) is not signed by a key of yours")
            }
            sender = own
            verified = try EnvelopeOpener.verify(source, sender: own, keys: keyring.keys(for: source, from: own, sentCopyKey: key),
                                                 sentCopyKey: key, progress: progress)
        } catch let error as FormatError {
            throw ClientError(.verificationFailed, "the kept copy of message \(id) (\(stored.path)) no longer verifies: \(error.reason)")
        }
        let opened = try AttachmentDirectory.decrypt(verified, into: output, keepJPEG: keepJPEG, progress: progress, converting: converting)
        let recipients = key.recipientNames.map(\.value).joined(separator: ", ")
        var read = Read(message: opened.message, sender: sender, saved: opened.saved,
                        notes: ["sent by you to \(recipients): this is the copy kept in \(stored.path)"], readBefore: true,
                        saveFailure: opened.saveFailure, senderContact: nil)
        read.sentTo = key.recipientNames
        return read
    }
}
