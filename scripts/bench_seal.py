#!/usr/bin/env python3
"""Times sealing and opening one file with secmail (with and without the key agent) beside gpg
(sign + encrypt, RSA-3072 keys without a passphrase, so its agent is never asked) and age
(encryption only: it does not sign) on the same files in the same run. Medians of RUNS wall times,
the tools taking turns (each round runs every tool once), the median and quartiles of the
round-by-round ratio of secmail with the agent to age, and the peak RSS of one more run (GNU
time's %M). Every output is checked once against its input.

usage: bench_seal.py SECMAIL_BINARY [LABEL=BINARY ...] [--runs N] [--sizes 1,256]  (MiB)
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

args = sys.argv[1:]
runs = 11
sizes = [1, 256]
if "--runs" in args:
    i = args.index("--runs"); runs = int(args[i + 1]); del args[i:i + 2]
if "--sizes" in args:
    i = args.index("--sizes"); sizes = [int(x) for x in args[i + 1].split(",")]; del args[i:i + 2]
binaries = [a.split("=", 1) if "=" in a else ("secmail", a) for a in args]

work = tempfile.mkdtemp(prefix="bench-seal-")


def fresh_copy(path, name):
    """Every tool runs from a copy made now: on this VM an executable written an hour or a year
    ago starts slower than a new copy of the same bytes (1-1.5 ms for secmail's 170 MB, 0.3 ms
    for age), which would favour whichever file is newest."""
    copy = os.path.join(work, name)
    shutil.copy2(path, copy)
    return copy


binaries = [(label, fresh_copy(path, f"secmail-{label}")) for label, path in binaries]
AGE, GPG = fresh_copy(shutil.which("age"), "age"), fresh_copy(shutil.which("gpg"), "gpg")
env = dict(os.environ)
env.pop("SECMAIL_PASSPHRASE", None)
PASSPHRASE = "benchmark passphrase, long enough"


def sh(command, **kw):
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=kw.pop("env", env), **kw)


def run_once(command, prepare=None):
    """Wall seconds of one run of `command` (after `prepare`), failing the benchmark on an error."""
    if prepare:
        prepare()
    start = time.perf_counter()
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}: {result.stderr.decode()}")
    return elapsed


def peak_rss(command, prepare=None):
    """The peak RSS (KiB) of one run under GNU time: a child forked from this Python would report
    Python's own RSS."""
    if prepare:
        prepare()
    report = os.path.join(work, "rss")
    subprocess.run(["/usr/bin/time", "-f", "%M", "-o", report] + command, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return int(open(report).read().split()[-1])


def measure_interleaved(jobs):
    """`jobs`: name -> (command, prepare). Runs every job once per round, `runs` rounds after one
    warm-up round, so that a slow stretch of this shared machine (medians of the same build moved
    by 30% between runs minutes apart) falls on every tool alike. Returns name -> (the median wall
    seconds, the peak RSS in KiB, the list of wall seconds by round)."""
    times = {name: [] for name in jobs}
    for index in range(runs + 1):
        for name, (command, prepare) in jobs.items():
            elapsed = run_once(command, prepare)
            if index > 0:
                times[name].append(elapsed)
    return {name: (statistics.median(times[name]), peak_rss(*jobs[name]), times[name]) for name in jobs}


def remove(*paths):
    def run():
        for path in paths:
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
    return run


def same(a, b):
    with open(a, "rb") as x, open(b, "rb") as y:
        return x.read() == y.read()


try:
    # gpg: two RSA-3072 keys without passphrase in a throw-away GNUPGHOME.
    gnupg = os.path.join(work, "gnupg")
    os.mkdir(gnupg, 0o700)
    env["GNUPGHOME"] = gnupg
    for name in ["alice", "bob"]:
        sh(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", f"{name}@bench.invalid", "rsa3072", "sign,encr", "never"])
    # age: one X25519 identity.
    age_key = os.path.join(work, "age.key")
    sh(["age-keygen", "-o", age_key])
    recipient = [l.split(": ")[1] for l in open(age_key) if l.startswith("# public key")][0].strip()
    passfile = os.path.join(work, "pass")
    with open(os.open(passfile, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write(PASSPHRASE + "\n")

    homes = {}
    for label, binary in binaries:
        for name in ["alice", "bob"]:
            home = os.path.join(work, f"{label}-{name}")
            sh([binary, "init", name, "--home", home, "--passphrase-file", passfile])
            sh([binary, "unlock", "--home", home, "--passphrase-file", passfile])
            homes[(label, name)] = home
        sh([binary, "export", "--home", homes[(label, "bob")], "-o", os.path.join(work, f"{label}-bob.id")])
        sh([binary, "export", "--home", homes[(label, "alice")], "-o", os.path.join(work, f"{label}-alice.id")])

    print(f"{'size':>7} {'tool':<26} {'seal ms':>9} {'open ms':>9} {'seal RSS MiB':>13} {'open RSS MiB':>13}")
    results = {}
    for size in sizes:
        source = os.path.join(work, f"in-{size}")
        with open(source, "wb") as f:
            for _ in range(size):
                f.write(os.urandom(1 << 20))
        out_sealed, out_dir, out_plain = os.path.join(work, "sealed"), os.path.join(work, "opened"), os.path.join(work, "plain")
        # Sealing first, each tool into its own file, then opening those: a round runs every tool.
        seals, opens = {}, {}
        for label, binary in binaries:
            a, b = homes[(label, "alice")], homes[(label, "bob")]
            bob_id, alice_id = os.path.join(work, f"{label}-bob.id"), os.path.join(work, f"{label}-alice.id")
            for mode, extra in [("agent", []), ("passphrase", ["--no-agent", "--passphrase-file", passfile])]:
                sealed, opened = f"{out_sealed}-{label}-{mode}", f"{out_dir}-{label}-{mode}"
                seals[f"{label} ({mode})"] = ([binary, "seal", "--home", a, "--to", bob_id, "-m", "x", "--attach", source, "-o", sealed] + extra, remove(sealed))
                opens[f"{label} ({mode})"] = ([binary, "open", sealed, "--home", b, "--from", alice_id, "--out", opened] + extra, remove(opened))
        seals["gpg -se / -d"] = ([GPG, "--batch", "-q", "--yes", "-se", "-u", "alice@bench.invalid", "-r", "bob@bench.invalid", "-o", out_sealed + "-gpg", source], remove(out_sealed + "-gpg"))
        opens["gpg -se / -d"] = ([GPG, "--batch", "-q", "--yes", "-d", "-o", out_plain + "-gpg", out_sealed + "-gpg"], remove(out_plain + "-gpg"))
        seals["age (no signature)"] = ([AGE, "-r", recipient, "-o", out_sealed + "-age", source], remove(out_sealed + "-age"))
        opens["age (no signature)"] = ([AGE, "-d", "-i", age_key, "-o", out_plain + "-age", out_sealed + "-age"], remove(out_plain + "-age"))
        sealed_results = measure_interleaved(seals)  # the last round's envelopes are opened below
        opened_results = measure_interleaved(opens)
        for label, _ in binaries:
            for mode in ["agent", "passphrase"]:
                assert same(source, os.path.join(f"{out_dir}-{label}-{mode}", os.path.basename(source))), "secmail output differs"
        assert same(source, out_plain + "-gpg"), "gpg output differs"
        assert same(source, out_plain + "-age"), "age output differs"
        for tool in seals:
            (st, sr, _), (ot, orss, _) = sealed_results[tool], opened_results[tool]
            print(f"{size:>5}Mi {tool:<26} {st * 1000:>9.1f} {ot * 1000:>9.1f} {sr / 1024:>13.1f} {orss / 1024:>13.1f}")
            results[(size, tool)] = (st, ot)
        # Ratios to age round by round (each round ran both within a second or so).
        for label, _ in binaries:
            for kind, table in [("seal", sealed_results), ("open", opened_results)]:
                ratios = sorted(m / a for m, a in zip(table[f"{label} (agent)"][2], table["age (no signature)"][2]))
                print(f"{size:>5}Mi {label} (agent) / age, {kind}, by round: median {statistics.median(ratios):.2f}, "
                      f"quartiles {ratios[len(ratios) // 4]:.2f}-{ratios[(3 * len(ratios)) // 4]:.2f}")
        sys.stdout.flush()
    # The targets of issue 13, for each secmail build with the agent.
    for size in sizes:
        gpg, age = results[(size, "gpg -se / -d")], results[(size, "age (no signature)")]
        for label, _ in binaries:
            mine = results[(size, f"{label} (agent)")]
            verdict = lambda m, g, a: ("<= gpg" if m <= g else "> gpg") + (", <= 3x age" if m <= 3 * a else ", > 3x age")
            print(f"target {size}Mi {label} with agent: seal {verdict(mine[0], gpg[0], age[0])}; open {verdict(mine[1], gpg[1], age[1])}")
finally:
    for label, binary in binaries:
        for name in ["alice", "bob"]:
            subprocess.run([binary, "lock", "--home", os.path.join(work, f"{label}-{name}")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.rmtree(work, ignore_errors=True)
