#include "audit/checkpoint.h"

#include <sodium.h>

#include <charconv>
#include <cstring>

namespace phivault::audit {
namespace {

constexpr std::string_view kEmDashSpace = "\xE2\x80\x94 ";  // "— ": U+2014 then a space
constexpr uint8_t kAlgEd25519 = 0x01;
// Bounds on untrusted notes: checkpoints are a few hundred bytes; the limits
// only stop a hostile input from costing unbounded work.
constexpr size_t kMaxNoteBytes = 64 * 1024;
constexpr size_t kMaxSignatures = 100;

bool EnsureSodium() {
  static const bool ok = sodium_init() >= 0;
  return ok;
}

// Key names per signed-note: non-empty, no Unicode spaces and no '+'. We
// accept printable ASCII only, which is stricter and enough for our origins.
bool ValidKeyName(std::string_view name) {
  if (name.empty()) return false;
  for (unsigned char c : name) {
    if (c <= 0x20 || c >= 0x7f || c == '+') return false;
  }
  return true;
}

// Note text: non-empty, ends with '\n', no empty line, no control bytes other
// than '\n', valid UTF-8 (we check structure, not every code point rule).
bool ValidNoteText(std::string_view text) {
  if (text.empty() || text.back() != '\n') return false;
  if (text.find("\n\n") != std::string_view::npos || text.front() == '\n') return false;
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if ((c < 0x20 && c != '\n') || c == 0x7f) return false;
      ++i;
      continue;
    }
    size_t len = (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (len == 0 || i + len > text.size()) return false;
    for (size_t j = 1; j < len; ++j) {
      if ((static_cast<unsigned char>(text[i + j]) & 0xc0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

uint32_t LoadBe32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

}  // namespace

std::string Base64Encode(std::string_view bytes) {
  EnsureSodium();
  const size_t cap = sodium_base64_ENCODED_LEN(bytes.size(), sodium_base64_VARIANT_ORIGINAL);
  std::string out(cap, '\0');
  sodium_bin2base64(out.data(), cap, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                    sodium_base64_VARIANT_ORIGINAL);
  out.resize(std::strlen(out.c_str()));
  return out;
}

StatusOr<std::string> Base64Decode(std::string_view text) {
  EnsureSodium();
  if (text.size() % 4 != 0) return InvalidArgument("base64: bad length");
  std::string out(text.size() / 4 * 3, '\0');
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(), text.size(),
                        nullptr, &len, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != text.data() + text.size()) {
    return InvalidArgument("base64: malformed");
  }
  out.resize(len);
  // Reject non-canonical spellings (non-zero padding bits): the signed text
  // must have a single valid form.
  if (Base64Encode(out) != text) return InvalidArgument("base64: not canonical");
  return out;
}

std::string FormatTreeHead(const TreeHead& head) {
  std::string s = head.origin;
  s += '\n';
  s += std::to_string(head.size);
  s += '\n';
  s += Base64Encode(HashView(head.root));
  s += '\n';
  for (const std::string& e : head.extensions) {
    s += e;
    s += '\n';
  }
  return s;
}

StatusOr<TreeHead> ParseTreeHead(std::string_view body) {
  if (!ValidNoteText(body)) return InvalidArgument("checkpoint: malformed text");
  std::vector<std::string_view> lines;
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t nl = body.find('\n', pos);  // exists: body ends with '\n'
    lines.push_back(body.substr(pos, nl - pos));
    pos = nl + 1;
  }
  if (lines.size() < 3) return InvalidArgument("checkpoint: fewer than three lines");
  TreeHead h;
  h.origin = std::string(lines[0]);
  const std::string_view size = lines[1];
  if (size.empty() || size.size() > 20 || (size.size() > 1 && size[0] == '0')) {
    return InvalidArgument("checkpoint: bad tree size");
  }
  for (char c : size) {
    if (c < '0' || c > '9') return InvalidArgument("checkpoint: bad tree size");
  }
  auto [ptr, ec] = std::from_chars(size.data(), size.data() + size.size(), h.size);
  if (ec != std::errc() || ptr != size.data() + size.size()) return InvalidArgument("checkpoint: bad tree size");
  auto root = Base64Decode(lines[2]);
  if (!root.ok()) return InvalidArgument("checkpoint: bad root hash");
  auto hash = HashFromBytes(*root);
  if (!hash) return InvalidArgument("checkpoint: root hash is not 32 bytes");
  h.root = *hash;
  for (size_t i = 3; i < lines.size(); ++i) h.extensions.emplace_back(lines[i]);
  return h;
}

uint32_t NoteKeyId(std::string_view name, std::string_view public_key) {
  std::string m(name);
  m += '\n';
  m += static_cast<char>(kAlgEd25519);
  m += public_key;
  const Hash h = Sha256(m);
  return LoadBe32(h.data());
}

StatusOr<VerifierKey> ParseVerifierKey(std::string_view vkey) {
  const size_t p1 = vkey.find('+');
  if (p1 == std::string_view::npos) return InvalidArgument("vkey: malformed");
  const size_t p2 = vkey.find('+', p1 + 1);
  if (p2 == std::string_view::npos) return InvalidArgument("vkey: malformed");
  VerifierKey k;
  k.name = std::string(vkey.substr(0, p1));
  if (!ValidKeyName(k.name)) return InvalidArgument("vkey: bad key name");
  const std::string_view hex = vkey.substr(p1 + 1, p2 - p1 - 1);
  if (hex.size() != 8) return InvalidArgument("vkey: bad key id");
  for (char c : hex) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    if (!ok) return InvalidArgument("vkey: bad key id");
    k.key_id = (k.key_id << 4) | static_cast<uint32_t>(c <= '9' ? c - '0' : c - 'a' + 10);
  }
  auto key = Base64Decode(vkey.substr(p2 + 1));
  if (!key.ok() || key->size() != 1 + crypto_sign_PUBLICKEYBYTES ||
      static_cast<uint8_t>((*key)[0]) != kAlgEd25519) {
    return InvalidArgument("vkey: not an Ed25519 key");
  }
  k.public_key = key->substr(1);
  if (NoteKeyId(k.name, k.public_key) != k.key_id) return InvalidArgument("vkey: key id does not match the key");
  return k;
}

StatusOr<std::unique_ptr<NoteSigner>> NoteSigner::FromSeed(std::string name, const SecureBytes& seed) {
  if (!EnsureSodium()) return Internal("libsodium init failed");
  if (!ValidKeyName(name)) return InvalidArgument("checkpoint signer: bad key name");
  if (seed.size() != crypto_sign_SEEDBYTES) return InvalidArgument("checkpoint signer: seed must be 32 bytes");
  std::unique_ptr<NoteSigner> s(new NoteSigner());
  s->name_ = std::move(name);
  s->secret_key_ = SecureBytes(crypto_sign_SECRETKEYBYTES);
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  if (crypto_sign_seed_keypair(pk, s->secret_key_.data(), seed.data()) != 0) {
    return Internal("checkpoint signer: key derivation failed");
  }
  s->public_key_.assign(reinterpret_cast<const char*>(pk), sizeof(pk));
  s->key_id_ = NoteKeyId(s->name_, s->public_key_);
  return s;
}

std::string NoteSigner::VerifierKeyString() const {
  char hex[9];
  static constexpr char kDigits[] = "0123456789abcdef";
  for (int i = 0; i < 8; ++i) hex[i] = kDigits[(key_id_ >> (28 - 4 * i)) & 0xf];
  hex[8] = '\0';
  std::string raw(1, static_cast<char>(kAlgEd25519));
  raw += public_key_;
  return name_ + "+" + hex + "+" + Base64Encode(raw);
}

StatusOr<std::string> NoteSigner::Sign(std::string_view text) const {
  if (!ValidNoteText(text)) return InvalidArgument("note: malformed text");
  unsigned char sig[crypto_sign_BYTES];
  crypto_sign_detached(sig, nullptr, reinterpret_cast<const unsigned char*>(text.data()), text.size(),
                       secret_key_.data());
  std::string blob(4, '\0');
  blob[0] = static_cast<char>(key_id_ >> 24);
  blob[1] = static_cast<char>(key_id_ >> 16);
  blob[2] = static_cast<char>(key_id_ >> 8);
  blob[3] = static_cast<char>(key_id_);
  blob.append(reinterpret_cast<const char*>(sig), sizeof(sig));
  std::string note(text);
  note += '\n';
  note += kEmDashSpace;
  note += name_;
  note += ' ';
  note += Base64Encode(blob);
  note += '\n';
  return note;
}

StatusOr<std::string> OpenNote(std::string_view note, const VerifierKey& key) {
  if (!EnsureSodium()) return Internal("libsodium init failed");
  if (note.size() > kMaxNoteBytes) return InvalidArgument("note: too large");
  const size_t split = note.rfind("\n\n");
  if (split == std::string_view::npos) return InvalidArgument("note: no signature block");
  const std::string_view text = note.substr(0, split + 1);
  std::string_view sigs = note.substr(split + 2);
  if (!ValidNoteText(text)) return InvalidArgument("note: malformed text");
  if (sigs.empty() || sigs.back() != '\n') return InvalidArgument("note: malformed signature block");
  bool verified = false;
  size_t count = 0;
  while (!sigs.empty()) {
    const size_t nl = sigs.find('\n');
    std::string_view line = sigs.substr(0, nl);
    sigs.remove_prefix(nl + 1);
    if (++count > kMaxSignatures) return InvalidArgument("note: too many signatures");
    if (line.substr(0, kEmDashSpace.size()) != kEmDashSpace) return InvalidArgument("note: malformed signature line");
    line.remove_prefix(kEmDashSpace.size());
    const size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return InvalidArgument("note: malformed signature line");
    const std::string_view name = line.substr(0, sp);
    if (!ValidKeyName(name)) return InvalidArgument("note: bad signer name");
    auto blob = Base64Decode(line.substr(sp + 1));
    if (!blob.ok() || blob->size() < 5) return InvalidArgument("note: malformed signature");
    const uint32_t id = LoadBe32(reinterpret_cast<const uint8_t*>(blob->data()));
    if (name != key.name || id != key.key_id) continue;  // someone else's signature: not ours to judge
    if (blob->size() != 4 + crypto_sign_BYTES ||
        crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(blob->data() + 4),
                                    reinterpret_cast<const unsigned char*>(text.data()), text.size(),
                                    reinterpret_cast<const unsigned char*>(key.public_key.data())) != 0) {
      return PermissionDenied("note: invalid signature");
    }
    verified = true;
  }
  if (!verified) return PermissionDenied("note: no signature by the verifier key");
  return std::string(text);
}

StatusOr<TreeHead> VerifyCheckpoint(std::string_view note, const VerifierKey& key) {
  PV_ASSIGN_OR_RETURN(std::string text, OpenNote(note, key));
  PV_ASSIGN_OR_RETURN(TreeHead head, ParseTreeHead(text));
  if (head.origin != key.name) return PermissionDenied("checkpoint: origin does not match the key name");
  return head;
}

std::vector<std::string> SplitNotes(std::string_view file, size_t* complete_bytes) {
  // Each note: text lines, one empty line, signature lines, then one empty
  // line as the record terminator. A note without its terminator is torn.
  std::vector<std::string> notes;
  size_t done = 0;
  size_t pos = 0;
  size_t start = 0;
  int blank_lines = 0;
  while (pos < file.size()) {
    const size_t nl = file.find('\n', pos);
    if (nl == std::string_view::npos) break;
    const bool blank = nl == pos;
    if (blank) {
      ++blank_lines;
      if (blank_lines == 2) {
        notes.emplace_back(file.substr(start, nl - start));
        done = nl + 1;
        start = nl + 1;
        blank_lines = 0;
      }
    }
    pos = nl + 1;
  }
  if (complete_bytes) *complete_bytes = done;
  return notes;
}

}  // namespace phivault::audit
