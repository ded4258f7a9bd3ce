#include "api/search_handler.h"

#include "api/noisy_bound.h"
#include "api/request_audit.h"

#include <algorithm>
#include <map>
#include <set>

#include <boost/json.hpp>

#include "auth/base64url.h"
#include "crypto/keyring.h"
#include "fhir/json_reader.h"
#include "fhir/summary.h"
#include "search/index_values.h"
#include "search/query.h"
#include "search/search_params.h"

namespace phivault::api {
namespace {

constexpr int kMaxIncludeIterations = 3;
// Chained and _has conditions resolve to at most this many ids (examining
// at most Run::join_limit resources).
constexpr size_t kMaxJoinValues = 1000;
constexpr std::string_view kCursorAad = "phivault/search-cursor/v1";
constexpr std::string_view kSubsettedTag =
    R"({"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED"})";

// Marks a subset (_elements, _summary=true|text|data) with the SUBSETTED
// tag (R4 3.1.1.5.8-9) so that no client takes it for the whole resource.
std::string MarkSubsetted(boost::json::object out) {
  boost::json::value& meta = out["meta"];
  if (!meta.is_object()) meta = boost::json::object();
  boost::json::value& tags = meta.get_object()["tag"];
  if (!tags.is_array()) tags = boost::json::array();
  tags.get_array().push_back(boost::json::parse(kSubsettedTag));
  return boost::json::serialize(out);
}

// _elements (takes precedence over _summary, as before): resourceType, id,
// meta and the named top-level elements. _summary=true|text: the R4 summary
// table (fhir/summary.h). _summary=data: everything but the narrative.
std::string ApplySubset(const std::string& json, const search::SearchRequest& sr) {
  auto parsed = fhir::ParseJson(json);
  if (!parsed.ok() || !parsed->is_object()) return json;
  boost::json::object& o = parsed->get_object();
  if (!sr.elements.empty()) {
    boost::json::object out;
    for (auto& [k, v] : o) {
      if (k == "resourceType" || k == "id" || k == "meta" ||
          std::find(sr.elements.begin(), sr.elements.end(), std::string_view(k)) != sr.elements.end()) {
        out[k] = v;
      }
    }
    return MarkSubsetted(std::move(out));
  }
  switch (sr.summary) {
    case search::SummaryMode::kTrue: return MarkSubsetted(fhir::Summarize(o, fhir::SummaryView::kTrue));
    case search::SummaryMode::kText: return MarkSubsetted(fhir::Summarize(o, fhir::SummaryView::kText));
    case search::SummaryMode::kData:
      o.erase("text");
      return MarkSubsetted(std::move(o));
    default: return json;
  }
}

bool Subsets(const search::SearchRequest& sr) {
  return !sr.elements.empty() || sr.summary == search::SummaryMode::kTrue ||
         sr.summary == search::SummaryMode::kText || sr.summary == search::SummaryMode::kData;
}

}  // namespace

// One search request's state.
struct SearchHandler::Run {
  SearchHandler* h;
  const http::HttpRequest& req;
  const Caller& caller;
  int64_t now_ms;
  std::map<std::string, bool> type_ok;
  audit::AuditEntry* entry = nullptr;  // marked when a grant let a record through
  // Shared by every store search this request makes (store/search_query.h).
  store::SearchBudget budget{h->options_.search_work_units};
  // This request's bounds on matches examined, hidden ones included, each
  // drawn on its own: a bound whose effect shows in the response (which
  // referring resources _revinclude added) must not reveal another's.
  const int64_t join_limit = NoisyBound(h->options_.join_examined_limit);
  const int64_t revinclude_limit = NoisyBound(h->options_.join_examined_limit);
  const int64_t count_limit = NoisyBound(h->options_.count_examined_limit);

  bool Visible(const store::ResourceVersion& v) {
    if (v.deleted) return false;
    auto it = type_ok.find(v.type);
    if (it == type_ok.end()) {
      it = type_ok.emplace(v.type, h->access_->DecideType(caller, policy::Interaction::kSearch, v.type).allowed).first;
    }
    if (!it->second) return false;
    policy::Decision d = h->access_->Decide(caller, policy::Interaction::kSearch, v, req, now_ms);
    if (d.allowed && d.break_glass && entry) entry->break_glass = true;
    return d.allowed;
  }

  // Chained and _has conditions select by the content of *other* resources;
  // evaluated in the store they would let a caller probe records it may not
  // see (e.g. which patients have a hidden HIV result). So they are
  // resolved here, through authorized searches, into plain conditions on ids
  // of resources the caller may see.
  Status ResolveJoins(const std::string& type, std::vector<store::SearchCondition>& conds) {
    for (store::SearchCondition& c : conds) {
      if (c.kind == store::SearchCondition::Kind::kPlain) continue;
      if (c.nested.size() != 1) return InvalidArgument("malformed chained search");
      std::vector<store::SearchCondition> inner = std::move(c.nested);
      PV_RETURN_IF_ERROR(ResolveJoins(c.target_type, inner));
      store::SearchQuery q;
      q.type = c.target_type;
      q.conditions = std::move(inner);
      std::vector<store::ResourceVersion> visible;
      PV_RETURN_IF_ERROR(CollectVisible(q, visible));
      store::SearchCondition plain;
      if (c.kind == store::SearchCondition::Kind::kChain) {
        // param=Target/id for each visible target.
        plain.param = c.param;
        plain.type = search::ParamType::kReference;
        for (const auto& v : visible) {
          store::SearchValue sv;
          sv.ref_type = v.type;
          sv.ref_id = v.id;
          plain.values.push_back(std::move(sv));
        }
      } else {
        // _id in the ids the visible referencing resources point at.
        plain.param = "_id";
        plain.type = search::ParamType::kToken;
        const search::SearchParamDef* def = search::FindSearchParam(c.target_type, c.has_param);
        if (!def) return InvalidArgument("_has needs a reference parameter");
        std::set<std::string> ids;
        for (const auto& v : visible) {
          auto body = fhir::ParseJson(v.json);
          if (!body.ok() || !body->is_object()) continue;
          // A resource that cannot be indexed was never stored; one stored
          // before that rule points nowhere here, as in the index.
          auto refs = search::ExtractParam(*def, body->get_object());
          if (!refs.ok()) continue;
          for (const search::IndexEntry& e : *refs) {
            if (e.ref_type == type && !e.ref_id.empty()) ids.insert(e.ref_id);
          }
        }
        for (const auto& id : ids) {
          store::SearchValue sv;
          sv.code = id;
          plain.values.push_back(std::move(sv));
        }
      }
      if (plain.values.size() > kMaxJoinValues) {
        return InvalidArgument("a chained or _has search matches too many resources; narrow it");
      }
      if (plain.values.empty()) {
        // Nothing visible matched: a value no resource can have (ids are
        // never empty).
        plain.values.emplace_back();
        plain.param = "_id";
        plain.type = search::ParamType::kToken;
      }
      c = std::move(plain);
    }
    return Status::Ok();
  }

  // Whether any match beyond `from` (in the given direction) is visible.
  // After a drawn number of matches without one (around
  // join_examined_limit, api/noisy_bound.h) it answers true, so a search
  // over mostly hidden data cannot be made arbitrarily slow; the link then
  // leads to a short page. A fixed number would tell, from the link alone,
  // whether that many hidden matches lie beyond.
  StatusOr<bool> AnyVisible(store::SearchQuery q, std::string from, bool backward) {
    q.budget = &budget;
    q.backward = backward;
    const int64_t limit = NoisyBound(h->options_.join_examined_limit);
    int64_t examined = 0;
    for (int chunk = 100;; chunk = std::min(chunk * 2, 1000)) {
      q.count = chunk;
      q.after = from;
      auto searched = h->store_->Search(q);
      // Out of budget: offer the link, as at the limit. The page already
      // built is answered; the next one may come up short.
      if (!searched.ok() && budget.units_left < 0) return true;
      PV_ASSIGN_OR_RETURN(store::SearchPage page, std::move(searched));
      // Hits come back in forward order; going backward, the nearest is last.
      for (size_t n = 0; n < page.hits.size(); ++n) {
        if (examined == limit) return true;
        ++examined;
        const auto& hit = page.hits[backward ? page.hits.size() - 1 - n : n];
        if (Visible(hit.version)) return true;
      }
      if (!page.more || page.hits.empty()) return false;
      from = backward ? page.hits.front().position : page.hits.back().position;
    }
  }

  // Every visible match of `q` (bounded).
  Status CollectVisible(store::SearchQuery q, std::vector<store::ResourceVersion>& out) {
    q.budget = &budget;
    q.count = 1000;
    int64_t examined = 0;
    for (;;) {
      PV_ASSIGN_OR_RETURN(store::SearchPage page, h->store_->Search(q));
      for (auto& hit : page.hits) {
        if (++examined > join_limit) {
          return InvalidArgument("a chained or _has search matches too many resources; narrow it");
        }
        if (Visible(hit.version)) out.push_back(std::move(hit.version));
      }
      if (!page.more || page.hits.empty()) return Status::Ok();
      q.after = page.hits.back().position;
    }
  }
};

SearchHandler::SearchHandler(store::ResourceStore* store, AccessControl* access, const ServiceOptions& options,
                             const PagingCursor* cursors)
    : store_(store), access_(access), options_(options), cursors_(cursors) {}

StatusOr<SearchHandler::Conditional> SearchHandler::ResolveConditional(http::HttpRequest& req, const Caller& caller,
                                                                       const std::string& type,
                                                                       const QueryParams& params, int64_t now_ms) {
  const bool put = req.method == "PUT";
  policy::Decision gate = access_->DecideType(caller, policy::Interaction::kSearch, type);
  if (!gate.allowed) return policy::DecisionStatus(gate);
  search::SearchParseOptions po;
  po.base_url = options_.base_url;
  po.now_ms = now_ms;
  PV_ASSIGN_OR_RETURN(search::SearchRequest sr, search::ParseSearch(type, params, po));
  if (sr.query.conditions.empty()) return InvalidArgument("a conditional update or delete needs search criteria");
  if (!sr.query.sort.empty() || !sr.includes.empty() || !sr.elements.empty() ||
      sr.summary != search::SummaryMode::kFalse || sr.total != search::TotalMode::kNone) {
    return InvalidArgument("a conditional update or delete takes search conditions only");
  }
  Run run{this, req, caller, now_ms, {}};
  PV_RETURN_IF_ERROR(run.ResolveJoins(type, sr.query.conditions));
  std::vector<store::ResourceVersion> visible;
  PV_RETURN_IF_ERROR(run.CollectVisible(sr.query, visible));
  if (visible.size() > 1) {
    return Status(StatusCode::kPreconditionFailed, "the search criteria match more than one resource");
  }
  Conditional out;
  std::optional<boost::json::object> body;
  std::string body_id;
  if (put) {
    auto parsed = fhir::ParseResource(req.body, options_.parse_limits);
    if (!parsed.ok()) return parsed.status();
    body = std::move(*parsed);
    if (const auto* id = body->if_contains("id"); id && id->is_string()) body_id = std::string(id->get_string());
    if (!body_id.empty() && !fhir::IsValidId(body_id)) return InvalidArgument("invalid resource id");
    const auto* rt = body->if_contains("resourceType");
    if (!rt || !rt->is_string() || rt->get_string() != type) {
      return InvalidArgument("the resource type in the body does not match the URL");
    }
  }
  if (visible.empty()) {
    if (!put) return out;  // nothing the caller may see matches: nothing to delete
    if (!body_id.empty()) {
      // The body names a record the criteria did not match: taking it as an
      // update would overwrite a resource the client did not select (FHIR R5
      // makes this a 409). A record hidden from the caller goes on to the
      // update, which refuses it exactly as a plain PUT would.
      auto cur = store_->Read(type, body_id);
      if (!cur.ok() && cur.status().code() != StatusCode::kNotFound) return cur.status();
      if (cur.ok() && run.Visible(*cur)) {
        return Status(StatusCode::kConflict,
                      "the resource with the id in the body does not match the search criteria");
      }
    }
    out.action = body_id.empty() ? Conditional::Action::kCreate : Conditional::Action::kUpdate;
    out.id = body_id;
    return out;
  }
  const store::ResourceVersion& match = visible.front();
  if (put && !body_id.empty() && body_id != match.id) {
    return InvalidArgument("the id in the body is not the id of the resource the criteria match");
  }
  out.action = put ? Conditional::Action::kUpdate : Conditional::Action::kDelete;
  out.id = match.id;
  if (put) {
    (*body)["id"] = match.id;
    req.body = boost::json::serialize(*body);
  }
  if (!req.Header("if-match")) req.headers.emplace_back("if-match", ETag(match.version));
  return out;
}

http::HttpResponse SearchHandler::Search(const http::HttpRequest& req, const Caller& caller, const std::string& type,
                                         QueryParams params, bool form_body, const OutputFormat& fmt,
                                         int64_t now_ms, audit::AuditEntry* entry) {
  if (form_body) {
    const std::string* ct = req.Header("content-type");
    if (!ct || ct->rfind("application/x-www-form-urlencoded", 0) != 0) {
      return OutcomeResponse(415, "error", "not-supported", "_search takes an application/x-www-form-urlencoded body",
                             fmt);
    }
    auto body = ParseQuery(req.body);
    if (!body.ok()) return ErrorResponse(body.status(), fmt);
    for (auto& p : *body) params.push_back(std::move(p));
  }
  if (entry) entry->query = QueryShape(type, params);
  policy::Decision gate = access_->DecideType(caller, policy::Interaction::kSearch, type);
  if (!gate.allowed) {
    if (entry) NoteDecision(*entry, gate);
    return ErrorResponse(policy::DecisionStatus(gate), fmt);
  }

  // The cursor is bound to every other parameter, in order.
  std::string cursor_text;
  QueryParams rest;
  for (auto& [k, v] : params) {
    if (k == "_cursor") {
      cursor_text = v;
    } else {
      rest.emplace_back(k, v);
    }
  }
  const std::string canon = EncodeQuery(rest);
  std::string aad(kCursorAad);
  aad += '\0';
  aad += type;
  aad += '\0';
  aad += canon;

  search::SearchParseOptions po;
  po.lenient = PreferLenient(req);
  po.default_count = options_.default_page_size;
  po.max_count = options_.max_page_size;
  po.base_url = options_.base_url;
  po.now_ms = now_ms;
  auto parsed = search::ParseSearch(type, rest, po);
  if (!parsed.ok()) return ErrorResponse(parsed.status(), fmt);
  search::SearchRequest& sr = *parsed;
  const int count = sr.query.count;

  bool backward = false;
  std::string start;
  if (!cursor_text.empty()) {
    StatusOr<std::string> plain = cursors_->Open(cursor_text, aad);
    if (!plain.ok() || plain->empty() || ((*plain)[0] != 'n' && (*plain)[0] != 'p')) {
      return ErrorResponse(InvalidArgument("invalid paging cursor (it must be used with the parameters it came with)"),
                           fmt);
    }
    backward = (*plain)[0] == 'p';
    start = plain->substr(1);
  }
  auto seal = [&](char dir, const std::string& position) {
    return cursors_->Seal(std::string(1, dir) + position, aad);
  };

  Run run{this, req, caller, now_ms, {}, entry};
  if (Status joins = run.ResolveJoins(type, sr.query.conditions); !joins.ok()) return ErrorResponse(joins, fmt);
  sr.query.budget = &run.budget;
  store::SearchQuery q = sr.query;
  std::vector<store::SearchHit> page;
  std::optional<int64_t> total;

  if (sr.summary == search::SummaryMode::kCount || sr.total == search::TotalMode::kAccurate) {
    // Counting authorizes every match: a hidden record must not be counted.
    store::SearchQuery all = sr.query;
    all.count = 1000;
    all.after.clear();
    all.backward = false;
    int64_t examined = 0, visible = 0;
    bool complete = false;
    // Stops at exactly count_limit matches, not at a chunk's end: rounded
    // to chunks, the limit's noise would step at every thousandth match.
    bool stopped = false;
    while (!stopped) {
      auto chunk = store_->Search(all);
      if (!chunk.ok()) return ErrorResponse(chunk.status(), fmt);
      for (auto& hit : chunk->hits) {
        if (examined == run.count_limit) {
          stopped = true;  // a match beyond the limit: incomplete
          break;
        }
        ++examined;
        if (run.Visible(hit.version)) ++visible;
      }
      // At the limit with more beyond this chunk: incomplete, without
      // fetching (and paying for) another chunk to find that out.
      if (examined == run.count_limit && chunk->more) stopped = true;
      if (!stopped && (!chunk->more || chunk->hits.empty())) {
        complete = true;
        break;
      }
      all.after = chunk->hits.back().position;
    }
    if (complete) {
      total = visible;
    } else if (sr.summary == search::SummaryMode::kCount) {
      return ErrorResponse(InvalidArgument("too many matches to count; narrow the search"), fmt);
    }
  }

  bool more_after = false, more_before = false;
  std::string after_pos, before_pos;
  if (sr.summary != search::SummaryMode::kCount) {
    std::string pos = start;
    bool more = true;
    // Hidden matches are skipped and the page refilled, up to a drawn
    // number of matches examined (AnyVisible says why it is drawn). Chunks
    // after the first grow, so a small _count does not cost thousands of
    // store searches; the first asks for just the page.
    const int64_t limit = NoisyRefillBound(options_.join_examined_limit, count);
    int64_t examined = 0;
    for (int chunk_size = count; more && static_cast<int>(page.size()) < count;
         chunk_size = std::min(chunk_size * 2, 1000)) {
      q.after = pos;
      q.backward = backward;
      q.count = std::max(chunk_size, count);
      auto chunk = store_->Search(q);
      if (!chunk.ok()) return ErrorResponse(chunk.status(), fmt);
      more = chunk->more;
      auto& hits = chunk->hits;
      bool at_limit = false;
      // Matches come back in forward order; going backward, the nearest is
      // last.
      for (size_t n = 0; n < hits.size(); ++n) {
        const size_t i = backward ? hits.size() - 1 - n : n;
        if (examined == limit) {
          at_limit = true;
          more = true;  // this hit, at least, was not examined
          break;
        }
        ++examined;
        pos = hits[i].position;
        if (run.Visible(hits[i].version)) page.push_back(std::move(hits[i]));
        if (static_cast<int>(page.size()) == count) {
          more = more || n + 1 < hits.size();
          break;
        }
      }
      if (at_limit || hits.empty()) break;
    }
    if (more && static_cast<int>(page.size()) == count) {
      // Offer a further page only if it holds something this caller may
      // see: a link to an empty page would reveal hidden matches beyond.
      auto any = run.AnyVisible(q, pos, backward);
      if (!any.ok()) return ErrorResponse(any.status(), fmt);
      more = *any;
    }
    if (backward) {
      std::reverse(page.begin(), page.end());
      more_before = more;
      before_pos = pos;
      if (!page.empty()) {
        more_after = true;  // we came from a later page
        after_pos = page.back().position;
      }
    } else {
      more_after = more;
      after_pos = pos;
      if (!start.empty() && !page.empty()) {
        more_before = true;
        before_pos = page.front().position;
      }
    }
    if (!total && start.empty() && !more_after && sr.total != search::TotalMode::kAccurate) {
      total = static_cast<int64_t>(page.size());  // the whole visible result is on this page
    }
  }

  // _include / _revinclude, authorized like matches; iterate up to a bound.
  std::vector<store::ResourceVersion> included;
  std::set<std::string> seen;
  for (const auto& hit : page) seen.insert(hit.version.type + "/" + hit.version.id);
  std::vector<const store::ResourceVersion*> frontier;
  for (const auto& hit : page) frontier.push_back(&hit.version);
  // Set when the bound left out a resource this caller may see: the Bundle
  // then says so instead of looking complete. Only visible resources count,
  // or the warning would tell that hidden ones exist.
  bool includes_cut = false;
  for (int iteration = 0; iteration < kMaxIncludeIterations && !frontier.empty() && !sr.includes.empty();
       ++iteration) {
    std::vector<store::ResourceVersion> found;
    auto add = [&](store::ResourceVersion v) {
      if (includes_cut) return;  // full, and known to have left one out
      std::string key = v.type + "/" + v.id;
      if (seen.count(key) || !run.Visible(v)) return;
      if (included.size() + found.size() >= kMaxIncluded) {
        includes_cut = true;
        return;
      }
      seen.insert(key);
      found.push_back(std::move(v));
    };
    for (const search::IncludeSpec& inc : sr.includes) {
      if (iteration > 0 && !inc.iterate) continue;
      const search::SearchParamDef* def = search::FindSearchParam(inc.source_type, inc.param);
      if (!def) continue;
      if (!inc.reverse) {
        for (const store::ResourceVersion* src : frontier) {
          if (src->type != inc.source_type) continue;
          auto body = fhir::ParseJson(src->json);
          if (!body.ok() || !body->is_object()) continue;
          auto refs = search::ExtractParam(*def, body->get_object());
          if (!refs.ok()) continue;  // as for _has above
          for (const search::IndexEntry& e : *refs) {
            if (e.ref_type.empty() || e.ref_id.empty()) continue;
            if (!inc.target_type.empty() && e.ref_type != inc.target_type) continue;
            // A page's matches often share a target (the same practitioner
            // on every encounter): read and decrypt it once.
            if (includes_cut || seen.count(e.ref_type + "/" + e.ref_id)) continue;
            auto v = store_->Read(e.ref_type, e.ref_id);
            if (v.ok()) add(std::move(*v));
          }
        }
      } else {
        store::SearchCondition c;
        c.param = inc.param;
        c.type = search::ParamType::kReference;
        for (const store::ResourceVersion* src : frontier) {
          if (!inc.target_type.empty() && src->type != inc.target_type) continue;
          store::SearchValue v;
          v.ref_type = src->type;
          v.ref_id = src->id;
          c.values.push_back(std::move(v));
        }
        if (c.values.empty()) continue;
        store::SearchQuery rq;
        rq.budget = &run.budget;
        rq.type = inc.source_type;
        rq.conditions.push_back(std::move(c));
        rq.count = 1000;
        // Paged past hidden hits, as far as joins examine: whatever lies
        // beyond that bound is left out unannounced.
        // Counted per match, as for counting above.
        for (int64_t examined = 0; examined < run.revinclude_limit && !includes_cut;) {
          auto res = store_->Search(rq);
          if (!res.ok()) return ErrorResponse(res.status(), fmt);
          for (auto& hit : res->hits) {
            if (examined == run.revinclude_limit) break;
            ++examined;
            add(std::move(hit.version));
          }
          if (!res->more || res->hits.empty()) break;
          rq.after = res->hits.back().position;
        }
      }
    }
    size_t first_new = included.size();
    for (auto& v : found) included.push_back(std::move(v));
    frontier.clear();
    for (size_t i = first_new; i < included.size(); ++i) frontier.push_back(&included[i]);
  }

  // The Bundle.
  const std::string type_url = options_.base_url + "/fhir/" + type;
  std::string self = type_url;
  std::string applied = EncodeQuery(sr.applied);
  if (!applied.empty()) self += "?" + applied;
  if (!cursor_text.empty()) self += (applied.empty() ? "?" : "&") + std::string("_cursor=") + cursor_text;
  std::string page_base = type_url + "?" + canon + (canon.empty() ? "" : "&") + "_cursor=";

  std::string body = R"({"resourceType":"Bundle","type":"searchset")";
  if (total) body += R"(,"total":)" + std::to_string(*total);
  body += R"(,"link":[{"relation":"self","url":)" + JsonString(self) + "}";
  if (more_after && !after_pos.empty()) {
    body += R"(,{"relation":"next","url":)" + JsonString(page_base + seal('n', after_pos)) + "}";
  }
  if (more_before && !before_pos.empty()) {
    body += R"(,{"relation":"previous","url":)" + JsonString(page_base + seal('p', before_pos)) + "}";
  }
  body += "]";
  auto render = [&](const store::ResourceVersion& v, std::string_view mode) {
    if (entry) AddResource(*entry, v);
    std::string json = Subsets(sr) ? ApplySubset(v.json, sr) : v.json;
    std::string e = R"({"fullUrl":)" + JsonString(options_.base_url + "/fhir/" + v.type + "/" + v.id);
    e += R"(,"resource":)" + json;
    e += R"(,"search":{"mode":")" + std::string(mode) + R"("}})";
    return e;
  };
  std::vector<std::string> entries;
  for (const auto& hit : page) entries.push_back(render(hit.version, "match"));
  for (const auto& v : included) entries.push_back(render(v, "include"));
  std::vector<std::string> issues;
  if (!sr.ignored.empty()) {
    // Lenient handling (R4 3.1.1.5): the outcome names the parameters that
    // were not applied (names only, never values).
    std::string names;
    for (const auto& n : sr.ignored) names += (names.empty() ? "" : ", ") + n;
    issues.push_back(R"({"severity":"warning","code":"not-supported","diagnostics":)" +
                     JsonString("search parameters not applied: " + names.substr(0, 1000)) + "}");
  }
  if (includes_cut) {
    issues.push_back(R"({"severity":"warning","code":"incomplete","diagnostics":)" +
                     JsonString("_include/_revinclude results were cut at " + std::to_string(kMaxIncluded) +
                                " resources per page; use a smaller _count or search the included type directly") +
                     "}");
  }
  if (!issues.empty()) {
    std::string outcome = R"({"resource":{"resourceType":"OperationOutcome","issue":[)";
    for (size_t i = 0; i < issues.size(); ++i) outcome += (i ? "," : "") + issues[i];
    entries.push_back(outcome + R"(]},"search":{"mode":"outcome"}})");
  }
  if (!entries.empty()) {
    body += R"(,"entry":[)";
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i) body += ',';
      body += entries[i];
    }
    body += "]";
  }
  body += "}";
  return JsonResponse(200, std::move(body), fmt);
}

}  // namespace phivault::api
