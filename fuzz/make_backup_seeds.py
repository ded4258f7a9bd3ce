#!/usr/bin/env python3
"""Writes the seed corpus of backup_container_fuzzer, following
docs/BACKUP-FORMAT.md (written from the document, not from the C++ code).

Each seed starts with the fuzzer's mode byte: 0x00 = a whole backup file
sealed with the fuzzer's fixed content key (32 bytes of 0x5a); 0x01 = a
piece-size byte, then a decrypted record stream. Needs python3-cryptography.
Run: python3 fuzz/make_backup_seeds.py (writes into fuzz/corpus/backup_container)
"""
import hashlib
import os
import struct

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY = b"\x5a" * 32
LABEL = b"phivault-backup-chunk-v1\x00"


def records(files):
    out = b""
    manifest = struct.pack(">I", len(files))
    for name, content in files:
        n = name.encode()
        out += b"\x01" + struct.pack(">H", len(n)) + n + struct.pack(">Q", len(content)) + content
        manifest += struct.pack(">H", len(n)) + n + struct.pack(">Q", len(content)) + hashlib.sha256(content).digest()
    return out + b"\x02" + manifest


def header(chunk_bytes, keyring=b"vault_id=seed\n"):
    vault_id = b"00000000-0000-4000-8000-000000000001"
    body = bytes([len(vault_id)]) + vault_id + b"\x11" * 16 + struct.pack(">QII", 1767225600000, 1, chunk_bytes)
    body += struct.pack(">I", len(keyring)) + keyring
    return b"PVBACKUP" + struct.pack(">II", 1, len(body)) + body


def container(files, chunk_bytes=4096):
    h = header(chunk_bytes)
    digest = hashlib.sha256(h).digest()
    plain = records(files)
    pieces = [plain[i:i + chunk_bytes] for i in range(0, len(plain), chunk_bytes)]
    out = h
    for i, p in enumerate(pieces):
        final = i == len(pieces) - 1
        flag = b"\x01" if final else b"\x00"
        nonce = bytes([i + 1]) * 12
        sealed = nonce + AESGCM(KEY).encrypt(nonce, p, LABEL + digest + struct.pack(">Q", i) + flag)
        out += flag + struct.pack(">I", len(sealed)) + sealed
    return out


SMALL = [("vault.db", b"\x00" * 64), ("audit/checkpoints", b""), ("audit/seg-000001.log", b"PVAUDIT1" + b"\x00" * 8)]
LARGE = [("vault.db", bytes(range(256)) * 20), ("accounts.db", b"a" * 100), ("audit/checkpoints", b"x\n"),
         ("audit/seg-000001.log", b"s" * 10), ("audit/seg-000002.log", b"t" * 10)]

seeds = {
    "whole-small": b"\x00" + container(SMALL),
    "whole-multichunk": b"\x00" + container(LARGE),
    "whole-empty": b"\x00" + container([]),
    "records-small": b"\x01\x07" + records(SMALL),
    "records-multi": b"\x01\xff" + records(LARGE),
    "records-bad-name": b"\x01\x03" + records([("../escape", b"x")]),
}
out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "backup_container")
os.makedirs(out_dir, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out_dir, name), "wb") as f:
        f.write(data)
