#include "synth.h"

#include <openssl/sha.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include <boost/json.hpp>

#include "auth/base64url.h"
#include "fhir/compartment.h"
#include "fhir/json_reader.h"

namespace phivault::synth {

namespace json = boost::json;

struct TemplatePatient {
  std::string patient_id;
  std::vector<json::object> resources;  // the Patient first
  std::unordered_set<std::string> refs;  // "Type/id" of `resources`
  // Identifying strings of the patient, by kind, to be replaced in clones.
  std::vector<std::string> names, lines, phones, emails;
};

struct TemplateData {
  std::vector<json::object> shared;
  std::vector<TemplatePatient> patients;
  // Every identifying string of every template: generated replacements must
  // not collide with any of them.
  std::unordered_set<std::string> originals;
};

namespace {

// ---------------------------------------------------------------- loading

struct Loaded {
  std::vector<json::object> resources;
  std::unordered_map<std::string, std::string> urn_to_ref;  // "urn:uuid:x" -> "Type/id"
};

fhir::ParseLimits SampleLimits() {
  fhir::ParseLimits l;
  l.max_bytes = 256u << 20;
  return l;
}

std::string RefOf(const json::object& r) {
  return std::string(r.at("resourceType").as_string()) + "/" + std::string(r.at("id").as_string());
}

Status LoadFile(const std::filesystem::path& path, Loaded& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot read " + path.string());
  std::string name = path.filename().string();
  auto keep = [&](json::object r, std::string_view where) -> Status {
    if (!r.contains("id") || !r.at("id").is_string()) return InvalidArgument(std::string(where) + ": resource without id");
    out.resources.push_back(std::move(r));
    return Status::Ok();
  };
  if (path.extension() == ".ndjson") {
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (line.empty()) continue;
      auto r = fhir::ParseResource(line, SampleLimits());
      // Bulk-export files may carry non-resource lines (an export log):
      // skip what is not a resource rather than fail.
      if (!r.ok()) continue;
      PV_RETURN_IF_ERROR(keep(std::move(*r), name + ":" + std::to_string(n)));
    }
    return Status::Ok();
  }
  std::stringstream ss;
  ss << in.rdbuf();
  PV_ASSIGN_OR_RETURN(json::object bundle, fhir::ParseResource(ss.str(), SampleLimits()));
  if (bundle.at("resourceType") != "Bundle") return InvalidArgument(name + ": not a Bundle");
  const json::value* entries = bundle.if_contains("entry");
  if (!entries || !entries->is_array()) return Status::Ok();
  for (const json::value& e : entries->as_array()) {
    const json::object* eo = e.if_object();
    const json::value* res = eo ? eo->if_contains("resource") : nullptr;
    if (!res || !res->is_object()) continue;
    json::object r = res->as_object();
    const json::value* full = eo->if_contains("fullUrl");
    if (full && full->is_string() && r.contains("id") && r.at("id").is_string()) {
      out.urn_to_ref[std::string(full->as_string())] = RefOf(r);
    }
    PV_RETURN_IF_ERROR(keep(std::move(r), name));
  }
  return Status::Ok();
}

template <typename Fn>
void ForEachReference(json::value& v, const Fn& fn) {
  if (json::object* o = v.if_object()) {
    for (auto& kv : *o) {
      if (kv.key() == "reference" && kv.value().is_string()) {
        fn(kv.value().get_string());
      } else {
        ForEachReference(kv.value(), fn);
      }
    }
  } else if (json::array* a = v.if_array()) {
    for (json::value& e : *a) ForEachReference(e, fn);
  }
}

void AddTokens(std::string_view text, std::vector<std::string>& out) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find(' ', pos);
    if (end == std::string_view::npos) end = text.size();
    if (end > pos) out.emplace_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
}

// The identifying strings of a template Patient, by kind.
void CollectIdentity(const json::object& patient, TemplatePatient& t) {
  auto strings = [](const json::value* v) {
    std::vector<std::string> out;
    if (v && v->is_string()) out.emplace_back(v->as_string());
    if (v && v->is_array()) {
      for (const auto& e : v->as_array()) {
        if (e.is_string()) out.emplace_back(e.as_string());
      }
    }
    return out;
  };
  auto each = [&](std::string_view key, auto fn) {
    const json::value* arr = patient.if_contains(key);
    if (!arr || !arr->is_array()) return;
    for (const auto& e : arr->as_array()) {
      if (e.is_object()) fn(e.as_object());
    }
  };
  each("name", [&](const json::object& n) {
    for (const auto& s : strings(n.if_contains("family"))) AddTokens(s, t.names);
    for (const auto& s : strings(n.if_contains("given"))) AddTokens(s, t.names);
    for (const auto& s : strings(n.if_contains("text"))) AddTokens(s, t.names);
  });
  each("contact", [&](const json::object& c) {
    if (const json::value* n = c.if_contains("name"); n && n->is_object()) {
      for (const auto& s : strings(n->as_object().if_contains("family"))) AddTokens(s, t.names);
      for (const auto& s : strings(n->as_object().if_contains("given"))) AddTokens(s, t.names);
    }
  });
  each("extension", [&](const json::object& x) {
    const json::value* url = x.if_contains("url");
    const json::value* s = x.if_contains("valueString");
    if (url && url->is_string() && url->as_string().ends_with("patient-mothersMaidenName") && s && s->is_string()) {
      AddTokens(s->as_string(), t.names);
    }
  });
  each("address", [&](const json::object& a) {
    for (const auto& s : strings(a.if_contains("line"))) t.lines.push_back(s);
  });
  each("telecom", [&](const json::object& c) {
    const json::value* sys = c.if_contains("system");
    for (const auto& s : strings(c.if_contains("value"))) {
      (sys && sys->is_string() && sys->as_string() == "email" ? t.emails : t.phones).push_back(s);
    }
  });
  // Prefixes such as "Mr." are not identifying; tiny tokens would only cause
  // false replacements.
  std::erase_if(t.names, [](const std::string& s) { return s.size() < 2 || s.back() == '.'; });
  for (auto* v : {&t.names, &t.lines, &t.phones, &t.emails}) {
    std::sort(v->begin(), v->end());
    v->erase(std::unique(v->begin(), v->end()), v->end());
    // Longest first, so that a name never replaces part of a longer one.
    std::stable_sort(v->begin(), v->end(), [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  }
}

void CollectIdentifierValues(const json::value& v, std::unordered_set<std::string>& out) {
  if (const json::object* o = v.if_object()) {
    for (const auto& kv : *o) {
      if (kv.key() == "identifier") {
        auto add = [&](const json::value& id) {
          const json::value* val = id.is_object() ? id.as_object().if_contains("value") : nullptr;
          if (val && val->is_string()) out.emplace(val->as_string());
        };
        if (kv.value().is_array()) {
          for (const auto& e : kv.value().as_array()) add(e);
        } else {
          add(kv.value());
        }
      }
      CollectIdentifierValues(kv.value(), out);
    }
  } else if (const json::array* a = v.if_array()) {
    for (const auto& e : *a) CollectIdentifierValues(e, out);
  }
}

// ---------------------------------------------------------------- generation

// Deterministic randomness: SplitMix64 (fully specified, unlike the standard
// distributions, so the bytes do not depend on the library).
class Rng {
 public:
  explicit Rng(uint64_t state) : state_(state) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint64_t Below(uint64_t n) { return Next() % n; }

 private:
  uint64_t state_;
};

std::string Hex(const unsigned char* p, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += kHex[p[i] >> 4];
    s += kHex[p[i] & 15];
  }
  return s;
}

// A UUID-shaped id derived from (seed, clone, what): stable across runs.
std::string DeriveId(uint64_t seed, int64_t clone, std::string_view what) {
  std::string input = std::to_string(seed) + '\0' + std::to_string(clone) + '\0';
  input += what;
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), md);
  std::string h = Hex(md, 16);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" + h.substr(20, 12);
}

constexpr std::string_view kSyllables[] = {"ba", "ce", "di", "fo", "gu", "ha", "je", "ki", "lo", "mu", "na", "pe",
                                           "qui", "ro", "su", "ta", "ve", "wi", "xa", "yo", "ze", "bri", "cla",
                                           "dre", "fla", "gro", "kre", "mar", "nel", "pol", "ren", "sil", "tor", "val"};
constexpr std::string_view kStreets[] = {"Street", "Avenue", "Road", "Lane", "Way", "Court", "Drive", "Place"};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlnum(char c) { return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Shifts a YYYY-MM-DD at `s` by `days`; false if it is not a valid date.
bool ShiftDate(std::string& s, size_t pos, int days) {
  if (pos + 10 > s.size() || s[pos + 4] != '-' || s[pos + 7] != '-') return false;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (!IsDigit(s[pos + i])) return false;
  }
  int y = std::stoi(s.substr(pos, 4)), m = std::stoi(s.substr(pos + 5, 2)), d = std::stoi(s.substr(pos + 8, 2));
  std::chrono::year_month_day ymd{std::chrono::year(y), std::chrono::month(static_cast<unsigned>(m)),
                                  std::chrono::day(static_cast<unsigned>(d))};
  if (!ymd.ok()) return false;
  std::chrono::year_month_day shifted{std::chrono::sys_days(ymd) + std::chrono::days(days)};
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(shifted.year()),
                static_cast<unsigned>(shifted.month()), static_cast<unsigned>(shifted.day()));
  s.replace(pos, 10, buf);
  return true;
}

// A whole value that is a FHIR date (full), dateTime or instant.
bool LooksLikeDate(std::string_view s) {
  if (s.size() < 10) return false;
  if (s.size() > 10 && s[10] != 'T') return false;
  return IsDigit(s[0]) && IsDigit(s[3]) && s[4] == '-' && s[7] == '-';
}

class CloneWriter {
 public:
  CloneWriter(const TemplateData& data, const TemplatePatient& t, uint64_t seed, int64_t clone)
      : t_(t), seed_(seed), clone_(clone), rng_(seed * 0x2545f4914f6cdd1dULL + static_cast<uint64_t>(clone)) {
    shift_days_ = -static_cast<int>(1 + rng_.Below(3650));
    for (const auto& s : t.names) replacements_.emplace_back(s, Fresh(data, [&] { return Name(); }));
    for (const auto& s : t.lines) replacements_.emplace_back(s, Fresh(data, [&] { return Street(); }));
    for (const auto& s : t.phones) replacements_.emplace_back(s, Fresh(data, [&] { return Phone(); }));
    for (const auto& s : t.emails) replacements_.emplace_back(s, Fresh(data, [&] { return Name() + "@example.org"; }));
    std::stable_sort(replacements_.begin(), replacements_.end(),
                     [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  }

  json::object Clone(const json::object& r) {
    json::value v(r);
    Rewrite(v, "");
    json::object& o = v.as_object();
    o["id"] = NewId(RefOf(r));
    return std::move(o);
  }

 private:
  template <typename Gen>
  std::string Fresh(const TemplateData& data, const Gen& gen) {
    for (;;) {
      std::string s = gen();
      if (!data.originals.contains(s)) return s;
    }
  }
  std::string Name() {
    std::string s;
    int n = 2 + static_cast<int>(rng_.Below(2));
    for (int i = 0; i < n; ++i) s += kSyllables[rng_.Below(std::size(kSyllables))];
    s[0] = static_cast<char>(s[0] - 'a' + 'A');
    return s + std::to_string(rng_.Below(1000));
  }
  std::string Street() {
    return std::to_string(1 + rng_.Below(9999)) + " " + Name() + " " + std::string(kStreets[rng_.Below(std::size(kStreets))]);
  }
  std::string Phone() {
    char buf[16];
    std::snprintf(buf, sizeof buf, "555-%03u-%04u", static_cast<unsigned>(rng_.Below(1000)),
                  static_cast<unsigned>(rng_.Below(10000)));
    return buf;
  }
  std::string NewId(std::string_view ref) { return DeriveId(seed_, clone_, ref); }

  // Replaces identifying strings (whole tokens only) and shifts dates.
  std::string Scrub(std::string s, bool dates_inside) {
    for (const auto& [from, to] : replacements_) {
      size_t pos = 0;
      while ((pos = s.find(from, pos)) != std::string::npos) {
        bool start = pos == 0 || !IsAlnum(s[pos - 1]);
        bool end = pos + from.size() == s.size() || !IsAlnum(s[pos + from.size()]);
        if (start && end) {
          s.replace(pos, from.size(), to);
          pos += to.size();
        } else {
          pos += from.size();
        }
      }
    }
    if (dates_inside) {
      for (size_t pos = 0; pos + 10 <= s.size(); ++pos) {
        if ((pos == 0 || !IsDigit(s[pos - 1])) && (pos + 10 == s.size() || !IsDigit(s[pos + 10])) &&
            ShiftDate(s, pos, shift_days_)) {
          pos += 9;
        }
      }
    } else if (LooksLikeDate(s)) {
      ShiftDate(s, 0, shift_days_);
    }
    return s;
  }

  void RewriteIdentifier(json::value& id) {
    if (!id.is_object()) return;
    json::value* val = id.as_object().if_contains("value");
    if (val && val->is_string()) *val = NewId("identifier|" + std::string(val->as_string()));
  }

  // Base64 text attachments (clinical notes) are decoded, scrubbed and
  // re-encoded; other attachment data is left as it is.
  void RewriteAttachment(json::object& a) {
    const json::value* ct = a.if_contains("contentType");
    json::value* data = a.if_contains("data");
    if (!ct || !ct->is_string() || !ct->as_string().starts_with("text/") || !data || !data->is_string()) return;
    std::string url(data->as_string());
    std::replace(url.begin(), url.end(), '+', '-');
    std::replace(url.begin(), url.end(), '/', '_');
    while (!url.empty() && url.back() == '=') url.pop_back();
    auto text = auth::Base64UrlDecode(url);
    if (!text.ok()) {
      a.erase("data");  // cannot be scrubbed, so it does not go out
      return;
    }
    std::string enc = auth::Base64UrlEncode(Scrub(std::move(*text), true));
    std::replace(enc.begin(), enc.end(), '-', '+');
    std::replace(enc.begin(), enc.end(), '_', '/');
    while (enc.size() % 4) enc += '=';
    *data = enc;
  }

  void Rewrite(json::value& v, std::string_view key) {
    if (json::object* o = v.if_object()) {
      if (key == "attachment" || key == "content" || key == "presentedForm" || key == "contentAttachment") {
        RewriteAttachment(*o);
      }
      for (auto& kv : *o) {
        if (kv.key() == "reference" && kv.value().is_string()) {
          std::string ref(kv.value().as_string());
          if (t_.refs.contains(ref)) kv.value() = ref.substr(0, ref.find('/') + 1) + NewId(ref);
        } else if (kv.key() == "identifier") {
          if (kv.value().is_array()) {
            for (auto& e : kv.value().as_array()) RewriteIdentifier(e);
          } else {
            RewriteIdentifier(kv.value());
          }
          Rewrite(kv.value(), kv.key());
        } else if (kv.key() != "data") {
          Rewrite(kv.value(), kv.key());
        }
      }
    } else if (json::array* a = v.if_array()) {
      for (json::value& e : *a) Rewrite(e, key);
    } else if (json::string* s = v.if_string()) {
      if (key != "system" && key != "url" && key != "reference") *s = Scrub(std::string(*s), false);
    }
  }

  const TemplatePatient& t_;
  uint64_t seed_;
  int64_t clone_;
  Rng rng_;
  int shift_days_ = 0;
  std::vector<std::pair<std::string, std::string>> replacements_;
};

}  // namespace

StatusOr<Templates> Templates::Load(const std::vector<std::string>& paths) {
  std::vector<std::filesystem::path> files;
  for (const auto& p : paths) {
    std::error_code ec;
    if (std::filesystem::is_directory(p, ec)) {
      std::vector<std::filesystem::path> in_dir;
      for (const auto& e : std::filesystem::recursive_directory_iterator(p, ec)) {
        auto ext = e.path().extension();
        if (e.is_regular_file() && (ext == ".ndjson" || ext == ".json")) in_dir.push_back(e.path());
      }
      if (ec) return NotFound("cannot list " + p);
      std::sort(in_dir.begin(), in_dir.end());
      files.insert(files.end(), in_dir.begin(), in_dir.end());
    } else {
      files.emplace_back(p);
    }
  }
  Loaded loaded;
  for (const auto& f : files) PV_RETURN_IF_ERROR(LoadFile(f, loaded));

  // Conditional references ("Type?identifier=system|value") resolve against
  // the identifiers of the loaded resources.
  std::unordered_map<std::string, std::string> by_identifier;
  for (const auto& r : loaded.resources) {
    const json::value* ids = r.if_contains("identifier");
    if (!ids || !ids->is_array()) continue;
    for (const auto& id : ids->as_array()) {
      if (!id.is_object()) continue;
      const json::value* sys = id.as_object().if_contains("system");
      const json::value* val = id.as_object().if_contains("value");
      if (!val || !val->is_string()) continue;
      std::string key = std::string(r.at("resourceType").as_string()) + "?identifier=" +
                        (sys && sys->is_string() ? std::string(sys->as_string()) : "") + "|" + std::string(val->as_string());
      by_identifier.emplace(key, RefOf(r));
    }
  }
  auto data = std::make_shared<TemplateData>();
  std::map<std::string, size_t> patient_index;
  // The sample sets repeat some shared resources (the same Organization in
  // several Bundles): the first copy wins.
  std::unordered_set<std::string> seen;
  std::vector<std::pair<std::string, json::object>> owned;  // patient id, resource
  for (auto& r : loaded.resources) {
    if (!seen.insert(RefOf(r)).second) continue;
    json::value v(std::move(r));
    ForEachReference(v, [&](json::string& ref) {
      std::string s(ref);
      if (auto it = loaded.urn_to_ref.find(s); it != loaded.urn_to_ref.end()) ref = it->second;
      else if (auto it2 = by_identifier.find(s); it2 != by_identifier.end()) ref = it2->second;
    });
    json::object o = std::move(v.as_object());
    std::vector<std::string> patients = fhir::PatientCompartment(o);
    if (patients.empty()) {
      data->shared.push_back(std::move(o));
      continue;
    }
    if (o.at("resourceType") == "Patient") {
      patient_index.emplace(std::string(o.at("id").as_string()), data->patients.size());
      TemplatePatient t;
      t.patient_id = std::string(o.at("id").as_string());
      data->patients.push_back(std::move(t));
    }
    owned.emplace_back(patients.front(), std::move(o));
  }
  // A resource outside every compartment that still points into a patient's
  // record (a Device naming its patient: R4's compartment has no parameter
  // for it) goes with that patient, so that each clone gets its own copy.
  std::unordered_map<std::string, std::string> owner;  // "Type/id" -> patient id
  for (const auto& [pid, o] : owned) owner.emplace(RefOf(o), pid);
  std::vector<json::object> shared;
  for (auto& o : data->shared) {
    std::string pid;
    json::value v(std::move(o));
    ForEachReference(v, [&](json::string& ref) {
      if (auto it = owner.find(std::string(ref)); pid.empty() && it != owner.end()) pid = it->second;
    });
    if (pid.empty()) {
      shared.push_back(std::move(v.as_object()));
    } else {
      owned.emplace_back(pid, std::move(v.as_object()));
    }
  }
  data->shared = std::move(shared);
  // Patients first within their template, then the rest in input order.
  for (int pass = 0; pass < 2; ++pass) {
    for (auto& [pid, o] : owned) {
      if (o.empty()) continue;  // taken in the first pass
      bool is_patient = o.at("resourceType") == "Patient" && o.at("id").as_string() == pid;
      if ((pass == 0) != is_patient) continue;
      auto it = patient_index.find(pid);
      if (it == patient_index.end()) continue;  // belongs to a patient not in the samples: dropped
      TemplatePatient& t = data->patients[it->second];
      t.refs.insert(RefOf(o));
      if (is_patient) CollectIdentity(o, t);
      t.resources.push_back(std::move(o));
    }
  }
  if (data->patients.empty()) return InvalidArgument("no Patient found in the samples");
  for (const auto& t : data->patients) {
    for (const auto* v : {&t.names, &t.lines, &t.phones, &t.emails}) data->originals.insert(v->begin(), v->end());
    for (const auto& r : t.resources) CollectIdentifierValues(json::value(r), data->originals);
  }
  Templates out;
  out.data_ = std::move(data);
  return out;
}

size_t Templates::patient_count() const { return data_->patients.size(); }
size_t Templates::shared_count() const { return data_->shared.size(); }
size_t Templates::patient_resource_count() const {
  size_t n = 0;
  for (const auto& t : data_->patients) n += t.resources.size();
  return n;
}

StatusOr<SynthSummary> Generate(const Templates& templates, const SynthOptions& options,
                                const std::function<Status(std::string_view line)>& sink) {
  if (options.patients < 0) return InvalidArgument("--patients must not be negative");
  const TemplateData& data = templates.data();
  SynthSummary summary;
  for (const auto& r : data.shared) {
    PV_RETURN_IF_ERROR(sink(fhir::Serialize(r)));
    ++summary.resources;
  }
  for (int64_t k = 0; k < options.patients; ++k) {
    const TemplatePatient& t = data.patients[static_cast<size_t>(k) % data.patients.size()];
    CloneWriter w(data, t, options.seed, k);
    for (const auto& r : t.resources) {
      PV_RETURN_IF_ERROR(sink(fhir::Serialize(w.Clone(r))));
      ++summary.resources;
    }
    ++summary.patients;
  }
  return summary;
}

}  // namespace phivault::synth
