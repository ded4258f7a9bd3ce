#include "api/everything.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <set>

#include "api/noisy_bound.h"
#include "fhir/compartment.h"
#include "fhir/instant.h"
#include "fhir/json_reader.h"
#include "fhir/resource_types.h"

namespace phivault::api {

namespace {

constexpr policy::Interaction kInteraction = policy::Interaction::kSearch;

struct Params {
  int count = 50;
  std::vector<std::string> types;
  std::string types_text, since_text;
  int64_t since_ms = 0;
  std::string cursor_text;  // sealed; opened once the request it is bound to is known
  int64_t cursor = 0;
};

StatusOr<Params> ParseParams(const QueryParams& params, int default_count, int max_count) {
  Params p;
  p.count = default_count;
  for (const auto& [k, v] : params) {
    if (k == "_count") {
      int n = 0;
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc() || end != v.data() + v.size() || n < 1) return InvalidArgument("_count must be a positive integer");
      p.count = std::min(n, max_count);
    } else if (k == "_type") {
      std::string_view rest = v;
      while (true) {
        std::string_view t = rest.substr(0, rest.find(','));
        if (!fhir::IsKnownResourceType(t)) return InvalidArgument("_type names an unknown resource type");
        p.types.emplace_back(t);
        if (t.size() == rest.size()) break;
        rest.remove_prefix(t.size() + 1);
      }
      p.types_text += (p.types_text.empty() ? "" : ",") + v;  // repeated _type: the union
    } else if (k == "_since") {
      auto ms = fhir::ParseInstantMillis(v);
      if (!ms) return InvalidArgument("_since must be a FHIR instant such as 2024-01-31T00:00:00Z");
      if (!p.since_text.empty()) return InvalidArgument("_since may be given once");
      p.since_ms = std::max<int64_t>(*ms, 0);
      p.since_text = v;
    } else if (k == "_cursor") {
      if (v.empty() || !p.cursor_text.empty()) return InvalidArgument("invalid paging cursor");
      p.cursor_text = v;
    } else if (k != "_format" && k != "_pretty") {
      return InvalidArgument("unsupported $everything parameter: " + k);
    }
  }
  return p;
}

bool Wanted(const Params& p, std::string_view type) {
  return p.types.empty() || std::find(p.types.begin(), p.types.end(), type) != p.types.end();
}

// Relative references ("Type/id[/_history/v]") in a stored body, found by a
// text scan: bodies are compact JSON written by fhir::Serialize, and inside a
// JSON string every quote is escaped, so the raw text `"reference":"` only
// occurs where an object has a string member "reference". Parsing each body
// again would cost more than the rest of $everything together.
void CollectReferences(std::string_view json, std::set<std::pair<std::string, std::string>>& out) {
  // Searched without its leading quote: a quote starts every JSON string, so
  // a search keyed on it would stop everywhere; 'r' is rarer.
  constexpr std::string_view kKey = R"(reference":")";
  size_t pos = 0;
  while ((pos = json.find(kKey, pos)) != std::string_view::npos) {
    bool is_key = pos > 0 && json[pos - 1] == '"';
    pos += kKey.size();
    if (!is_key) continue;
    size_t end = json.find('"', pos);
    if (end == std::string_view::npos) return;
    std::string_view ref = json.substr(pos, end - pos);
    pos = end;
    size_t slash = ref.find('/');
    if (slash == std::string_view::npos) continue;
    std::string_view type = ref.substr(0, slash);
    std::string_view rest = ref.substr(slash + 1);
    std::string_view id = rest.substr(0, rest.find('/'));
    if (id.size() != rest.size() && rest.substr(id.size()).rfind("/_history/", 0) != 0) continue;
    if (!fhir::IsKnownResourceType(type) || !fhir::IsValidId(id)) continue;
    out.emplace(type, id);
  }
}

class Filter {
 public:
  explicit Filter(const EverythingContext& ctx) : ctx_(ctx) {}
  bool Allowed(const store::ResourceVersion& v) {
    auto [it, fresh] = types_.try_emplace(v.type, false);
    if (fresh) it->second = ctx_.access.DecideType(ctx_.caller, kInteraction, v.type).allowed;
    if (!it->second) return false;
    policy::Decision d = ctx_.access.Decide(ctx_.caller, kInteraction, v, ctx_.request, ctx_.now_ms);
    if (d.allowed && d.break_glass) break_glass_ = true;
    return d.allowed;
  }
  bool break_glass() const { return break_glass_; }

 private:
  bool break_glass_ = false;
  const EverythingContext& ctx_;
  std::map<std::string, bool, std::less<>> types_;
};

void AppendEntry(std::string& body, bool& first, const EverythingContext& ctx, const store::ResourceVersion& v,
                 std::string_view mode) {
  if (!first) body += ',';
  first = false;
  body += R"({"fullUrl":)";
  body += JsonString(std::string(ctx.base_url) + "/fhir/" + v.type + "/" + v.id);
  body += R"(,"resource":)";
  body += v.json;
  body += R"(,"search":{"mode":")";
  body += mode;
  body += R"("}})";
}

// A cursor pages through one patient's record with the same filters and
// page size, and nothing else.
std::string CursorBinding(const std::string& patient_id, const Params& p) {
  std::string b = "phivault/everything-cursor/v1";
  for (const std::string* part : {&patient_id, &p.types_text, &p.since_text}) b.append(1, '\0').append(*part);
  b.append(1, '\0').append(std::to_string(p.count));
  return b;
}

StatusOr<int64_t> OpenCursor(const PagingCursor& cursors, const std::string& text, const std::string& bound_to) {
  PV_ASSIGN_OR_RETURN(std::string position, cursors.Open(text, bound_to));
  int64_t v = 0;
  auto [end, ec] = std::from_chars(position.data(), position.data() + position.size(), v);
  if (ec != std::errc() || end != position.data() + position.size() || v < 1) {
    return InvalidArgument("invalid paging cursor");
  }
  return v;
}

}  // namespace

StatusOr<EverythingResult> PatientEverything(const EverythingContext& ctx, const QueryParams& params,
                                        const std::string& patient_id) {
  PV_ASSIGN_OR_RETURN(Params p, ParseParams(params, ctx.default_count, ctx.max_count));
  const std::string bound_to = CursorBinding(patient_id, p);
  if (!p.cursor_text.empty()) {
    PV_ASSIGN_OR_RETURN(p.cursor, OpenCursor(ctx.cursors, p.cursor_text, bound_to));
  }
  // The patient first: a patient the caller may not see answers like a
  // missing one, before anything of the record is read.
  policy::Decision gate = ctx.access.DecideType(ctx.caller, kInteraction, "Patient");
  if (!gate.allowed) return policy::DecisionStatus(gate);
  PV_ASSIGN_OR_RETURN(store::ResourceVersion patient, ctx.store.Read("Patient", patient_id));
  policy::Decision d = ctx.access.Decide(ctx.caller, kInteraction, patient, ctx.request, ctx.now_ms);
  if (!d.allowed) return policy::DecisionStatus(d);
  if (patient.deleted) return Status(StatusCode::kGone, "resource was deleted");

  Filter filter(ctx);
  store::CompartmentQuery q;
  q.patient_id = patient_id;
  q.types = p.types;
  q.since_ms = p.since_ms;
  q.count = p.count;
  std::vector<store::ResourceVersion> matches;
  int64_t cursor = p.cursor;
  bool more = true;
  // Refill past hidden resources, as History does: up to a drawn number
  // examined, in growing chunks.
  const int64_t limit = NoisyRefillBound(ctx.refill_examined_limit, p.count);
  int64_t examined = 0;
  for (int chunk_size = p.count; more && static_cast<int>(matches.size()) < p.count;
       chunk_size = std::min(chunk_size * 2, 1000)) {
    q.after_cursor = cursor;
    q.count = std::max(chunk_size, p.count);
    PV_ASSIGN_OR_RETURN(store::CompartmentPage chunk, ctx.store.Compartment(q));
    more = chunk.next_cursor != 0;
    bool at_limit = false;
    for (size_t i = 0; i < chunk.entries.size(); ++i) {
      if (examined == limit) {
        at_limit = more = true;  // this entry, at least, was not examined
        break;
      }
      ++examined;
      store::HistoryEntry& e = chunk.entries[i];
      cursor = e.seq;
      if (filter.Allowed(e.version)) matches.push_back(std::move(e.version));
      if (static_cast<int>(matches.size()) == p.count) {
        more = more || i + 1 < chunk.entries.size();
        break;
      }
    }
    if (at_limit || chunk.entries.empty()) break;
  }
  int64_t next = more ? cursor : 0;

  std::set<std::pair<std::string, std::string>> refs;
  for (const auto& m : matches) CollectReferences(m.json, refs);
  std::vector<store::ResourceVersion> includes;
  for (const auto& [type, id] : refs) {
    if (fhir::HasPatientCompartment(type) || !Wanted(p, type)) continue;
    auto v = ctx.store.Read(type, id);
    if (!v.ok() && v.status().code() == StatusCode::kNotFound) continue;  // dangling reference
    if (!v.ok()) return v.status();
    if (v->deleted || v->last_updated_ms < p.since_ms || !filter.Allowed(*v)) continue;
    includes.push_back(std::move(*v));
  }

  std::string self = std::string(ctx.base_url) + "/fhir/Patient/" + patient_id + "/$everything?_count=" +
                     std::to_string(p.count);
  if (!p.types_text.empty()) self += "&_type=" + p.types_text;
  if (!p.since_text.empty()) self += "&_since=" + p.since_text;
  std::string body = R"({"resourceType":"Bundle","type":"searchset","link":[{"relation":"self","url":)";
  body += JsonString(p.cursor ? self + "&_cursor=" + p.cursor_text : self);
  body += '}';
  if (next) {
    body += R"(,{"relation":"next","url":)";
    body += JsonString(self + "&_cursor=" + ctx.cursors.Seal(std::to_string(next), bound_to));
    body += '}';
  }
  body += R"(],"entry":[)";
  bool first = true;
  EverythingResult out;
  out.break_glass = filter.break_glass();
  for (auto* list : {&matches, &includes}) {
    for (auto& v : *list) {
      AppendEntry(body, first, ctx, v, list == &matches ? "match" : "include");
      out.returned.push_back({std::move(v.type), std::move(v.id), v.version, std::move(v.patients)});
    }
  }
  body += "]}";
  out.bundle = std::move(body);
  return out;
}

}  // namespace phivault::api
