#!/usr/bin/env python3
"""Seed corpora for the fuzz harnesses (scripts/fuzz.sh), made from the tests' fixtures and the
published test vectors, plus small images made here (PNG written by hand, JPEG by cjpeg).

usage: fuzz_seeds.py OUTPUT_DIR   (writes OUTPUT_DIR/<target>/seed-*)
"""
import base64
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
fixtures = os.path.join(root, "Tests/SecmailFormatTests/Fixtures")
vectors = os.path.join(root, "docs/test-vectors")
out = sys.argv[1]


def with_rendering_box(stream):
    """A JPEG XL file with secmail's rendering box (docs/PROTOCOL.md) after the codestream: sRGB
    intent 0, gAMA 45455, orientation 6, stored uncompressed (a decoder takes both forms)."""
    def box(kind, body):
        return struct.pack(">I", 8 + len(body)) + kind + body
    signature = b"\x00\x00\x00\x0cJXL \x0d\x0a\x87\x0a"
    if not stream.startswith(signature):
        stream = signature + box(b"ftyp", b"jxl \x00\x00\x00\x00jxl ") + box(b"jxlc", stream)
    content = bytes([1]) + bytes([1]) + struct.pack(">I", 1) + bytes([0]) + bytes([2]) + struct.pack(">I", 4) \
        + struct.pack(">I", 45455) + bytes([5]) + struct.pack(">I", 2) + struct.pack(">H", 6)
    return stream + box(b"smrd", content)


def put(target, name, data):
    folder = os.path.join(out, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def read(path):
    with open(path, "rb") as f:
        return f.read()


directory = json.loads(read(os.path.join(vectors, "directory.json")))

# Envelopes: the golden ones (alice to bob, which the harness can verify).
put("envelope", "golden-v1", read(os.path.join(fixtures, "golden-envelope-v1.smsg")))
put("envelope", "golden-v2", read(os.path.join(vectors, "golden-envelope-v2.smsg")))


# Decrypted payloads: u32 text length, text, u16 count, then per attachment u16 name length,
# name, u8 type length, type, u8 encoding, u64 length, bytes (docs/PROTOCOL.md).
def payload(text, attachments):
    body = struct.pack(">I", len(text)) + text + struct.pack(">H", len(attachments))
    for name, media, data in attachments:
        body += struct.pack(">H", len(name)) + name + struct.pack(">B", len(media)) + media + b"\x00" + struct.pack(">Q", len(data)) + data
    return body


put("content", "text-only", payload(b"hello bob", []))
put("content", "two-attachments", payload("héllo".encode(), [(b"a.txt", b"text/plain", b"abc"), (b"pixel.png", b"image/png", b"\x89PNG")]))
put("content", "empty", payload(b"", []))

# Bundles: armored fixtures and the binary bundles of the vectors.
for name in ("alice", "bob", "carol"):
    put("bundle", name + "-armored", read(os.path.join(fixtures, name + ".id")))
for name, lookup in directory["lookups"].items():
    put("bundle", name + "-binary", base64.b64decode(lookup["bundle"]))
put("bundle", "name", "alice")
put("bundle", "fingerprint-hex", directory["lookups"]["alice"]["fingerprint"])

# Signed notes and verifier keys.
put("note", "checkpoint", directory["checkpoint"])
put("note", "log-key", directory["logKey"])
put("note", "unsigned-checkpoint", directory["checkpoint"].split("\n\n")[0] + "\n")

# Directory messages: log leaves, map proofs, Merkle proofs laid out as the harness reads them.
for index, leaf in enumerate(directory["leaves"]):
    put("directory", "leaf-%d" % index, base64.b64decode(leaf))
for name, answer in list(directory["lookups"].items()) + list(directory["absent"].items()):
    key = bytes.fromhex(directory["mapKeys"].get(name, "00" * 32)) if name in directory["mapKeys"] else b"\x00" * 32
    put("directory", "map-proof-" + name, key + b"\x00" * 32 + base64.b64decode(answer["map"]["mapProof"]))
for name, lookup in directory["lookups"].items():
    leaf_hash = b"\x00" * 32
    proof = b"".join(base64.b64decode(p) for p in lookup["inclusionProof"])
    put("directory", "inclusion-" + name, struct.pack(">QQ", lookup["logIndex"], lookup["treeSize"]) + leaf_hash + b"\x00" * 32 + proof)

# JSON bodies: the relay's answers recorded in the vectors, and small requests.
for name, answer in directory["lookups"].items():
    put("json", "lookup-" + name, json.dumps(answer))
for name, answer in directory["absent"].items():
    put("json", "absent-" + name.replace(".", "_"), json.dumps(answer))
put("json", "challenge", json.dumps({"name": "alice"}))
# Compressed attachments (docs/PROTOCOL.md, encoding 1): u64 length, then a raw DEFLATE stream.
for label, data in [("text", b"the quarterly figures, once more, with feeling\n" * 40), ("empty", b""), ("bytes", bytes(range(256)) * 4)]:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    put("inflate", label, struct.pack(">Q", len(data)) + packer.compress(data) + packer.flush())

# The key agent's requests and answers (docs/AGENT.md).
fingerprint = bytes(range(32))
put("agent", "status", b"\x01")
put("agent", "load", b"\x02\x00\x0bpassphrase!")
put("agent", "sign", b"\x03" + fingerprint + b"\x00\x00\x00\x1esecmail envelope v1 signature\x00")
put("agent", "unwrap", b"\x04" + fingerprint + b"\x00\x03abc")
put("agent", "lock", b"\x05")
put("agent", "answer-status", b"\x81\x05alice\x00\x01\x01" + fingerprint + b"\x00\x00\x03\x84\x00\x00\x10\x00")
put("agent", "answer-failure", b"\x80\x01\x00\x10wrong passphrase")
put("json", "error", json.dumps({"error": "notFound", "reason": "no such message"}))
put("json", "mailbox", json.dumps({"messages": [{"id": "00" * 16, "from": "alice", "size": 1234, "time": 1800000000}], "next": None,
                                   "usage": {"bytes": 1234, "quota": 1 << 30}}))


# PNG, written by hand: every colour type and depth the decoder takes, one interlaced.
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width, height, depth, colour, row, palette=None, interlace=0):
    raw = b"".join(b"\x00" + row(y) for y in range(height))
    body = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace))
    if palette:
        body += chunk(b"PLTE", palette)
    return b"\x89PNG\r\n\x1a\n" + body + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


put("png", "gray8", png(8, 8, 8, 0, lambda y: bytes((x * 32 + y) % 256 for x in range(8))))
put("png", "rgb8", png(8, 8, 8, 2, lambda y: bytes((x * 7 + y * 3 + c) % 256 for x in range(8) for c in range(3))))
put("png", "rgba8", png(8, 8, 8, 6, lambda y: bytes((x + y * c) % 256 for x in range(8) for c in range(4))))
put("png", "rgb16", png(4, 4, 16, 2, lambda y: bytes((x * 50 + y + c) % 256 for x in range(4) for c in range(6))))
put("png", "palette", png(8, 8, 4, 3, lambda y: bytes(((2 * x) % 16) << 4 | (2 * x + 1) % 16 for x in range(4)), palette=bytes(range(48))))
put("png", "gray-alpha", png(8, 8, 8, 4, lambda y: bytes((x * y + c) % 256 for x in range(8) for c in range(2))))
put("png", "interlaced", png(9, 9, 8, 2, lambda y: bytes((x + y + c) % 256 for x in range(9) for c in range(3)), interlace=1))


# An animated PNG (APNG): acTL and the first fcTL before IDAT, a second frame in fdAT, and a
# text chunk the wire form drops.
def apng():
    still = png(4, 4, 8, 6, lambda y: bytes((x * 40 + y * 9 + c * 70) % 256 for x in range(4) for c in range(4)))
    control = lambda sequence: struct.pack(">IIIIIHHBB", sequence, 4, 4, 0, 0, 1, 10, 0, 0)
    ihdr_end = 8 + 25
    idat_start = still.index(b"IDAT") - 4
    frame = struct.pack(">I", 2) + zlib.compress(b"".join(b"\x00" + bytes(16) for _ in range(4)))
    return (still[:ihdr_end] + chunk(b"tEXt", b"Comment\x00fuzz") + chunk(b"acTL", struct.pack(">II", 2, 0)) + chunk(b"fcTL", control(0))
            + still[ihdr_end:idat_start] + still[idat_start:-12] + chunk(b"fcTL", control(1)) + chunk(b"fdAT", frame) + still[-12:])


put("png", "animated", apng())

# JPEG, by cjpeg from a small PPM/PGM: baseline, progressive, greyscale, restart markers, and one
# with an EXIF orientation segment spliced in after SOI.
with tempfile.TemporaryDirectory() as work:
    ppm = os.path.join(work, "in.ppm")
    with open(ppm, "wb") as f:
        f.write(b"P6\n16 16\n255\n" + bytes((x * 16 + y * 3 + c * 40) % 256 for y in range(16) for x in range(16) for c in range(3)))
    for name, options in (("baseline", []), ("progressive", ["-progressive"]), ("grayscale", ["-grayscale"]),
                          ("restart", ["-restart", "1"]), ("quality-20", ["-quality", "20"])):
        data = subprocess.run(["cjpeg"] + options + [ppm], check=True, capture_output=True).stdout
        put("jpeg", name, data)
        if name == "baseline":
            tiff = b"MM\x00\x2a\x00\x00\x00\x08" + struct.pack(">H", 1) + struct.pack(">HHII", 0x0112, 3, 1, 6 << 16) + b"\x00\x00\x00\x00"
            exif = b"Exif\x00\x00" + tiff
            put("jpeg", "exif-orientation", data[:2] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + data[2:])
            # JPEG XL, by libjxl's cjxl when it is installed (Debian: libjxl-tools): the JPEG
            # recompressed, and pixels coded losslessly; else a bare codestream signature.
            jpg = os.path.join(work, "in.jpg")
            with open(jpg, "wb") as f:
                f.write(data)
            made = False
            for label, source, options in (("from-jpeg", jpg, []), ("lossless", ppm, ["-d", "0"])):
                coded = os.path.join(work, label + ".jxl")
                try:
                    subprocess.run(["cjxl", source, coded, "-e", "3"] + options, check=True, capture_output=True)
                except (OSError, subprocess.CalledProcessError):
                    continue
                with open(coded, "rb") as f:
                    stream = f.read()
                put("jxl", label, stream)
                if label == "lossless":
                    put("jxl", "rendering-box", with_rendering_box(stream))
                made = True
            if not made:
                put("jxl", "signature", b"\xff\x0a\xf8\x1f\x00\x00")
