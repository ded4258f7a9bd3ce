#include "policy/labels.h"

#include <algorithm>
#include <mutex>

#include "policy/values.h"

namespace phivault::policy {

namespace json = boost::json;

namespace {

constexpr std::string_view kSensitivity[] = {"BH",  "ETH", "GDIS", "HIV", "MH",  "PSY", "PSYTHPN",
                                             "SCA", "SDV", "SEX",  "STD", "SUD", "TBOO"};

bool IsConfidentialitySystem(std::string_view s) {
  return s == kConfidentialitySystem || s == "http://hl7.org/fhir/v3/Confidentiality";
}
bool IsActCodeSystem(std::string_view s) { return s == kActCodeSystem || s == "http://hl7.org/fhir/v3/ActCode"; }

}  // namespace

std::span<const std::string_view> SensitivityCodes() { return kSensitivity; }

std::vector<SecurityLabel> ExtractSecurityLabels(const json::object& resource) {
  std::vector<SecurityLabel> out;
  const json::object* meta = GetObject(resource, "meta");
  if (!meta) return out;
  const json::array* security = GetArray(*meta, "security");
  if (!security) return out;
  for (const json::value& v : *security) {
    const json::object* coding = v.if_object();
    if (!coding) continue;
    std::string_view code = GetString(*coding, "code");
    if (code.empty()) continue;
    out.push_back({std::string(GetString(*coding, "system")), std::string(code)});
  }
  return out;
}

std::vector<std::string> RequiredClearances(const std::vector<SecurityLabel>& labels) {
  std::vector<std::string> out;
  for (const SecurityLabel& l : labels) {
    bool no_system = l.system.empty();
    if ((no_system || IsConfidentialitySystem(l.system)) && (l.code == "R" || l.code == "V")) {
      out.push_back(l.code);
    } else if ((no_system || IsActCodeSystem(l.system)) &&
               std::find(std::begin(kSensitivity), std::end(kSensitivity), l.code) != std::end(kSensitivity)) {
      out.push_back(l.code);
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::optional<std::string> MissingClearance(const std::vector<std::string>& required,
                                            const std::set<std::string>& clearances) {
  for (const std::string& r : required) {
    if (clearances.count(r)) continue;
    if (r == "R" && clearances.count("V")) continue;  // V is the higher confidentiality level
    return r;
  }
  return std::nullopt;
}

void PatientLabelIndex::OnWrite(std::string_view type, std::string_view id, const json::object* resource,
                                const std::vector<std::string>& /*patients*/) {
  if (type != "Patient") return;
  std::vector<std::string> required;
  if (resource) required = RequiredClearances(ExtractSecurityLabels(*resource));
  std::unique_lock lock(mu_);
  if (required.empty()) {
    required_.erase(std::string(id));
  } else {
    required_[std::string(id)] = std::move(required);
  }
}

Status PatientLabelIndex::Rebuild(const ResourceEnumerator& enumerate) {
  PatientLabelIndex fresh;
  Status st = enumerate([&](std::string_view type, std::string_view id, const json::object& r,
                            const std::vector<std::string>& patients) { fresh.OnWrite(type, id, &r, patients); });
  if (!st.ok()) return st;
  std::unique_lock lock(mu_);
  required_ = std::move(fresh.required_);
  return Status::Ok();
}

std::vector<std::string> PatientLabelIndex::PatientClearances(std::string_view patient_id) const {
  std::shared_lock lock(mu_);
  auto it = required_.find(std::string(patient_id));
  return it == required_.end() ? std::vector<std::string>{} : it->second;
}

}  // namespace phivault::policy
