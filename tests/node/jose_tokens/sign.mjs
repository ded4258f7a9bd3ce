// Signs a set of JWTs with the npm `jose` library (and, for the malformed
// variants jose refuses to produce, with node:crypto directly) for the
// phivault auth interop test (src/auth/jose_interop_test.cc).
//
// Usage: node sign.mjs OUT_DIR NOW_SECONDS ISSUER AUDIENCE
//
// Writes OUT_DIR/jwks.json (public RS256, ES256 and EdDSA keys) and
// OUT_DIR/tokens.json: [{ "name": ..., "expect": "accept" | "reject", "token": ... }].
// Every key is generated fresh on each run; nothing here is a real secret.
import { createPublicKey, generateKeyPairSync, KeyObject, sign as nodeSign } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  SignJWT,
  UnsecuredJWT,
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
} from 'jose';

const [outDir, nowArg, ISS, AUD] = process.argv.slice(2);
if (!outDir || !nowArg || !ISS || !AUD) {
  console.error('usage: node sign.mjs OUT_DIR NOW_SECONDS ISSUER AUDIENCE');
  process.exit(2);
}
const NOW = Number.parseInt(nowArg, 10);
mkdirSync(outDir, { recursive: true });

const toKeyObject = (k) => (k instanceof KeyObject ? k : KeyObject.from(k));
const b64u = (buf) => Buffer.from(buf).toString('base64url');
const enc = (obj) => b64u(Buffer.from(typeof obj === 'string' ? obj : JSON.stringify(obj)));

async function makeKey(alg, opts) {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, ...opts });
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  return { alg, kid, jwk: { ...jwk, kid, alg, use: 'sig' }, publicKey, privateKey: toKeyObject(privateKey) };
}

const rsa = await makeKey('RS256', { modulusLength: 2048 });
const ec = await makeKey('ES256');
const ed = await makeKey('EdDSA', { crv: 'Ed25519' });
// Keys the vault does not know: an attacker's.
const evilRsa = await makeKey('RS256', { modulusLength: 2048 });
const evilEd = await makeKey('EdDSA', { crv: 'Ed25519' });

writeFileSync(join(outDir, 'jwks.json'), JSON.stringify({ keys: [rsa.jwk, ec.jwk, ed.jwk] }, null, 2));

const baseClaims = () => ({
  sub: 'user-123',
  scope: 'user/Observation.rs patient/*.r openid fhirUser',
  fhirUser: 'Practitioner/prac-1',
  role: 'clinician',
});

// jose-signed token with the usual registered claims; iss/aud null = omitted.
async function joseToken(key, { header = {}, claims = {}, iss = ISS, aud = AUD, iat = NOW, exp = NOW + 600, nbf } = {}) {
  let jwt = new SignJWT({ ...baseClaims(), ...claims })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...header })
    .setIssuedAt(iat)
    .setExpirationTime(exp);
  if (iss !== null) jwt = jwt.setIssuer(iss);
  if (aud !== null) jwt = jwt.setAudience(aud);
  if (nbf !== undefined) jwt = jwt.setNotBefore(nbf);
  return jwt.setJti(`jti-${Math.random().toString(36).slice(2)}`).sign(key.privateKey);
}

// Raw JWS over arbitrary header/payload text with node:crypto.
function rawSign(privateKey, alg, header, payload, { dsaEncoding = 'ieee-p1363' } = {}) {
  const input = `${enc(header)}.${enc(payload)}`;
  let sig;
  if (alg === 'RS256') sig = nodeSign('sha256', Buffer.from(input), privateKey);
  else if (alg === 'ES256') sig = nodeSign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding });
  else if (alg === 'EdDSA') sig = nodeSign(null, Buffer.from(input), privateKey);
  else throw new Error(`rawSign: ${alg}`);
  return `${input}.${b64u(sig)}`;
}

const stdPayload = (extra = {}) => ({ iss: ISS, aud: AUD, iat: NOW, exp: NOW + 600, ...baseClaims(), ...extra });

const tokens = [];
const accept = (name, token) => tokens.push({ name, expect: 'accept', token });
const reject = (name, token) => tokens.push({ name, expect: 'reject', token });

// ---- Valid tokens ---------------------------------------------------------
accept('rs256_valid', await joseToken(rsa));
accept('es256_valid', await joseToken(ec));
accept('eddsa_valid', await joseToken(ed));
accept('aud_array_valid', await joseToken(ed, { aud: ['https://other.example', AUD] }));
accept('typ_at_jwt_valid', await joseToken(rsa, { header: { typ: 'at+jwt' } }));
accept('exp_within_leeway_valid', await joseToken(ec, { iat: NOW - 700, exp: NOW - 30 }));
accept('nbf_within_leeway_valid', await joseToken(ed, { nbf: NOW + 30 }));
accept('v1_scopes_valid', await joseToken(rsa, { claims: { scope: 'user/*.read patient/Observation.write launch offline_access' } }));
// A high-S ECDSA signature is valid ECDSA (JOSE does not require low-S).
{
  const t = rawSign(ec.privateKey, 'ES256', { alg: 'ES256', kid: ec.kid }, stdPayload());
  const [h, p, s] = t.split('.');
  const sig = Buffer.from(s, 'base64url');
  const n = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');
  const sVal = BigInt(`0x${sig.subarray(32).toString('hex')}`);
  const high = n - sVal;
  const sHex = high.toString(16).padStart(64, '0');
  const sig2 = Buffer.concat([sig.subarray(0, 32), Buffer.from(sHex, 'hex')]);
  accept('es256_high_s_valid', `${h}.${p}.${b64u(sig2)}`);
}

// ---- Attacks and invalid tokens -------------------------------------------
reject('alg_none', new UnsecuredJWT(stdPayload()).encode());
reject('alg_none_with_kid', `${enc({ alg: 'none', kid: rsa.kid })}.${enc(stdPayload())}.`);
reject('alg_None_mixed_case', `${enc({ alg: 'None', kid: rsa.kid })}.${enc(stdPayload())}.`);
{
  // Key confusion: HS256 keyed with the RSA public key (PEM, DER and JWK text).
  const pubObj = createPublicKey({ key: rsa.jwk, format: 'jwk' });
  const pem = Buffer.from(pubObj.export({ type: 'spki', format: 'pem' }));
  const der = Buffer.from(pubObj.export({ type: 'spki', format: 'der' }));
  const hs = (secret, name) =>
    new SignJWT(stdPayload()).setProtectedHeader({ alg: 'HS256', kid: rsa.kid }).sign(new Uint8Array(secret)).then((t) => reject(name, t));
  await hs(pem, 'hs256_rsa_pem_as_secret');
  await hs(der, 'hs256_rsa_der_as_secret');
  await hs(Buffer.from(JSON.stringify(rsa.jwk)), 'hs256_rsa_jwk_as_secret');
}
reject('wrong_key_rs256', await joseToken({ ...evilRsa, kid: rsa.kid }));
reject('wrong_key_eddsa', await joseToken({ ...evilEd, kid: ed.kid }));
reject('expired', await joseToken(rsa, { iat: NOW - 7200, exp: NOW - 3600 }));
reject('not_yet_valid', await joseToken(ec, { nbf: NOW + 3600 }));
reject('iat_in_future', await joseToken(ed, { iat: NOW + 3600, exp: NOW + 7200 }));
reject('wrong_audience', await joseToken(rsa, { aud: 'https://other.example' }));
reject('wrong_audience_array', await joseToken(rsa, { aud: ['https://a.example', 'https://b.example'] }));
reject('wrong_issuer', await joseToken(ec, { iss: 'https://evil.example' }));
reject('missing_issuer', await joseToken(ec, { iss: null }));
reject('missing_audience', await joseToken(ec, { aud: null }));
reject('unknown_kid', await joseToken({ ...ed, kid: 'no-such-kid' }));
reject('forged_kid_attacker_key', await joseToken(evilEd));
reject('missing_kid', rawSign(ed.privateKey, 'EdDSA', { alg: 'EdDSA' }, stdPayload()));
reject('oversized', await joseToken(ed, { claims: { pad: 'x'.repeat(10000) } }));
{
  const t = await joseToken(rsa);
  const [h, , s] = t.split('.');
  reject('tampered_payload', `${h}.${enc(stdPayload({ sub: 'admin', role: 'admin' }))}.${s}`);
  const [, p] = t.split('.');
  reject('tampered_header', `${enc({ alg: 'RS256', kid: rsa.kid, typ: 'JWT', x: 1 })}.${p}.${s}`);
  reject('padded_signature', `${t}==`);
  reject('four_segments', `${t}.${s}`);
}
reject('es256_der_signature', rawSign(ec.privateKey, 'ES256', { alg: 'ES256', kid: ec.kid }, stdPayload(), { dsaEncoding: 'der' }));
reject('es256_signed_with_rsa_kid', rawSign(ec.privateKey, 'ES256', { alg: 'ES256', kid: rsa.kid }, stdPayload()));
reject('rs256_header_with_ec_kid', rawSign(rsa.privateKey, 'RS256', { alg: 'RS256', kid: ec.kid }, stdPayload()));
reject('eddsa_header_with_rsa_kid', rawSign(ed.privateKey, 'EdDSA', { alg: 'EdDSA', kid: rsa.kid }, stdPayload()));
reject('ps256_with_rsa_key', await new SignJWT(stdPayload()).setProtectedHeader({ alg: 'PS256', kid: rsa.kid }).sign(rsa.privateKey));
reject('rs384_with_rsa_key', await new SignJWT(stdPayload()).setProtectedHeader({ alg: 'RS384', kid: rsa.kid }).sign(rsa.privateKey));
reject('embedded_jwk_attacker_key', rawSign(evilEd.privateKey, 'EdDSA', { alg: 'EdDSA', kid: ed.kid, jwk: evilEd.jwk }, stdPayload()));
reject('embedded_jwk_no_kid', rawSign(evilEd.privateKey, 'EdDSA', { alg: 'EdDSA', jwk: evilEd.jwk }, stdPayload()));
reject('jku_attacker', rawSign(evilRsa.privateKey, 'RS256', { alg: 'RS256', kid: evilRsa.kid, jku: 'https://evil.example/jwks.json' }, stdPayload()));
reject('x5u_attacker', rawSign(evilRsa.privateKey, 'RS256', { alg: 'RS256', kid: rsa.kid, x5u: 'https://evil.example/cert.pem' }, stdPayload()));
reject('crit_header', rawSign(ed.privateKey, 'EdDSA', { alg: 'EdDSA', kid: ed.kid, crit: ['exp'] }, stdPayload()));
reject('missing_exp', rawSign(ed.privateKey, 'EdDSA', { alg: 'EdDSA', kid: ed.kid }, { iss: ISS, aud: AUD, iat: NOW, ...baseClaims() }));
reject('exp_as_string', rawSign(ed.privateKey, 'EdDSA', { alg: 'EdDSA', kid: ed.kid }, stdPayload({ exp: String(NOW + 600) })));
reject('payload_not_object', rawSign(ed.privateKey, 'EdDSA', { alg: 'EdDSA', kid: ed.kid }, '[1,2,3]'));
reject(
  'duplicate_claim',
  rawSign(ed.privateKey, 'EdDSA', { alg: 'EdDSA', kid: ed.kid },
    `{"iss":${JSON.stringify(ISS)},"aud":${JSON.stringify(AUD)},"sub":"user-123","sub":"admin","iat":${NOW},"exp":${NOW + 600}}`),
);
reject(
  'duplicate_header_alg',
  rawSign(ed.privateKey, 'EdDSA', `{"alg":"EdDSA","kid":${JSON.stringify(ed.kid)},"alg":"none"}`, stdPayload()),
);

writeFileSync(join(outDir, 'tokens.json'), JSON.stringify(tokens, null, 2));
console.log(`wrote ${tokens.length} tokens to ${outDir}`);
