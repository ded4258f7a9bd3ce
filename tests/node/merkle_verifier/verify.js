#!/usr/bin/env node
// Independent verifier for phivault audit proofs and checkpoints.
//
// Written from the specifications only (RFC 6962 §2.1, RFC 9162 §2.1.3.2 and
// §2.1.4.2, C2SP tlog-checkpoint and signed-note), sharing no code with the
// C++ implementation, so that a bug in one is not silently mirrored in the
// other. Plain Node 20: node:crypto provides SHA-256 and Ed25519.
//
// Usage: node verify.js case.json
// case.json:
//   { "vkey": "<name>+<hex keyid>+<base64(0x01 || pubkey)>",
//     "checkpoints": ["<signed note>", ...],
//     "inclusion":   [{"checkpoint": i, "index": n, "entry": "<base64 sealed entry>", "proof": ["<b64>", ...]}],
//     "consistency": [{"from": i, "to": j, "proof": ["<b64>", ...]}] }
// Exits 0 and prints "OK" when everything verifies; prints the first failure
// and exits 1 otherwise.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');

class VerifyError extends Error {}
function check(cond, msg) {
  if (!cond) throw new VerifyError(msg);
}

const sha256 = (...parts) => crypto.createHash('sha256').update(Buffer.concat(parts)).digest();
const leafHash = (data) => sha256(Buffer.from([0x00]), data);
const nodeHash = (l, r) => sha256(Buffer.from([0x01]), l, r);

// Strict standard base64: canonical, padded.
function b64(s) {
  check(typeof s === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(s) && s.length % 4 === 0, 'bad base64');
  const buf = Buffer.from(s, 'base64');
  check(buf.toString('base64') === s, 'non-canonical base64');
  return buf;
}
function hash32(s) {
  const h = b64(s);
  check(h.length === 32, 'hash is not 32 bytes');
  return h;
}

// RFC 9162 §2.1.3.2: verifying an inclusion proof. Sizes as BigInt so that
// indices up to 2^64 behave exactly.
function verifyInclusion(index, size, leaf, proof, root) {
  check(index < size, 'index beyond tree size');
  let fn = index;
  let sn = size - 1n;
  let r = leaf;
  for (const p of proof) {
    check(sn !== 0n, 'inclusion proof too long');
    if ((fn & 1n) === 1n || fn === sn) {
      r = nodeHash(p, r);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  check(sn === 0n, 'inclusion proof too short');
  check(r.equals(root), 'inclusion proof does not lead to the root');
}

// RFC 9162 §2.1.4.2: verifying consistency between two tree heads.
function verifyConsistency(size1, size2, proof, root1, root2) {
  check(size1 > 0n && size1 <= size2, 'bad sizes');
  if (size1 === size2) {
    check(proof.length === 0, 'non-empty proof for equal sizes');
    check(root1.equals(root2), 'equal sizes, different roots');
    return;
  }
  check(proof.length > 0, 'empty consistency proof');
  const c = [...proof];
  if ((size1 & (size1 - 1n)) === 0n) c.unshift(root1);  // size1 is a power of two
  let fn = size1 - 1n;
  let sn = size2 - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = c[0];
  let sr = c[0];
  for (const p of c.slice(1)) {
    check(sn !== 0n, 'consistency proof too long');
    if ((fn & 1n) === 1n || fn === sn) {
      fr = nodeHash(p, fr);
      sr = nodeHash(p, sr);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      sr = nodeHash(sr, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  check(sn === 0n, 'consistency proof too short');
  check(fr.equals(root1), 'consistency proof: first root mismatch');
  check(sr.equals(root2), 'consistency proof: second root mismatch');
}

// C2SP signed-note verifier key: <name>+<hex key hash>+<base64(type || key)>.
function parseVkey(vkey) {
  const i = vkey.indexOf('+');
  const j = vkey.indexOf('+', i + 1);
  check(i > 0 && j > i, 'malformed vkey');
  const name = vkey.slice(0, i);
  const idHex = vkey.slice(i + 1, j);
  check(/^[0-9a-f]{8}$/.test(idHex), 'bad key hash');
  const key = b64(vkey.slice(j + 1));
  check(key.length === 33 && key[0] === 0x01, 'not an Ed25519 key');
  const pub = key.subarray(1);
  // key hash = SHA-256(name || "\n" || type || pubkey)[:4]
  const want = sha256(Buffer.from(name + '\n', 'utf8'), key).subarray(0, 4);
  check(want.toString('hex') === idHex, 'key hash does not match the key');
  // SPKI DER prefix for an Ed25519 public key (RFC 8410).
  const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), pub]);
  return { name, id: Buffer.from(idHex, 'hex'), key: crypto.createPublicKey({ key: spki, format: 'der', type: 'spki' }) };
}

// C2SP signed-note: text, a blank line, then "— <name> <base64(keyhash || sig)>" lines.
function openNote(note, vk) {
  const split = note.lastIndexOf('\n\n');
  check(split >= 0, 'no signature block');
  const text = note.slice(0, split + 1);
  const sigs = note.slice(split + 2);
  check(sigs.endsWith('\n'), 'signature block does not end with a newline');
  let ok = false;
  for (const line of sigs.slice(0, -1).split('\n')) {
    check(line.startsWith('\u2014 '), 'signature line does not start with an em dash');
    const rest = line.slice(2);
    const sp = rest.lastIndexOf(' ');
    check(sp > 0, 'malformed signature line');
    const name = rest.slice(0, sp);
    const blob = b64(rest.slice(sp + 1));
    check(blob.length >= 5, 'signature too short');
    if (name !== vk.name || !blob.subarray(0, 4).equals(vk.id)) continue;
    check(blob.length === 68, 'bad Ed25519 signature length');
    check(crypto.verify(null, Buffer.from(text, 'utf8'), vk.key, blob.subarray(4)), 'bad signature');
    ok = true;
  }
  check(ok, 'no signature by the verifier key');
  return text;
}

// C2SP tlog-checkpoint body: origin, decimal size, base64 root, extensions.
function parseCheckpoint(text, origin) {
  const lines = text.slice(0, -1).split('\n');
  check(lines.length >= 3, 'checkpoint has fewer than three lines');
  check(lines[0] === origin, 'origin does not match the key name');
  check(/^(0|[1-9][0-9]*)$/.test(lines[1]), 'bad tree size');
  const size = BigInt(lines[1]);
  check(size < 2n ** 64n, 'tree size overflows');
  return { size, root: hash32(lines[2]) };
}

function main() {
  const c = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const vk = parseVkey(c.vkey);
  const heads = c.checkpoints.map((n) => parseCheckpoint(openNote(n, vk), vk.name));
  check(heads.length > 0, 'no checkpoints');
  for (const t of c.inclusion) {
    const h = heads[t.checkpoint];
    check(h !== undefined, 'unknown checkpoint');
    verifyInclusion(BigInt(t.index), h.size, leafHash(b64(t.entry)), t.proof.map(hash32), h.root);
  }
  for (const t of c.consistency) {
    const a = heads[t.from];
    const b = heads[t.to];
    check(a !== undefined && b !== undefined, 'unknown checkpoint');
    verifyConsistency(a.size, b.size, t.proof.map(hash32), a.root, b.root);
  }
  console.log(`OK: ${heads.length} checkpoints, ${c.inclusion.length} inclusion and ${c.consistency.length} consistency proofs`);
}

try {
  main();
} catch (e) {
  console.error(`REJECTED: ${e.message}`);
  process.exit(1);
}
