#include "fhir/bundle.h"

#include <algorithm>
#include <set>
#include <string_view>
#include <utility>

#include "fhir/json_reader.h"
#include "fhir/resource_types.h"

namespace phivault::fhir {
namespace {

namespace json = boost::json;

constexpr size_t kMaxUrlBytes = 8192;
constexpr size_t kMaxFullUrlBytes = 4096;
constexpr size_t kMaxHeaderBytes = 4096;

std::string_view View(const json::string& s) { return std::string_view(s.data(), s.size()); }

Status Unsupported(std::string m) { return Status(StatusCode::kUnsupported, std::move(m)); }

std::string Where(size_t i) { return "Bundle.entry[" + std::to_string(i) + "]"; }

// Reads an optional string member; absent leaves `out` empty.
Status OptionalString(const json::object& o, std::string_view key, size_t max, std::string& out,
                      const std::string& where) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return Status::Ok();
  const json::string* s = v->if_string();
  if (s == nullptr) return InvalidArgument(where + "." + std::string(key) + " must be a string");
  if (s->size() > max) return InvalidArgument(where + "." + std::string(key) + " is too long");
  out.assign(s->data(), s->size());
  return Status::Ok();
}

bool HasControlChars(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
}

// Parses request.url into type/id/vid/query.
Status ParseUrl(std::string_view url, BundleEntryRequest& e, const std::string& where) {
  const std::string w = where + ".request.url";
  if (url.empty()) return InvalidArgument(w + " is empty");
  if (url.size() > kMaxUrlBytes) return InvalidArgument(w + " is too long");
  if (HasControlChars(url) || url.find_first_of(" #") != std::string_view::npos) {
    return InvalidArgument(w + " contains characters not allowed in a URL");
  }
  if (url.find("://") != std::string_view::npos) {
    return InvalidArgument(w + " must be relative to the server base");
  }
  if (url.front() == '/') url.remove_prefix(1);
  std::string_view path = url;
  size_t q = url.find('?');
  bool has_query = q != std::string_view::npos;
  if (has_query) {
    path = url.substr(0, q);
    e.query.assign(url.substr(q + 1));
  }
  std::string_view segs[5];
  size_t n = 0;
  while (true) {
    if (n == std::size(segs)) return Unsupported(w + " has an unsupported form");
    size_t slash = path.find('/');
    segs[n++] = path.substr(0, slash);
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  for (size_t i = 0; i < n; ++i) {
    if (!segs[i].empty() && (segs[i].front() == '$' || segs[i].front() == '_') &&
        !(i == 2 && segs[i] == "_history")) {
      return Unsupported(w + ": operations and special urls are not supported in a Bundle");
    }
  }
  if (segs[0].empty()) return Unsupported(w + ": system-level interactions are not supported in a Bundle");
  if (!IsKnownResourceType(segs[0])) {
    if (segs[0] == "metadata") return Unsupported(w + ": metadata is not supported in a Bundle");
    return InvalidArgument(w + " names an unknown resource type");
  }
  e.type.assign(segs[0]);
  if (n == 1) return Status::Ok();
  if (!IsValidId(segs[1])) return InvalidArgument(w + " has an invalid resource id");
  e.id.assign(segs[1]);
  if (n == 2) return Status::Ok();
  if (segs[2] != "_history") return InvalidArgument(w + " has an unsupported form");
  if (n == 3) return Unsupported(w + ": history is not supported in a Bundle");
  if (n > 4 || !IsValidId(segs[3])) return InvalidArgument(w + " has an invalid version id");
  e.vid.assign(segs[3]);
  return Status::Ok();
}

Status ParseEntry(const json::value& ev, size_t index, BundleEntryRequest& e) {
  const std::string where = Where(index);
  const json::object* entry = ev.if_object();
  if (entry == nullptr) return InvalidArgument(where + " must be an object");
  PV_RETURN_IF_ERROR(OptionalString(*entry, "fullUrl", kMaxFullUrlBytes, e.full_url, where));
  if (HasControlChars(e.full_url)) return InvalidArgument(where + ".fullUrl contains control characters");

  const json::value* rv = entry->if_contains("request");
  const json::object* req = rv == nullptr ? nullptr : rv->if_object();
  if (req == nullptr) return InvalidArgument(where + ".request is missing or not an object");
  const json::value* mv = req->if_contains("method");
  const json::string* method = mv == nullptr ? nullptr : mv->if_string();
  if (method == nullptr) return InvalidArgument(where + ".request.method is missing or not a string");
  std::string_view m = View(*method);
  if (m == "PATCH" || m == "HEAD") {
    return Unsupported(where + ".request.method " + std::string(m) + " is not supported");
  }
  if (m != "GET" && m != "POST" && m != "PUT" && m != "DELETE") {
    return InvalidArgument(where + ".request.method must be GET, POST, PUT or DELETE");
  }
  e.method.assign(m);
  const json::value* uv = req->if_contains("url");
  const json::string* url = uv == nullptr ? nullptr : uv->if_string();
  if (url == nullptr) return InvalidArgument(where + ".request.url is missing or not a string");
  PV_RETURN_IF_ERROR(ParseUrl(View(*url), e, where));
  PV_RETURN_IF_ERROR(OptionalString(*req, "ifMatch", kMaxHeaderBytes, e.if_match, where + ".request"));
  PV_RETURN_IF_ERROR(
      OptionalString(*req, "ifNoneExist", kMaxHeaderBytes, e.if_none_exist, where + ".request"));
  PV_RETURN_IF_ERROR(
      OptionalString(*req, "ifNoneMatch", kMaxHeaderBytes, e.if_none_match, where + ".request"));

  const bool has_query = !e.query.empty();
  const std::string w = where + ".request";
  if (m == "GET") {
    // Any url form.
  } else if (m == "POST") {
    if (!e.id.empty() || has_query) return InvalidArgument(w + ": POST url must be a bare resource type");
  } else if (m == "PUT" || m == "DELETE") {
    if (!e.vid.empty()) return InvalidArgument(w + ": " + std::string(m) + " url must not name a version");
    if (e.id.empty() && !has_query) {
      return InvalidArgument(w + ": " + std::string(m) + " url needs an id or a search query");
    }
    if (!e.id.empty() && has_query) {
      return InvalidArgument(w + ": " + std::string(m) + " url has both an id and a query");
    }
  }

  const json::value* res = entry->if_contains("resource");
  const bool needs_resource = m == "POST" || m == "PUT";
  if (!needs_resource) {
    if (res != nullptr) return InvalidArgument(where + ".resource is not allowed with " + std::string(m));
    return Status::Ok();
  }
  if (res == nullptr) return InvalidArgument(where + ".resource is required with " + std::string(m));
  const json::object* ro = res->if_object();
  if (ro == nullptr) return InvalidArgument(where + ".resource must be an object");
  const json::value* rt = ro->if_contains("resourceType");
  const json::string* rts = rt == nullptr ? nullptr : rt->if_string();
  if (rts == nullptr || View(*rts) != e.type) {
    return InvalidArgument(where + ".resource.resourceType does not match request.url");
  }
  const json::value* idv = ro->if_contains("id");
  if (idv != nullptr) {
    const json::string* ids = idv->if_string();
    if (ids == nullptr || !IsValidId(View(*ids))) {
      return InvalidArgument(where + ".resource.id is not a valid FHIR id");
    }
  }
  if (m == "PUT" && !e.id.empty()) {
    // FHIR update: the body's id must be present and equal the url's id.
    if (idv == nullptr || View(idv->get_string()) != e.id) {
      return InvalidArgument(where + ".resource.id must equal the id in request.url");
    }
  }
  e.resource = *ro;
  return Status::Ok();
}

int Rank(const BundleEntryRequest& e) {
  if (!e.status.ok()) return 5;
  if (e.method == "DELETE") return 0;
  if (e.method == "POST") return 1;
  if (e.method == "PUT") return 2;
  if (e.method == "PATCH") return 3;
  return 4;  // GET (and HEAD)
}

}  // namespace

StatusOr<ParsedBundle> ParseBatchOrTransaction(const boost::json::object& bundle,
                                               const BundleLimits& limits) {
  const json::value* rt = bundle.if_contains("resourceType");
  if (rt == nullptr || !rt->is_string() || View(rt->get_string()) != "Bundle") {
    return InvalidArgument("resource is not a Bundle");
  }
  const json::value* tv = bundle.if_contains("type");
  const json::string* type = tv == nullptr ? nullptr : tv->if_string();
  ParsedBundle out;
  if (type != nullptr && View(*type) == "batch") {
    out.kind = BundleKind::kBatch;
  } else if (type != nullptr && View(*type) == "transaction") {
    out.kind = BundleKind::kTransaction;
  } else {
    return InvalidArgument("Bundle.type must be batch or transaction");
  }
  const bool txn = out.kind == BundleKind::kTransaction;
  const json::value* ev = bundle.if_contains("entry");
  if (ev == nullptr) return out;
  const json::array* entries = ev->if_array();
  if (entries == nullptr) return InvalidArgument("Bundle.entry must be an array");
  if (entries->size() > limits.max_entries) {
    return Status(StatusCode::kTooLarge, "Bundle has more than " + std::to_string(limits.max_entries) +
                                             " entries");
  }
  out.entries.resize(entries->size());
  std::set<std::string_view> full_urls;
  std::set<std::pair<std::string_view, std::string_view>> targets;
  for (size_t i = 0; i < entries->size(); ++i) {
    BundleEntryRequest& e = out.entries[i];
    Status s = ParseEntry((*entries)[i], i, e);
    if (s.ok() && txn) {
      // Identities must not overlap inside a transaction (FHIR R4 3.1.0.11.2).
      if (!e.full_url.empty() && e.method != "GET" && !full_urls.insert(e.full_url).second) {
        s = InvalidArgument(Where(i) + ".fullUrl repeats another entry's fullUrl");
      } else if (!e.id.empty() && (e.method == "PUT" || e.method == "DELETE") &&
                 !targets.emplace(e.type, e.id).second) {
        s = InvalidArgument(Where(i) + ".request.url targets the same resource as another entry");
      }
    }
    if (!s.ok()) {
      if (txn) return s;
      e = BundleEntryRequest{};
      e.status = std::move(s);
    }
  }
  return out;
}

std::vector<size_t> TransactionOrder(const ParsedBundle& bundle) {
  std::vector<size_t> order(bundle.entries.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return Rank(bundle.entries[a]) < Rank(bundle.entries[b]);
  });
  return order;
}

namespace {

// Calls fn(value&) for every string member named "reference" inside `root`;
// iterative, so deep input cannot exhaust the stack. V is json::value or
// const json::value.
template <typename V, typename Fn>
void VisitReferences(V& root, Fn&& fn) {
  std::vector<V*> stack{&root};
  while (!stack.empty()) {
    V* v = stack.back();
    stack.pop_back();
    if (auto* a = v->if_array()) {
      for (auto& e : *a) stack.push_back(&e);
    } else if (auto* o = v->if_object()) {
      for (auto& kv : *o) {
        if (kv.key() == "reference" && kv.value().is_string()) {
          fn(kv.value());
        } else {
          stack.push_back(&kv.value());
        }
      }
    }
  }
}

}  // namespace

void RewriteReferences(boost::json::value& v,
                       const std::unordered_map<std::string, std::string>& map) {
  if (map.empty()) return;
  // Assigning a string member never moves the containers still on the stack.
  VisitReferences(v, [&](json::value& ref) {
    const json::string& s = ref.get_string();
    auto it = map.find(std::string(s.data(), s.size()));
    if (it != map.end()) ref = json::string_view(it->second);
  });
}

void RewriteReferences(boost::json::object& o,
                       const std::unordered_map<std::string, std::string>& map) {
  if (map.empty()) return;
  for (auto& kv : o) {
    if (kv.key() == "reference" && kv.value().is_string()) {
      const json::string& s = kv.value().get_string();
      auto it = map.find(std::string(s.data(), s.size()));
      if (it != map.end()) kv.value() = json::string_view(it->second);
    } else {
      RewriteReferences(kv.value(), map);
    }
  }
}

std::vector<std::string> CollectUrnReferences(const boost::json::value& v) {
  std::vector<std::string> out;
  VisitReferences(v, [&](const json::value& ref) {
    std::string_view s = View(ref.get_string());
    if (s.starts_with("urn:uuid:") || s.starts_with("urn:oid:")) out.emplace_back(s);
  });
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace phivault::fhir
