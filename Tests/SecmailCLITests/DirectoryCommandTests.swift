import Foundation
import SecmailCrypto
import SecmailFormat
import SecmailRelay
import SecmailRelayTestSupport
import SecmailTestSupport
import Testing

/// `secmail register` and `secmail lookup` against a real `secmail relay` process, and the
/// attacks a lying relay could try: each is refused with exit 2 and a clear message.
@Suite struct DirectoryCommandTests {
    let commands = RelayCommandTests()

    @Test func registerLookupAndEveryLieOfTheRelayIsCaught() async throws {
        let folder = try temporaryDirectory("directory-cli")
        let data = folder.appendingPathComponent("relay", isDirectory: true)
        var relay = try await commands.startRelay(data: data)
        let ca = data.appendingPathComponent("tls/dev-ca.pem").path
        let alice = CLIUser.fresh("alice", in: folder), bob = CLIUser.fresh("bob", in: folder), carol = CLIUser.fresh("carol", in: folder)
        for person in [alice, bob] { try await person.register(port: relay.port, ca: ca) }
        #expect(permissions(alice.home.appendingPathComponent("relay.json")) == 0o600)

        let first = try await alice.run(["lookup", "bob", "--json"])
        #expect(first.status == 0, "\(first.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [String: Any])
        #expect(json["pinned"] as? String == "new")
        // Nothing was registered since: the relay shows the checkpoint alice stored, and her
        // relay.json is left as it is (a rewrite is a new file renamed over it: a new inode).
        let settingsFile = alice.home.appendingPathComponent("relay.json").path
        let stored = try #require(try FileManager.default.attributesOfItem(atPath: settingsFile)[.systemFileNumber] as? Int)
        await #expect(try alice.run(["lookup", "bob", "--json"]).stdout.contains("\"unchanged\""))
        #expect(try FileManager.default.attributesOfItem(atPath: settingsFile)[.systemFileNumber] as? Int == stored)
        let unknown = try await alice.run(["lookup", "nobody"])
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("no one is registered as nobody"))
        // Mallory tries to take the name alice with her own keys.
        let mallory = CLIUser.fresh("mallory", in: folder)
        let taken = try await mallory.run(["register", "alice", "--relay", "https://localhost:\(relay.port)", "--ca", ca])
        #expect(taken.status == 1)
        #expect(taken.stderr.contains("the name alice is already registered on the relay at localhost:\(relay.port)"), "\(taken.stderr)")
        // Said before any key was made: the home holds no identity to get stuck with.
        #expect(!FileManager.default.fileExists(atPath: mallory.home.appendingPathComponent("identity").path))
        // A look-alike of a registered name and a reserved name: the relay's own reason (before,
        // "no one is registered as a1ice"), and the keys made for the refused name are
        // discarded (before, the home was tied to it), so the same home registers another name.
        for (name, reason) in [("a1ice", "the name a1ice looks too much like alice, which is registered"), ("postmaster", "reserved")] {
            let refused = try await mallory.run(["register", name, "--relay", "https://localhost:\(relay.port)", "--ca", ca])
            #expect(refused.status == 1 && refused.stderr.contains(reason)
                    && refused.stderr.contains("The keys made for \(name) were registered nowhere and are discarded"), "\(refused.stderr)")
            #expect(!FileManager.default.fileExists(atPath: mallory.home.appendingPathComponent("identity").path))
        }
        let registered = try await mallory.run(["register", "mallory", "--relay", "https://localhost:\(relay.port)", "--ca", ca])
        #expect(registered.status == 0, "\(registered.stderr)")

        // 1. The relay's database is edited to serve other keys for bob.
        let database = try RelayDatabase(path: data.appendingPathComponent("relay.sqlite").path)
        let (bobBundle, aliceBundle) = try await database.read { db in
            (try db.fetchOne(Data.self, "SELECT bundle FROM identities WHERE name = 'bob'"),
             try db.fetchOne(Data.self, "SELECT bundle FROM identities WHERE name = 'alice'"))
        }
        try await database.write { db in
            try db.execute("UPDATE identities SET bundle = ? WHERE name = 'bob'", [aliceBundle])
        }
        let swapped = try await alice.run(["lookup", "bob"])
        #expect(swapped.status == 2, "\(swapped.stderr)")
        #expect(swapped.stderr.contains("the relay answered with alice's key") || swapped.stderr.contains("different key"))
        try await database.write { db in
            try db.execute("UPDATE identities SET bundle = ? WHERE name = 'bob'", [bobBundle])
        }
        await #expect(try alice.run(["lookup", "bob"]).status == 0)

        // 2. The log is rolled back: the relay restarts on a copy made before carol registered.
        #expect(await commands.stop(relay.process) == 0)
        // In WAL mode committed pages may still be in relay.sqlite-wal: copy the database's files together.
        let snapshot = folder.appendingPathComponent("snapshot", isDirectory: true)
        try FileManager.default.createDirectory(at: snapshot, withIntermediateDirectories: true)
        let databaseFiles = ["relay.sqlite", "relay.sqlite-wal", "relay.sqlite-shm"]
        for file in databaseFiles where FileManager.default.fileExists(atPath: data.appendingPathComponent(file).path) {
            try FileManager.default.copyItem(at: data.appendingPathComponent(file), to: snapshot.appendingPathComponent(file))
        }
        relay = try await commands.startRelay(data: data)
        await #expect(try carol.run(["register", "carol", "--relay", "https://localhost:\(relay.port)", "--ca", ca]).status == 0)
        try alice.retarget(port: relay.port)
        await #expect(try alice.run(["lookup", "carol"]).status == 0)  // alice now holds the 3-entry checkpoint
        #expect(await commands.stop(relay.process) == 0)
        for file in databaseFiles {
            try? FileManager.default.removeItem(at: data.appendingPathComponent(file))
            if FileManager.default.fileExists(atPath: snapshot.appendingPathComponent(file).path) {
                try FileManager.default.moveItem(at: snapshot.appendingPathComponent(file), to: data.appendingPathComponent(file))
            }
        }
        relay = try await commands.startRelay(data: data)
        try alice.retarget(port: relay.port)
        let rolledBack = try await alice.run(["lookup", "bob"])
        #expect(rolledBack.status == 2, "\(rolledBack.stderr)")
        #expect(rolledBack.stderr.contains("rolled back"))
        #expect(await commands.stop(relay.process) == 0)

        // 3. Another relay (other TLS key) at the pinned address is refused at the TLS handshake.
        let impostor = try await commands.startRelay(data: folder.appendingPathComponent("impostor", isDirectory: true))
        try alice.retarget(port: impostor.port)
        let wrongRelay = try await alice.run(["lookup", "bob"])
        #expect(wrongRelay.status != 0)
        #expect(wrongRelay.stderr.contains("pinned"), "\(wrongRelay.stderr)")
        #expect(await commands.stop(impostor.process) == 0)
    }

    /// `lookup` of several names (as `send` takes several): each verified and pinned, one given
    /// twice looked up once, and none pinned when one of them fails; `--all` for every contact.
    @Test func severalNamesAreLookedUpTogetherAndPinnedOnlyIfAllPass() async throws {
        let (folder, _, relay, ca, alice, bob) = try await commands.relayWithAliceAndBob("lookup-several")
        let carol = CLIUser.fresh("carol", in: folder)
        try await carol.register(port: relay.port, ca: ca)
        let contacts = alice.home.appendingPathComponent("contacts", isDirectory: true)

        let unknown = try await alice.run(["lookup", "bob", "nobody"])
        #expect(unknown.status == 1 && unknown.stderr.contains("no one is registered as nobody"), "\(unknown.stderr)")
        #expect(unknown.stdout.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: contacts.appendingPathComponent("bob.id").path))

        let found = try await alice.run(["lookup", "bob", "carol", "bob", "--json"])
        #expect(found.status == 0, "\(found.stderr)")
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(found.stdout.utf8)) as? [[String: Any]])
        #expect(entries.map { $0["name"] as? String } == ["bob", "carol"])
        #expect(entries.allSatisfy { $0["pinned"] as? String == "new" })
        for name in ["bob", "carol"] { #expect(FileManager.default.fileExists(atPath: contacts.appendingPathComponent("\(name).id").path)) }
        let again = try await alice.run(["lookup", "carol", "bob"])
        #expect(again.status == 0 && again.stdout.hasPrefix("carol  key version 1\n") && again.stdout.contains("\nbob  key version 1\n"), "\(again.stdout)")

        // --all: every pinned contact but oneself, bob's rotation followed.
        await #expect(try bob.run(["rotate"]).status == 0)
        let everyone = try await alice.run(["lookup", "--all", "--json"])
        let followed = try #require(try JSONSerialization.jsonObject(with: Data(everyone.stdout.utf8)) as? [[String: Any]], "\(everyone.stderr)")
        #expect(followed.map { $0["name"] as? String } == ["bob", "carol"], "\(followed)")
        #expect(followed.map { $0["pinned"] as? String } == ["rotated", "unchanged"] && followed[0]["keyVersion"] as? Int == 2, "\(followed)")
        #expect(await commands.stop(relay.process) == 0)
    }

    /// `contacts --forget` removes a pin and its comparison, after checking every name; one's own
    /// key stays. The next lookup pins on first use again.
    @Test func aForgottenContactIsPinnedAfreshOnFirstUse() async throws {
        let (_, _, relay, _, alice, bob) = try await commands.relayWithAliceAndBob("forget")
        defer { relay.process.terminate() }
        await #expect(try alice.run(["lookup", "bob"]).status == 0)
        let fingerprint = try #require(try JSONSerialization.jsonObject(with: Data(try await bob.run(["whoami", "--json"]).stdout.utf8)) as? [String: Any])["fingerprint"] as? String
        await #expect(try alice.run(["trust", "bob", "--fingerprint", fingerprint ?? ""]).status == 0)
        let contacts = alice.home.appendingPathComponent("contacts", isDirectory: true)

        let own = try await alice.run(["contacts", "--forget", "bob", "--forget", "alice"])
        #expect(own.status == 1 && own.stderr.contains("alice is you: your own key stays pinned"), "\(own.stderr)")
        let typo = try await alice.run(["contacts", "--forget", "bobb"])
        #expect(typo.status == 1 && typo.stderr.contains("bobb is not among your pinned contacts, so nothing was removed; did you mean bob?"), "\(typo.stderr)")
        #expect(FileManager.default.fileExists(atPath: contacts.appendingPathComponent("bob.id").path))

        let forgotten = try await alice.run(["contacts", "--forget", "bob"])
        #expect(forgotten.status == 0 && forgotten.stderr.contains("Forgot the pin of bob (key version 1"), "\(forgotten.stderr)")
        for file in ["bob.id", "bob.compared"] { #expect(!FileManager.default.fileExists(atPath: contacts.appendingPathComponent(file).path)) }
        #expect(FileManager.default.fileExists(atPath: contacts.appendingPathComponent("alice.id").path))
        let again = try await alice.run(["lookup", "bob", "--json"])
        #expect(again.stdout.contains("\"pinned\" : \"new\""), "\(again.stdout) \(again.stderr)")
    }

    /// Rotation as users do it, and a relay that forges a rotation: contacts stop at it, the
    /// owner's audit names it, and only `trust` with the compared fingerprint gets past it.
    /// A first contact can rest on what `secmail relay` prints instead of a CA file: the register
    /// line it prints (its TLS key pin, which openssl computes alike from the certificate, and its
    /// log key) works as given, and a pin or log key that is not this relay's is refused with
    /// exit 2 before any key is made or anything pinned.
    @Test func registeringWithThePrintedPinAndLogKeyNeedsNoCAFileAndAnotherRelaysIsRefused() async throws {
        let folder = try temporaryDirectory("first-contact")
        let data = folder.appendingPathComponent("relay", isDirectory: true)
        let relay = try await commands.startRelay(data: data)
        let other = try await commands.startRelay(data: folder.appendingPathComponent("other-relay", isDirectory: true))
        defer { relay.process.terminate(); other.process.terminate() }
        let printed = relay.output.text.split(separator: "\n").map(String.init)
        let value = { (label: String, output: [String]) throws -> String in
            let line = try #require(output.first { $0.hasPrefix("  \(label):") }, "\(output)")
            return line.dropFirst(label.count + 3).trimmingCharacters(in: .whitespaces)
        }
        let pin = try value("TLS key pin", printed), logKey = try value("log key", printed)
        let otherLogKey = try value("log key", other.output.text.split(separator: "\n").map(String.init))
        let certificate = data.appendingPathComponent("tls/relay.pem").path
        let opensslPin = try await run("sh", ["-c", "openssl x509 -in '\(certificate)' -pubkey -noout | openssl pkey -pubin -outform DER | openssl dgst -sha256 -r"])
        #expect(pin == "sha256/" + opensslPin.text.prefix(64), "\(pin) \(opensslPin.text)")

        // The printed line, as a person would paste it.
        let command = try #require(printed.firstIndex(of: "Clients register with:").map { printed[$0 + 1] }, "\(printed)")
        let words = command.split(separator: " ").map(String.init)
        #expect(words.first == "secmail" && words.contains("--tls-pin") && words.contains("--log-key") && !words.contains("--ca"), "\(command)")
        let alice = CLIUser.fresh("alice", in: folder)
        let registered = try await alice.run(Array(words.dropFirst()).map { $0 == "NAME" ? "alice" : $0 })
        #expect(registered.status == 0, "\(registered.stderr)")
        let settings = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: alice.home.appendingPathComponent("relay.json"))) as? [String: Any])
        #expect(settings["caFile"] == nil && "sha256/" + (settings["relayKeyPin"] as? String ?? "") == pin && settings["logVerifierKey"] as? String == logKey)
        // `whoami` shows what was pinned, for comparing with what the operator publishes.
        let shown = try #require(try JSONSerialization.jsonObject(with: Data(try await alice.run(["whoami", "--json"]).stdout.utf8)) as? [String: Any])
        #expect(shown["relayKeyPin"] as? String == pin && shown["logKey"] as? String == logKey, "\(shown)")
        let shownText = try await alice.run(["whoami"]).stdout
        #expect(shownText.contains("  TLS key    \(pin)\n  log key    \(logKey)\n"), "\(shownText)")
        let bob = CLIUser.fresh("bob", in: folder)
        try await bob.register(port: relay.port, ca: data.appendingPathComponent("tls/dev-ca.pem").path)
        await #expect(try alice.run(["lookup", "bob"]).status == 0)

        // Another relay's pin or log key, alone or beside a CA file the relay does chain to.
        let url = "https://localhost:\(relay.port)"
        let ca = data.appendingPathComponent("tls/dev-ca.pem").path
        let otherPin = try value("TLS key pin", other.output.text.split(separator: "\n").map(String.init))
        let refusals: [(arguments: [String], says: String)] = [
            (["--tls-pin", otherPin], "presents another TLS key than the one given with --tls-pin"),
            (["--ca", ca, "--tls-pin", otherPin], "not the one given with --tls-pin"),
            (["--tls-pin", pin, "--log-key", otherLogKey], "serves the log key \(logKey), not the one given with --log-key"),
        ]
        for (index, refusal) in refusals.enumerated() {
            let carol = CLIUser.fresh("carol\(index)", in: folder)
            let refused = try await carol.run(["register", carol.name, "--relay", url] + refusal.arguments)
            #expect(refused.status == 2, "\(refusal.arguments): \(refused.stderr)")
            #expect(refused.stderr.contains(refusal.says), "\(refused.stderr)")
            #expect(!FileManager.default.fileExists(atPath: carol.home.appendingPathComponent("identity").path))
            #expect(!FileManager.default.fileExists(atPath: carol.home.appendingPathComponent("relay.json").path))
        }
        // Malformed or missing trust is a usage error, said before anything else.
        let dave = CLIUser.fresh("dave", in: folder)
        let malformed = try await dave.run(["register", "dave", "--relay", url, "--tls-pin", "sha256/abc"])
        #expect(malformed.status == 1 && malformed.stderr.contains("--tls-pin takes sha256/ and 64 hex digits"), "\(malformed.stderr)")
        let none = try await dave.run(["register", "dave", "--relay", url])
        #expect(none.status == 1 && none.stderr.contains("needs --ca CA.pem or --tls-pin"), "\(none.stderr)")
        // `monitor` takes the same first-contact trust.
        let watcher = CLIUser.fresh("watcher", in: folder)
        let unsaid = try await watcher.run(["monitor"])
        #expect(unsaid.status == 1 && unsaid.stderr.contains("monitors no relay yet; give the first one with: secmail monitor --relay https://HOST:PORT"),
                "\(unsaid.stderr)")
        let monitored = try await watcher.run(["monitor", "--relay", url, "--tls-pin", pin, "--log-key", logKey])
        #expect(monitored.status == 0, "\(monitored.stderr)")
        let misled = try await CLIUser.fresh("watcher2", in: folder).run(["monitor", "--relay", url, "--tls-pin", pin, "--log-key", otherLogKey])
        #expect(misled.status == 2 && misled.stderr.contains("not the one given with --log-key"), "\(misled.stderr)")
    }

    /// A relay that moved (same data, so the same TLS key and log key, at another port) is
    /// followed by `register` with its new address alone, even after a rotation (a rotated
    /// identity cannot register anew): nothing is registered again. Another relay is not taken
    /// for it: that still needs --switch-relay, and relay.json stays as it was.
    @Test func aRelayAtANewAddressIsFollowedAndAnotherIsNotTakenForIt() async throws {
        let (folder, data, relay, _, alice, _) = try await commands.relayWithAliceAndBob("moved-relay")
        let watcher = CLIUser.fresh("watcher", in: folder)
        let ca = data.appendingPathComponent("tls/dev-ca.pem").path
        await #expect(try watcher.run(["monitor", "--relay", "https://localhost:\(relay.port)", "--ca", ca]).status == 0)
        await #expect(try alice.run(["rotate"]).status == 0)
        #expect(await commands.stop(relay.process) == 0)
        let moved = try await commands.startRelay(data: data)
        defer { moved.process.terminate() }
        await #expect(try alice.run(["inbox"]).status == 1)

        let followed = try await alice.run(["register", "alice", "--relay", "https://localhost:\(moved.port)"])
        #expect(followed.status == 0 && followed.stderr.contains("this home now uses that address") && followed.stderr.contains("key version 2"), "\(followed.stderr)")
        let settings = alice.home.appendingPathComponent("relay.json")
        #expect(try String(contentsOf: settings, encoding: .utf8).contains("localhost:\(moved.port)"))
        await #expect(try alice.run(["inbox"]).status == 0)

        let otherData = folder.appendingPathComponent("other-relay", isDirectory: true)
        let other = try await commands.startRelay(data: otherData)
        defer { other.process.terminate() }
        let before = try Data(contentsOf: settings)
        for extra in [[], ["--ca", otherData.appendingPathComponent("tls/dev-ca.pem").path]] {
            let refused = try await alice.run(["register", "alice", "--relay", "https://localhost:\(other.port)"] + extra)
            #expect(refused.status == 1 && refused.stderr.contains("Add --switch-relay"), "\(refused.stderr)")
        }
        #expect(try Data(contentsOf: settings) == before)

        // `monitor` follows the move the same way, replaying the rotation made before it, and
        // does not take another relay for it; a home with an identity is sent to `register`.
        let watched = try await watcher.run(["monitor", "--relay", "https://localhost:\(moved.port)"])
        #expect(watched.status == 0 && watched.stderr.contains("this home now monitors that address") && watched.stderr.contains("Checked 1 new log entries"),
                "\(watched.stderr)")
        let watcherSettings = watcher.home.appendingPathComponent("relay.json")
        #expect(try String(contentsOf: watcherSettings, encoding: .utf8).contains("localhost:\(moved.port)"))
        await #expect(try watcher.run(["monitor"]).status == 0)
        let watcherBefore = try Data(contentsOf: watcherSettings)
        let misled = try await watcher.run(["monitor", "--relay", "https://localhost:\(other.port)"])
        #expect(misled.status == 1 && misled.stderr.contains("is not the one this home monitors") && misled.stderr.contains("another TLS key"), "\(misled.stderr)")
        #expect(try Data(contentsOf: watcherSettings) == watcherBefore)
        let sent = try await alice.run(["monitor", "--relay", "https://localhost:\(other.port)"])
        #expect(sent.status == 1 && sent.stderr.contains("secmail register alice --relay https://localhost:\(other.port)"), "\(sent.stderr)")
        #expect(try Data(contentsOf: settings) == before)
    }

    /// Two copies of one home (two machines, a restored backup): after a rotation in one, the
    /// other holds a retired key. Its sign-in is refused with a sentence that says what to copy,
    /// and copying that folder makes it work again.
    @Test func aCopyOfAHomeLeftBehindByARotationSaysWhatToCopy() async throws {
        let (folder, _, relay, _, alice, _) = try await commands.relayWithAliceAndBob("stale-home-copy")
        defer { relay.process.terminate() }
        let copy = CLIUser(name: "alice", home: folder.appendingPathComponent("alice-copy"), passphrase: alice.passphrase)
        await #expect(try run("cp", ["-a", alice.home.path, copy.home.path]).status == 0)
        await #expect(try alice.run(["rotate"]).status == 0)

        let behind = try await copy.run(["inbox"])
        #expect(behind.status == 1, "\(behind.stderr)")
        #expect(behind.stderr.contains("does not take this home's key version 1 as alice's current signing key")
                    && behind.stderr.contains("copy that copy's identity folder over \(copy.home.appendingPathComponent("identity").path)"), "\(behind.stderr)")

        await #expect(try run("rm", ["-rf", copy.home.appendingPathComponent("identity").path]).status == 0)
        await #expect(try run("cp", ["-a", alice.home.appendingPathComponent("identity").path, copy.home.path]).status == 0)
        let caughtUp = try await copy.run(["inbox"])
        #expect(caughtUp.status == 0, "\(caughtUp.stderr)")
    }

    @Test func rotationIsFollowedByContactsAndAForgedRotationIsCaught() async throws {
        let (folder, data, relay, _, alice, bob) = try await commands.relayWithAliceAndBob("rotation-cli")
        let file = { (name: String) in folder.appendingPathComponent(name).path }
        await #expect(try alice.run(["export", "-o", file("alice-v1.id")]).status == 0)
        await #expect(try bob.run(["export", "-o", file("bob.id")]).status == 0)
        await #expect(try bob.run(["seal", "--to", file("alice-v1.id"), "-m", "sealed before the rotation", "-o", file("early.sm")]).status == 0)
        await #expect(try bob.run(["lookup", "alice"]).status == 0)

        let rotated = try await alice.run(["rotate"])
        #expect(rotated.status == 0, "\(rotated.stderr)")
        #expect(rotated.stderr.contains("from key version 1 to 2"))
        #expect(contents(of: alice.home.appendingPathComponent("identity")) == ["current", "v1", "v2"])
        // The version-1 private key stayed: mail sealed to it still opens.
        let opened = try await alice.run(["open", file("early.sm"), "--from", file("bob.id"), "--out", file("early-out")])
        #expect(opened.status == 0, "\(opened.stderr)")
        #expect(opened.stdout.contains("sealed before the rotation"))

        let followed = try await bob.run(["lookup", "alice", "--json"])
        #expect(followed.status == 0, "\(followed.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(followed.stdout.utf8)) as? [String: Any])
        #expect(json["pinned"] as? String == "rotated")
        #expect(json["rotatedFrom"] as? Int == 1)
        #expect(json["keyVersion"] as? Int == 2)
        let audited = try await alice.run(["audit"])
        #expect(audited.status == 0, "\(audited.stderr)")
        #expect(audited.stderr.contains("ok  log entry #0: registration of alice, key version 1"))
        #expect(audited.stderr.contains("ok  log entry #2: rotation of alice, key version 2"))
        await #expect(try alice.run(["audit"]).stderr.contains("Audited 0 new log entries (log size 3)"))

        // The relay (or whoever holds its database) logs a version 3 of alice with keys of its own.
        let database = try RelayDatabase(path: data.appendingPathComponent("relay.sqlite").path)
        let v2 = try #require(try await Directory(database: database).lookup(IdentityName("alice")).entry).bundle
        let mallory = try ThrowawayIdentities.signingKey("carol")
        let forged = try IdentityBundle.create(name: v2.name, keyVersion: 3, createdAt: 0, signingKey: mallory,
                                               encryptionKey: ThrowawayIdentities.encryptionKey("carol").publicKey,
                                               rotatingFrom: (v2, mallory))
        try await RelayDatabaseForgery(database).log(.rotation, forged)
        let stopped = try await bob.run(["lookup", "alice"])
        #expect(stopped.status == 2)
        #expect(stopped.stderr.contains("continuity signature of alice version 3 does not verify"), "\(stopped.stderr)")
        for _ in 0..<2 {  // reported again until dealt with
            let caught = try await alice.run(["audit"])
            #expect(caught.status == 2)
            #expect(caught.stderr.contains("NOT made by you"), "\(caught.stderr)")
            #expect(caught.stderr.contains("log entry #3: rotation of alice, key version 3, fingerprint \(forged.fingerprint.grouped)"))
        }

        let mismatch = try await bob.run(["trust", "alice", "--fingerprint", v2.fingerprint.hex])
        #expect(mismatch.status == 2)
        #expect(mismatch.stderr.contains("not the fingerprint you gave"))
        let trusted = try await bob.run(["trust", "alice", "--fingerprint", forged.fingerprint.grouped])
        #expect(trusted.status == 0, "\(trusted.stderr)")
        await #expect(try bob.run(["lookup", "alice", "--json"]).stdout.contains("\"unchanged\""))
        let contacts = try await bob.run(["contacts"])
        #expect(contacts.stdout.contains("alice  key version 3  \(forged.fingerprint.grouped)"))
        #expect(await commands.stop(relay.process) == 0)
    }

    /// A home folder made beforehand with mkdir (755) and empty: `register` makes it private,
    /// says so, and registers (as `init` does; ClientSafetyTests checks the refusals).
    @Test func registerMakesAnEmptyHomeMadeBeforehandPrivate() async throws {
        let (folder, _, relay, ca, _, _) = try await commands.relayWithAliceAndBob("register-mkdir-home")
        defer { relay.process.terminate() }
        let carol = CLIUser.fresh("carol", in: folder)
        try FileManager.default.createDirectory(at: carol.home, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
        let registered = try await carol.register(port: relay.port, ca: ca)
        #expect(registered.stderr.contains("Made \(carol.home.path) private (permissions 700; it was 755)"), "\(registered.stderr)")
        #expect((try FileManager.default.attributesOfItem(atPath: carol.home.path)[.posixPermissions] as? Int) == 0o700)
    }
}
