#include "fhir/compartment.h"

#include <algorithm>
#include <iterator>

#include <boost/json/value.hpp>

#include "fhir/json_reader.h"
#include "fhir/resource_types.h"

namespace phivault::fhir {
namespace {

namespace json = boost::json;

constexpr CompartmentPath kRows[] = {
#include "fhir/generated/patient_compartment.inc"
};

constexpr bool RowsSorted() {
  for (size_t i = 1; i < std::size(kRows); ++i) {
    if (kRows[i].type < kRows[i - 1].type) return false;
  }
  return true;
}
static_assert(RowsSorted(), "generated patient_compartment.inc must be sorted by type");

constexpr size_t kMaxSegments = 8;
constexpr bool RowsShort() {
  for (const CompartmentPath& r : kRows) {
    if (r.path.empty() || std::count(r.path.begin(), r.path.end(), '.') >= long{kMaxSegments}) return false;
  }
  return true;
}
static_assert(RowsShort(), "a generated path has more segments than PatientCompartment handles");

constexpr std::string_view kPatient = "Patient";

// "ID" or "ID/_history/VID" -> ID.
std::optional<std::string> IdAfterPatient(std::string_view rest) {
  size_t slash = rest.find('/');
  std::string_view id = rest.substr(0, slash);
  if (!IsValidId(id)) return std::nullopt;
  if (slash != std::string_view::npos) {
    std::string_view tail = rest.substr(slash);
    constexpr std::string_view kHistory = "/_history/";
    if (tail.substr(0, kHistory.size()) != kHistory) return std::nullopt;
    if (!IsValidId(tail.substr(kHistory.size()))) return std::nullopt;
  }
  return std::string(id);
}

void Collect(const json::value& v, std::span<const std::string_view> segs,
             std::vector<std::string>& out) {
  if (const json::array* a = v.if_array()) {
    for (const json::value& e : *a) Collect(e, segs, out);
    return;
  }
  const json::object* o = v.if_object();
  if (o == nullptr) return;
  if (segs.empty()) {
    const json::value* ref = o->if_contains("reference");
    if (ref == nullptr) return;
    const json::string* s = ref->if_string();
    if (s == nullptr) return;
    if (auto id = PatientIdFromReference(std::string_view(s->data(), s->size()))) {
      out.push_back(std::move(*id));
    }
    return;
  }
  const json::value* child = o->if_contains(segs.front());
  if (child != nullptr) Collect(*child, segs.subspan(1), out);
}

}  // namespace

std::span<const CompartmentPath> PatientCompartmentPaths(std::string_view type) {
  if (type.empty()) return kRows;
  auto [lo, hi] = std::equal_range(std::begin(kRows), std::end(kRows), CompartmentPath{type, {}, {}},
                                   [](const CompartmentPath& a, const CompartmentPath& b) {
                                     return a.type < b.type;
                                   });
  return std::span<const CompartmentPath>(lo, hi);
}

bool HasPatientCompartment(std::string_view type) {
  return type == kPatient || (!type.empty() && !PatientCompartmentPaths(type).empty());
}

std::optional<std::string> PatientIdFromReference(std::string_view ref) {
  constexpr std::string_view kRel = "Patient/";
  if (ref.substr(0, kRel.size()) == kRel) return IdAfterPatient(ref.substr(kRel.size()));
  std::string_view rest;
  constexpr std::string_view kHttp = "http://", kHttps = "https://";
  if (ref.substr(0, kHttp.size()) == kHttp) {
    rest = ref.substr(kHttp.size());
  } else if (ref.substr(0, kHttps.size()) == kHttps) {
    rest = ref.substr(kHttps.size());
  } else {
    return std::nullopt;
  }
  if (rest.find_first_of("?#") != std::string_view::npos) return std::nullopt;
  size_t host_end = rest.find('/');
  if (host_end == 0 || host_end == std::string_view::npos) return std::nullopt;
  // The path is [base segments...]/Patient/ID[/_history/VID]; try the two
  // positions "Patient" can take.
  std::string_view path = rest.substr(host_end);  // starts with '/'
  constexpr std::string_view kSeg = "/Patient/";
  for (size_t pos = path.rfind(kSeg); pos != std::string_view::npos;
       pos = pos == 0 ? std::string_view::npos : path.rfind(kSeg, pos - 1)) {
    if (auto id = IdAfterPatient(path.substr(pos + kSeg.size()))) return id;
  }
  return std::nullopt;
}

std::vector<std::string> PatientCompartment(const boost::json::object& resource) {
  std::vector<std::string> out;
  const json::value* rt = resource.if_contains("resourceType");
  if (rt == nullptr || !rt->is_string()) return out;
  std::string_view type(rt->get_string().data(), rt->get_string().size());
  if (type == kPatient) {
    if (const json::value* id = resource.if_contains("id")) {
      if (const json::string* s = id->if_string()) {
        std::string_view sv(s->data(), s->size());
        if (IsValidId(sv)) out.emplace_back(sv);
      }
    }
  }
  for (const CompartmentPath& row : PatientCompartmentPaths(type)) {
    std::string_view segs_buf[kMaxSegments];
    size_t n = 0;
    std::string_view p = row.path;
    while (n < std::size(segs_buf)) {
      size_t dot = p.find('.');
      segs_buf[n++] = p.substr(0, dot);
      if (dot == std::string_view::npos) break;
      p = p.substr(dot + 1);
    }
    std::span<const std::string_view> segs(segs_buf, n);
    if (const json::value* first = resource.if_contains(segs.front())) {
      Collect(*first, segs.subspan(1), out);
    }
  }
  if (type == "Binary") {
    if (const json::value* ctx = resource.if_contains("securityContext")) Collect(*ctx, {}, out);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::optional<ResourceRef> BinarySecurityContext(std::string_view binary_json) {
  auto parsed = ParseResource(binary_json, ParseLimits{64, 64u << 20});
  if (!parsed.ok()) return ResourceRef{};  // unreadable: nothing to follow
  return BinarySecurityContext(*parsed);
}

std::optional<ResourceRef> BinarySecurityContext(const boost::json::object& binary) {
  const json::value* rt = binary.if_contains("resourceType");
  if (rt == nullptr || !rt->is_string() || rt->get_string() != "Binary") return std::nullopt;
  const json::value* ctx = binary.if_contains("securityContext");
  if (ctx == nullptr || ctx->is_null()) return std::nullopt;
  const json::object* o = ctx->if_object();
  const json::value* ref = o ? o->if_contains("reference") : nullptr;
  const json::string* s = ref ? ref->if_string() : nullptr;
  if (s == nullptr) return ResourceRef{};
  std::string_view r(s->data(), s->size());
  const size_t slash = r.find('/');
  if (slash == std::string_view::npos) return ResourceRef{};
  std::string_view t = r.substr(0, slash), rest = r.substr(slash + 1);
  if (size_t h = rest.find("/_history/"); h != std::string_view::npos) rest = rest.substr(0, h);
  if (!IsKnownResourceType(t) || !IsValidId(rest)) return ResourceRef{};
  return ResourceRef{std::string(t), std::string(rest)};
}

}  // namespace phivault::fhir
