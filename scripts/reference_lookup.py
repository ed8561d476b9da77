#!/usr/bin/env python3
"""A directory lookup written from docs/PROTOCOL.md and docs/API.md alone (Python's standard
library and `cryptography`, none of secmail's code): asks a relay for NAME and verifies the answer
the way the documents say: the checkpoint's Ed25519 signature by the given log key, the bundle's
log leaf and its inclusion proof, the last leaf of the tree and the name map root it commits, and
the name map proof that the served version is the current one, or that the name is absent.

    reference_lookup.py live URL CA_FILE LOG_KEY NAME     ask a running relay
    reference_lookup.py vectors directory.json            check every answer in the test vectors

Prints one JSON object per name; exit 0 when every answer verifies, 2 when one does not.
"""
import base64
import hashlib
import json
import ssl
import struct
import sys
import urllib.error
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class Refused(Exception):
    pass


def sha256(data):
    return hashlib.sha256(data).digest()


def b64(text):
    return base64.b64decode(text, validate=True)


def open_note(note, verifier_key):
    """C2SP signed note: the text, a blank line, signature lines; returns the text."""
    # The base64 part may itself contain '+': split at the first two only.
    name, key_id_hex, key_b64 = verifier_key.split("+", 2)
    key = b64(key_b64)
    if key[0] != 1:
        raise Refused("the log key is not an Ed25519 verifier key")
    key_id = sha256(name.encode() + b"\n" + key)[:4]
    if key_id.hex() != key_id_hex:
        raise Refused("the log key's id does not match its key")
    text, _, signatures = note.partition("\n\n")
    text += "\n"
    for line in signatures.splitlines():
        if not line.startswith("\u2014 "):
            continue
        signer, signature = line[2:].rsplit(" ", 1)
        signature = b64(signature)
        if signer != name or signature[:4] != key_id:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(key[1:]).verify(signature[4:], text.encode())
            return text
        except InvalidSignature:
            raise Refused("the checkpoint's signature does not verify")
    raise Refused("the checkpoint carries no signature by the log key")


def parse_checkpoint(text, origin):
    lines = text.split("\n")
    if lines[0] != origin:
        raise Refused("the checkpoint is for another log")
    return int(lines[1]), b64(lines[2])


def verify_inclusion(leaf_hash, index, size, proof, root):
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = sha256(b"\x01" + p + r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = sha256(b"\x01" + r + p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def bit(key, i):
    return (key[i // 8] >> (7 - i % 8)) & 1


def map_root_from_proof(encoded, key, found_value_hash):
    """Name map proof wire form; returns (root, found?)."""
    n = struct.unpack(">H", encoded[:2])[0]
    if not 1 <= n <= 256:
        raise Refused("bad map proof length")
    pos = 2
    bitmap = encoded[pos:pos + (n + 7) // 8]
    pos += (n + 7) // 8
    siblings = []
    for i in range(n):
        if bitmap[i // 8] & (0x80 >> (i % 8)):
            siblings.append(encoded[pos:pos + 32])
            pos += 32
        else:
            siblings.append(bytes(32))
    terminal = encoded[pos]
    pos += 1
    if terminal == 0:
        if found_value_hash is None:
            raise Refused("the map proof says the name is registered")
        h = sha256(b"\x00" + key + found_value_hash)
    elif terminal == 1:
        h = bytes(32)
    elif terminal == 2:
        other, value = encoded[pos:pos + 32], encoded[pos + 32:pos + 64]
        pos += 64
        if other == key or any(bit(other, i) != bit(key, i) for i in range(n)):
            raise Refused("the map proof's other key is not on the path")
        h = sha256(b"\x00" + other + value)
    else:
        raise Refused("unknown map proof terminal")
    if pos != len(encoded):
        raise Refused("trailing bytes after the map proof")
    for d in range(n - 1, -1, -1):
        h = sha256(b"\x01" + h + siblings[d]) if bit(key, d) == 0 else sha256(b"\x01" + siblings[d] + h)
    return h, terminal == 0


def committed_map_root(evidence, size, root):
    if size == 0:
        return sha256(b"\x01" + bytes(64))
    head = b64(evidence["headLeaf"])
    proof = [b64(p) for p in evidence["headInclusionProof"]]
    if not verify_inclusion(sha256(b"\x00" + head), size - 1, size, proof, root):
        raise Refused("the head leaf is not the last leaf of the signed tree")
    if head[:4] == b"SMMH" and head[4] == 1 and len(head) == 4 + 1 + 8 + 32:
        return head[-32:]
    if head[:4] == b"SMDE" and head[4] == 2:
        return head[-32:]
    raise Refused("the last leaf commits no name map root")


def parse_bundle(bundle):
    """Just what the map value needs: the name and key version."""
    if bundle[:4] != b"SMID" or bundle[4] != 1:
        raise Refused("not an identity bundle")
    pos = 7
    name_length = bundle[pos]
    name = bundle[pos + 1:pos + 1 + name_length].decode()
    pos += 1 + name_length
    return name, struct.unpack(">I", bundle[pos:pos + 4])[0]


def verify(name, status, answer, verifier_key):
    origin = verifier_key.split("+", 1)[0]
    size, root = parse_checkpoint(open_note(answer["checkpoint"], verifier_key), origin)
    if size != answer["treeSize"]:
        raise Refused("the checkpoint is for another tree size than the answer")
    map_root = committed_map_root(answer["map"], size, root)
    key = sha256(name.encode())
    proof = b64(answer["map"]["mapProof"])
    if status == 404:
        if answer.get("name") != name:
            raise Refused("the absence proof is for another name")
        computed, found = map_root_from_proof(proof, key, None)
        if found or computed != map_root:
            raise Refused("the relay says %s is not registered but does not prove it" % name)
        return {"name": name, "found": False, "treeSize": size}
    bundle = b64(answer["bundle"])
    bundle_name, key_version = parse_bundle(bundle)
    if bundle_name != name:
        raise Refused("the relay answered with another name's bundle")
    leaf = b64(answer["leaf"])
    if leaf[:4] != b"SMDE" or struct.unpack(">H", leaf[14:16])[0] != len(bundle) or leaf[16:16 + len(bundle)] != bundle:
        raise Refused("the log leaf does not record the served bundle")
    index = answer["logIndex"]
    if not verify_inclusion(sha256(b"\x00" + leaf), index, size, [b64(p) for p in answer["inclusionProof"]], root):
        raise Refused("the bundle's leaf is not in the signed log")
    fingerprint = sha256(bundle)
    value_hash = sha256(b"secmail name map value v1\x00" + struct.pack(">IQ", key_version, index) + fingerprint)
    computed, found = map_root_from_proof(proof, key, value_hash)
    if not found or computed != map_root:
        raise Refused("the name map does not hold this version of %s as current" % name)
    return {"name": name, "found": True, "keyVersion": key_version, "fingerprint": fingerprint.hex(), "treeSize": size}


def live(url, ca_file, verifier_key, name):
    context = ssl.create_default_context(cafile=ca_file)
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/v1/directory/" + name, context=context, timeout=30) as response:
            return verify(name, response.status, json.load(response), verifier_key)
    except urllib.error.HTTPError as error:
        if error.code != 404:
            raise Refused("the relay answered %d" % error.code)
        return verify(name, 404, json.load(error), verifier_key)


def main():
    try:
        if sys.argv[1:2] == ["live"] and len(sys.argv) == 6:
            print(json.dumps(live(*sys.argv[2:6])))
        elif sys.argv[1:2] == ["vectors"] and len(sys.argv) == 3:
            vectors = json.load(open(sys.argv[2]))
            for name, answer in vectors["lookups"].items():
                print(json.dumps(verify(name, 200, answer, vectors["logKey"])))
            for name, answer in vectors["absent"].items():
                print(json.dumps(verify(name, 404, answer, vectors["logKey"])))
        else:
            sys.exit(__doc__)
    except (Refused, KeyError, ValueError, IndexError, struct.error) as error:
        print("refused: %s" % error, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
