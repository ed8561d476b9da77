import ArgumentParser
import SecmailCommandLine
import SecmailFormat

/// A command of the relay's own program, `secmail-relay`, which this one starts in its place
/// with the rest of the command line: the client program leaves the relay out, so that every
/// client command starts without its storage engines, HTTP server and Foundation.
protocol RelayProgramCommand: AsyncParsableCommand {
    /// Everything after the command's name, options and `--help` included, as typed.
    var arguments: [String] { get }
    /// The words that name the command to `secmail-relay`.
    static var relayProgramCommand: [String] { get }
}

extension RelayProgramCommand {
    func run() async throws {
        let failure = CompanionProgram.replaceProcess(with: "secmail-relay", arguments: Self.relayProgramCommand + arguments)
        throw CLIFailure(.failure, """
            `secmail \(Self.configuration.commandName ?? "")` runs the secmail-relay program, and \(failure): \
            install it beside secmail (`swift build -c release --product secmail-relay` builds it), \
            or run it as `swift run secmail-relay \((Self.relayProgramCommand + ["…"]).joined(separator: " "))`
            """)
    }
}

struct RelayCommand: RelayProgramCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay",
        abstract: RelayProgramAbstract.relay,
        discussion: "The same as `secmail-relay …`; `secmail relay --help` lists its commands (serve, status, invite, backup, new-log).")

    @Argument(parsing: .captureForPassthrough, help: "A relay command and its options (serve when none is named).")
    var arguments: [String] = []

    static let relayProgramCommand: [String] = []
}

struct DemoCommand: RelayProgramCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: RelayProgramAbstract.demo,
        discussion: "The same as `secmail-relay demo`.")

    @Argument(parsing: .captureForPassthrough, help: "The demo's options (--keep; --help lists them).")
    var arguments: [String] = []

    static let relayProgramCommand = ["demo"]
}
