#!/usr/bin/env python3
"""An independent reader for secmail envelope v1, written from docs/PROTOCOL.md alone.

It uses Python's `cryptography` package (OpenSSL underneath, but none of secmail's code) to check
that the specification and the Swift implementation agree. Prints a JSON summary on success;
exits 2 with a reason on any verification failure.

usage: reference_open.py ENVELOPE SENDER_ID RECIPIENT_ID RECIPIENT_ENCRYPTION_KEY_PEM PASSPHRASE [SENT_COPY_KEY]
(with SENT_COPY_KEY, the reader is the sender, opening her own copy)
"""
import base64, hashlib, json, struct, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError("truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self): return self.take(1)[0]
    def u16(self): return struct.unpack(">H", self.take(2))[0]
    def u32(self): return struct.unpack(">I", self.take(4))[0]
    def u64(self): return struct.unpack(">Q", self.take(8))[0]
    def i64(self): return struct.unpack(">q", self.take(8))[0]
    def bytes8(self): return self.take(self.u8())
    def bytes16(self): return self.take(self.u16())


PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def fail(reason):
    print(reason, file=sys.stderr)
    sys.exit(2)


def parse_bundle(armored):
    lines = [l.strip() for l in armored.splitlines() if l.strip()]
    assert lines[0] == "-----BEGIN SECMAIL IDENTITY-----" and lines[-1] == "-----END SECMAIL IDENTITY-----"
    encoded = base64.b64decode("".join(lines[1:-1]))
    r = Reader(encoded)
    assert r.take(4) == b"SMID" and r.u8() == 1 and r.u16() == 1
    name = r.bytes8().decode()
    r.u32(); r.i64()
    signing = serialization.load_der_public_key(r.bytes16())
    r.bytes16()  # encryption key
    if r.u8() == 1:
        r.take(32); r.bytes16()
    signed_end = r.pos
    self_signature = r.bytes16()
    assert r.pos == len(encoded), "trailing bytes in bundle"
    signing.verify(self_signature, b"secmail identity bundle v1\x00" + encoded[:signed_end], PSS, hashes.SHA256())
    return name, signing, hashlib.sha256(encoded).digest()


def hkdf(key, salt, info):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(key)


def parse_sent_copy_key(data, message_id):
    """docs/PROTOCOL.md, "Sent-copy key": the content key wrapped for the sender, kept beside her copy."""
    r = Reader(data)
    if r.take(4) != b"SMSK" or r.u8() != 1:
        fail("not a sent-copy key v1")
    if r.take(16) != message_id:
        fail("the sent-copy key is another message's")
    fingerprint = r.take(32)
    wrapped = r.bytes16()
    names = [r.bytes8().decode() for _ in range(r.u16())]
    if not names or r.pos != len(data):
        fail("malformed sent-copy key")
    return fingerprint, wrapped


def main():
    envelope_path, sender_path, recipient_path, key_path, passphrase = sys.argv[1:6]
    sent_copy_key_path = sys.argv[6] if len(sys.argv) > 6 else None
    data = open(envelope_path, "rb").read()
    sender_name, sender_key, sender_fp = parse_bundle(open(sender_path).read())
    _, _, my_fp = parse_bundle(open(recipient_path).read())
    my_key = serialization.load_pem_private_key(open(key_path, "rb").read(), password=passphrase.encode())

    r = Reader(data)
    if r.take(4) != b"SMEV":
        fail("not an envelope")
    version = r.u8()
    if version not in (1, 2) or r.u16() != 1:
        fail("not an envelope v1 or v2, suite 1")
    message_id = r.take(16)
    time = r.i64()
    name = r.bytes8().decode()
    fingerprint = r.take(32)
    chunk_size = r.u32()
    payload_length = r.u64()
    commitment = r.take(32)
    recipients = {}
    for _ in range(r.u16()):
        fp = r.take(32)
        recipients[fp] = r.bytes16()
    if version == 2:
        checkpoint = r.bytes16()  # the sender's latest verified checkpoint (may be empty)
        if len(checkpoint) > 4096:
            fail("sender checkpoint too long")
    header = data[:r.pos]
    if chunk_size != 65536:
        fail("bad chunk size")
    if (name, fingerprint) != (sender_name, sender_fp):
        fail("sender mismatch")
    if sent_copy_key_path:
        fp, wrapped = parse_sent_copy_key(open(sent_copy_key_path, "rb").read(), message_id)
        if fp != fingerprint:
            fail("the sent-copy key is kept for another key than the one that signed the envelope")
        recipients[fp] = wrapped
    if my_fp not in recipients:
        fail("not a recipient")
    chunks = max(1, -(-payload_length // chunk_size))
    payload = r.take(payload_length + 16 * chunks)
    signature = r.bytes16()
    if r.pos != len(data):
        fail("trailing bytes")
    try:
        sender_key.verify(signature, b"secmail envelope v1 signature\x00" + header + hashlib.sha256(payload).digest(),
                          PSS, hashes.SHA256())
    except Exception:
        fail("bad signature")
    try:
        content_key = my_key.decrypt(recipients[my_fp], OAEP)
    except Exception:
        fail("the content key does not unwrap with this key")
    if hkdf(content_key, message_id, b"secmail v1 key commitment") != commitment:
        fail("key commitment mismatch")
    aead = AESGCM(hkdf(content_key, message_id, b"secmail v1 payload key"))
    plaintext, offset = b"", 0
    for i in range(chunks):
        size = min(chunk_size, payload_length - i * chunk_size) + 16
        nonce = i.to_bytes(11, "big") + (b"\x01" if i == chunks - 1 else b"\x00")
        plaintext += aead.decrypt(nonce, payload[offset:offset + size], None)
        offset += size
    p = Reader(plaintext)
    text = p.take(p.u32()).decode()
    attachments = []
    for _ in range(p.u16()):
        attachment_name = p.bytes16().decode()
        media_type = p.bytes8().decode()
        if p.u8() != 0:
            fail("unknown attachment encoding")
        body = p.take(p.u64())
        attachments.append({"name": attachment_name, "mediaType": media_type, "length": len(body),
                            "sha256": hashlib.sha256(body).hexdigest()})
    if p.pos != len(plaintext):
        fail("trailing plaintext")
    print(json.dumps({"messageId": message_id.hex(), "time": time, "sender": name, "text": text,
                      "keyCommitment": commitment.hex(), "payloadLength": payload_length,
                      "attachments": attachments}, sort_keys=True, ensure_ascii=False))


if __name__ == "__main__":
    main()
