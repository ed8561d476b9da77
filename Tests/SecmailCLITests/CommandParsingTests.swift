import ArgumentParser
@testable import SecmailCommandLine
import Testing
@testable import secmail

/// `CommandLineProgram.parse`: a client command is parsed on its own, without ArgumentParser's
/// completion-script check and root pass, and comes out as the full parse from the root would
/// give it; anything else is the root's parse, word for word.
@Suite struct CommandParsingTests {
    /// Every command without subcommands names its place under `secmail` as its super-command;
    /// one that did not would quietly lose the fast parse (or, named wrongly, show a wrong name).
    @Test func everyClientCommandNamesItsPlaceUnderSecmail() {
        /// `above`: the words that name the commands above this one.
        func check(_ command: ParsableCommand.Type, above: [String]) {
            let subcommands = command.configuration.subcommands
            if subcommands.isEmpty {
                #expect(command.configuration._superCommandName == above.joined(separator: " "), "\(command)")
            }
            for subcommand in subcommands {
                check(subcommand, above: above + [command.configuration.commandName ?? ""])
            }
        }
        for subcommand in SecmailCommand.configuration.subcommands {
            check(subcommand, above: ["secmail"])
        }
    }

    @Test func aCommandIsParsedOnItsOwnWithTheSameValues() throws {
        let seal = try #require(try CommandLineProgram.parse(SecmailCommand.self, ["seal", "--to", "bob", "--to", "carol.id", "-m", "hi", "-o", "out.sm"]) as? SealCommand)
        #expect(seal.to == ["bob", "carol.id"] && seal.output == "out.sm" && seal.compose.message == "hi" && !seal.json)
        let wire = try #require(try CommandLineProgram.parse(SecmailCommand.self, ["image", "wire", "photo.jpg"]) as? ImageWireCommand)
        #expect(wire.input == "photo.jpg")
        #expect(CommandLineProgram.namedLeafCommand(SecmailCommand.self, ["image", "wire", "photo.jpg"]).map { $0.1 } == 2)
        #expect(CommandLineProgram.namedLeafCommand(SecmailCommand.self, ["image"]) == nil)
    }

    /// Help and usage errors come from the root's parse: the same text, naming `secmail seal`.
    @Test func helpAndUsageErrorsAreTheRootParsesOwn() throws {
        for arguments in [["seal", "--help"], ["seal", "-h"], ["image", "wire", "--help"]] {
            let fast = try CommandLineProgram.parse(SecmailCommand.self, arguments)
            let full = try SecmailCommand.parseAsRoot(arguments)
            #expect(!(fast is SealCommand) && String(describing: type(of: fast)) == String(describing: type(of: full)), "\(arguments)")
        }
        for arguments in [["seal", "--bogus"], ["seal", "-m", "hi"], ["seal", "--to", "bob", "--json", "-o", "-"], ["open"]] {
            var fastMessage = "", fullMessage = ""
            do { _ = try CommandLineProgram.parse(SecmailCommand.self, arguments) } catch { fastMessage = SecmailCommand.fullMessage(for: error) }
            do { _ = try SecmailCommand.parseAsRoot(arguments) } catch { fullMessage = SecmailCommand.fullMessage(for: error) }
            #expect(!fastMessage.isEmpty && fastMessage == fullMessage, "\(arguments)")
            #expect(fastMessage.contains("See 'secmail \(arguments[0]) --help'"), "\(fastMessage)")
        }
    }
}
