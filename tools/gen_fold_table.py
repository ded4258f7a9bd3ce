#!/usr/bin/env python3
"""Generates src/search/generated/fold_table.inc, the committed table behind
search::FoldString (src/search/index_values.h): the case- and accent-folding
of FHIR string search.

Usage:
    tools/gen_fold_table.py [--out PATH] [--check]

Input: the Unicode Character Database as built into Python's `unicodedata`
(Debian 12's python3 3.11: Unicode 14.0.0). The product never reads it: it
compiles the generated file.

The fold of a code point above U+007F (ASCII is folded in code: lowercase):
  - White_Space (categories Zs, Zl, Zp and U+0085): a space, which FoldString
    collapses and trims like ASCII whitespace;
  - U+00C0..U+017F: what FoldString mapped them to before this table
    (LEGACY below: base letters, ß -> ss, æ -> ae, þ -> th, œ -> oe, ĳ -> ij,
    and ð, ø, đ, ħ, ı, ĸ, ŀ, ł, ŉ, ŋ, ŧ, ſ to their nearest ASCII letter),
    except × and ÷, which stay;
  - any other: full canonical decomposition (NFD), nonspacing marks
    (category Mn, of any script: also Hebrew points, Indic vowel signs,
    kana voicing marks, variation selectors) dropped, full case folding
    (str.casefold), repeated until nothing changes; then every resulting
    character that LEGACY maps is mapped (so ǿ folds like ø and Ǣ like Æ).
    Not decomposed: Hangul syllables U+AC00..U+D7A3 (no jamo) and symbols
    (categories Sm, Sk, So), so ≠ ∉ ≮ stay rather than fold to = ∈ <.
Only code points whose fold differs from themselves are recorded. The
generator checks that every output character folds to itself (FoldString is
idempotent), holds no whitespace and no ASCII capital.

Output (see the FoldRange comment in src/search/index_values.cc):
  kFoldRanges   sorted, disjoint ranges of code points, each of one kind:
                  kDelta     every code point maps to cp + arg;
                  kDeltaAlt  first, first+2, ... map to cp + arg, the code
                             points between them are unchanged;
                  kString    every code point maps to kFoldPool[arg, arg+len)
                             (len 0: dropped);
                  kSpace     every code point is whitespace;
  kFoldPool     the UTF-8 of every kString output, shared where one is a
                substring of another;
  kFoldBlocks   for each 256-code-point block b below kFoldBlockLimit, the
                index of the first range that ends at or after b * 256, and
                one final entry, the first range at or above the limit: the
                ranges that can hold a code point of block b are
                kFoldBlocks[b] .. kFoldBlocks[b + 1] inclusive; those that
                can hold one at or above the limit, the last entry onwards.

With --check it writes nothing and exits 1 if the committed file is stale,
or 77 (skipped) if this Python's Unicode version is not the one the committed
table was built from. Stdlib only. Changing what this produces changes
stored search index values: bump search::kFoldVersion
(src/search/index_values.h) in the same commit.
"""

import argparse
import os
import re
import sys
import unicodedata

# The Unicode License v3 asks for its copyright and permission notice to
# accompany copies of (data derived from) the Unicode data files.
UNICODE_YEARS = {"14.0.0": "1991-2021"}  # add the years of a new version
if unicodedata.unidata_version not in UNICODE_YEARS:
    print("gen_fold_table: add the copyright years of Unicode %s to UNICODE_YEARS" % unicodedata.unidata_version,
          file=sys.stderr)
    sys.exit(77)
LICENSE_LINES = [
    "Derived from the Unicode Character Database %s (via Python's unicodedata)." % unicodedata.unidata_version,
    "",
    "UNICODE LICENSE V3 (https://www.unicode.org/license.txt)",
    "",
    "COPYRIGHT AND PERMISSION NOTICE",
    "",
    "Copyright \u00a9 %s Unicode, Inc." % UNICODE_YEARS[unicodedata.unidata_version],
    "",
    "NOTICE TO USER: Carefully read the following legal agreement. BY",
    "DOWNLOADING, INSTALLING, COPYING OR OTHERWISE USING DATA FILES, AND/OR",
    "SOFTWARE, YOU UNEQUIVOCALLY ACCEPT, AND AGREE TO BE BOUND BY, ALL OF THE",
    "TERMS AND CONDITIONS OF THIS AGREEMENT. IF YOU DO NOT AGREE, DO NOT",
    "DOWNLOAD, INSTALL, COPY, DISTRIBUTE OR USE THE DATA FILES OR SOFTWARE.",
    "",
    "Permission is hereby granted, free of charge, to any person obtaining a",
    "copy of data files and any associated documentation (the \"Data Files\") or",
    "software and any associated documentation (the \"Software\") to deal in the",
    "Data Files or Software without restriction, including without limitation",
    "the rights to use, copy, modify, merge, publish, distribute, and/or sell",
    "copies of the Data Files or Software, and to permit persons to whom the",
    "Data Files or Software are furnished to do so, provided that either (a)",
    "this copyright and permission notice appear with all copies of the Data",
    "Files or Software, or (b) this copyright and permission notice appear in",
    "associated Documentation.",
    "",
    "THE DATA FILES AND SOFTWARE ARE PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY",
    "KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF",
    "MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT OF",
    "THIRD PARTY RIGHTS.",
    "",
    "IN NO EVENT SHALL THE COPYRIGHT HOLDER OR HOLDERS INCLUDED IN THIS NOTICE",
    "BE LIABLE FOR ANY CLAIM, OR ANY SPECIAL INDIRECT OR CONSEQUENTIAL DAMAGES,",
    "OR ANY DAMAGES WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS,",
    "WHETHER IN AN ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION,",
    "ARISING OUT OF OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THE DATA",
    "FILES OR SOFTWARE.",
    "",
    "Except as contained in this notice, the name of a copyright holder shall",
    "not be used in advertising or otherwise to promote the sale, use or other",
    "dealings in these Data Files or Software without prior written",
    "authorization of the copyright holder.",
]

# The hand-written folds FoldString had for U+00C0..U+017F before the table
# (kLatin1 / kLatinExtA in index_values.cc up to kFoldVersion 1), kept byte
# for byte so that those folds do not change: base letters; "?" marks a
# multi-letter fold (MULTI) or a non-letter (unchanged).
LATIN1 = "aaaaaa?ceeeeiiiidnooooo?ouuuuy??aaaaaa?ceeeeiiiidnooooo?ouuuuy?y"  # U+00C0..U+00FF
LATIN_EXT_A = ("aaaaaaccccccccddddeeeeeeeeeegggggggghhhhiiiiiiiiii??jjkkkllllllllllnnnnnnnnnoooooo??"
               "rrrrrrssssssssttttttuuuuuuuuuuuuwwyyyzzzzzzs")  # U+0100..U+017F
MULTI = {0xC6: "ae", 0xE6: "ae", 0xDE: "th", 0xFE: "th", 0xDF: "ss",
         0x132: "ij", 0x133: "ij", 0x152: "oe", 0x153: "oe"}

HANGUL_SYLLABLES = range(0xAC00, 0xD7A3 + 1)
# Symbols keep their marks: U+2260 ≠ is "=" + U+0338 and must not fold to "=".
SYMBOLS = ("Sm", "Sk", "So")
BLOCK_SHIFT = 8
# Blocks index planes 0-2 (every script, the CJK ideographs); above them only
# a few ranges fold (plane 14's variation selectors), found by binary search.
BLOCK_LIMIT = 0x30000

KINDS = ["kDelta", "kDeltaAlt", "kString", "kSpace"]


def fail(msg):
    print("gen_fold_table: " + msg, file=sys.stderr)
    sys.exit(1)


def legacy():
    assert len(LATIN1) == 0x40 and len(LATIN_EXT_A) == 0x80
    out = {}
    for i, c in enumerate(LATIN1 + LATIN_EXT_A):
        cp = 0xC0 + i
        if c != "?":
            out[cp] = c
        elif cp in MULTI:
            out[cp] = MULTI[cp]
    return out  # × and ÷ are absent: unchanged


def is_space(cp):
    return unicodedata.category(chr(cp)) in ("Zs", "Zl", "Zp") or cp == 0x85


def decompose(s):
    return "".join(c if ord(c) in HANGUL_SYLLABLES or unicodedata.category(c) in SYMBOLS
                   else unicodedata.normalize("NFD", c) for c in s)


def base_fold(s):
    for _ in range(8):
        t = "".join(c for c in decompose(s) if unicodedata.category(c) != "Mn").casefold()
        if t == s:
            return s
        s = t
    fail("folding %r does not settle" % s)


def build():
    """{code point: fold} for every code point above U+007F whose fold differs
    from itself; whitespace maps to None."""
    old = legacy()
    old_text = {chr(cp): v for cp, v in old.items()}
    folds = {}
    for cp in range(0x80, 0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        ch = chr(cp)
        if is_space(cp):
            folds[cp] = None
            continue
        if 0xC0 <= cp <= 0x17F:
            f = old.get(cp, ch)
        else:
            f = "".join(old_text.get(c, c) for c in base_fold(ch))
        if f != ch:
            folds[cp] = f
    # Idempotence: every output character folds to itself.
    for cp, f in folds.items():
        for c in f or "":
            o = ord(c)
            if o < 0x80:
                if c.isspace() or c.isupper():
                    fail("U+%04X folds to %r, which holds ASCII %r" % (cp, f, c))
            elif o in folds:
                fail("U+%04X folds to %r, but U+%04X folds further to %r" % (cp, f, o, folds[o]))
    return folds


def single(f):
    return f is not None and len(f) == 1


def ranges_of(folds):
    """Greedy cover of the folds by few ranges: [first, count, kind, arg, text],
    count being the code points that fold (for kDeltaAlt, every other one)."""
    cps = sorted(folds)
    out, i = [], 0
    while i < len(cps):
        cp = cps[i]
        f = folds[cp]
        cands = []
        if f is None:
            n = 1
            while cp + n in folds and folds[cp + n] is None:
                n += 1
            cands.append((n, n, "kSpace", 0, None))
        else:
            n = 1
            while cp + n in folds and folds[cp + n] == f:
                n += 1
            cands.append((n, n, "kString", 0, f))
            if single(f):
                d = ord(f) - cp
                n = 1
                while cp + n in folds and single(folds[cp + n]) and ord(folds[cp + n]) - (cp + n) == d:
                    n += 1
                cands.append((n, n, "kDelta", d, None))
                n = 1  # every other code point, those between unchanged
                while (cp + 2 * n in folds and single(folds[cp + 2 * n]) and
                       ord(folds[cp + 2 * n]) - (cp + 2 * n) == d and cp + 2 * n - 1 not in folds):
                    n += 1
                cands.append((n, n, "kDeltaAlt", d, None))
        # Most code points covered; ties go to the first (string < delta).
        covered, n, kind, arg, text = max(cands, key=lambda c: c[0])
        if kind == "kString" and n == 1 and single(f):
            covered, n, kind, arg, text = 1, 1, "kDelta", ord(f) - cp, None  # no pool bytes
        out.append([cp, n, kind, arg, text])
        i += covered
    return out


def pool_of(ranges):
    strings = sorted({r[4] for r in ranges if r[2] == "kString"}, key=lambda s: (-len(s.encode()), s))
    pool = b""
    offsets = {}
    for s in strings:
        b = s.encode()
        at = pool.find(b)
        if at < 0:
            at = len(pool)
            pool += b
        offsets[s] = at
    for r in ranges:
        if r[2] == "kString":
            r[3] = offsets[r[4]]
    return pool


def last_cp(r):
    first, n, kind = r[0], r[1], r[2]
    return first + (2 * (n - 1) if kind == "kDeltaAlt" else n - 1)


def blocks_of(ranges):
    starts, j = [], 0
    for b in range((BLOCK_LIMIT >> BLOCK_SHIFT) + 1):
        while j < len(ranges) and last_cp(ranges[j]) < (b << BLOCK_SHIFT):
            j += 1
        starts.append(j)
    if j < len(ranges) and ranges[j][0] < BLOCK_LIMIT:
        fail("a range crosses BLOCK_LIMIT")
    return BLOCK_LIMIT, starts


def c_bytes(b):
    out, line = [], ""
    for x in b:
        line += "\\x%02x" % x
        if len(line) >= 96:
            out.append('"%s"' % line)
            line = ""
    if line:
        out.append('"%s"' % line)
    return out


def render(folds, ranges, pool, limit, blocks):
    counts = {k: sum(1 for r in ranges if r[2] == k) for k in KINDS}
    out = ["// GENERATED by tools/gen_fold_table.py -- DO NOT EDIT.",
           "// Case and accent folding of FHIR string search (search::FoldString)."]
    out += [("// " + l).rstrip() for l in LICENSE_LINES]
    out += ["//", "// %d code points fold: %d ranges (%s), %d pool bytes, %d blocks." % (
        len(folds), len(ranges), ", ".join("%s %d" % (k, counts[k]) for k in KINDS), len(pool), len(blocks) - 1),
        "// The rule is in the generator's docstring. Included by src/search/index_values.cc",
        "// after the FoldRange definition, with FoldKind's enumerators in scope.",
        "",
        '[[maybe_unused]] constexpr std::string_view kFoldUnicodeVersion = "%s";' % unicodedata.unidata_version,
        "constexpr uint32_t kFoldBlockLimit = 0x%X;" % limit,
        "constexpr int kFoldBlockShift = %d;" % BLOCK_SHIFT,
        "",
        "constexpr FoldRange kFoldRanges[] = {"]
    for first, n, kind, arg, text in ranges:
        to = text if text is not None else chr(first + arg) if kind != "kSpace" else None
        note = ""
        if to == "":
            note = "  // dropped"
        elif to is not None and all(unicodedata.category(c)[0] == "L" for c in to):
            note = "  // " + to
        out.append("    {0x%04X, %d, %s, %d, %d},%s" % (first, n, kind, len(text.encode()) if text else 0, arg, note))
    out.append("};")
    out.append("")
    out.append("constexpr char kFoldPool[] =")
    out += ["    " + l for l in c_bytes(pool)] or ['    ""']
    out[-1] += ";"
    out.append("")
    out.append("constexpr uint16_t kFoldBlocks[] = {")
    for i in range(0, len(blocks), 16):
        out.append("    " + ", ".join(str(x) for x in blocks[i:i + 16]) + ",")
    out.append("};")
    return "\n".join(out) + "\n"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(here)
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(repo, "src", "search", "generated", "fold_table.inc"))
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    old = None
    if os.path.exists(args.out):
        with open(args.out, encoding="utf-8") as f:
            old = f.read()
    if args.check and old is not None:
        m = re.search(r'kFoldUnicodeVersion = "([^"]*)"', old)
        if m and m.group(1) != unicodedata.unidata_version:
            print("gen_fold_table: cannot check: this Python has Unicode %s, the table was built from %s" % (
                unicodedata.unidata_version, m.group(1)), file=sys.stderr)
            sys.exit(77)
    folds = build()
    ranges = ranges_of(folds)
    pool = pool_of(ranges)
    limit, blocks = blocks_of(ranges)
    if (len(ranges) >= 0xFFFF or max(r[1] for r in ranges) > 0xFFFF or
            max(len(r[4].encode()) for r in ranges if r[4] is not None) > 0xFF):
        fail("table too large for FoldRange's fields")
    text = render(folds, ranges, pool, limit, blocks)
    stale = old != text
    if stale and not args.check:
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    print("gen_fold_table: Unicode %s, %d code points, %d ranges, %d pool bytes, %d blocks%s" % (
        unicodedata.unidata_version, len(folds), len(ranges), len(pool), len(blocks) - 1,
        (" (stale)" if stale else " (up to date)") if args.check else ""), file=sys.stderr)
    if args.check and stale:
        sys.exit(1)


if __name__ == "__main__":
    main()
