#!/usr/bin/env python3
"""Counts that say how the library is shaped, for comparing two checkouts:

    scripts/code_counts.py [SRC_DIR]          default: src/ of this checkout

- functions: every `fn` with a body under SRC_DIR, and those over 70 lines (the lines
  from the `fn` line to its closing brace);
- `Error::Invalid` sites and `Result<_, String>` in the library (SRC_DIR without bin/);
- repeated blocks: pairs of places that share a run of six or more lines (lines compared
  with white space folded; blank lines, comments, lone punctuation and `use` lines
  passed over), counted once per pair of places.

Comments and the insides of string literals are blanked first, so neither counts.
"""

import os
import re
import sys
from collections import defaultdict

WINDOW = 6
LONG = 70


def rust_files(root):
    for d, _, files in os.walk(root):
        for f in sorted(files):
            if f.endswith(".rs"):
                yield os.path.join(d, f)


def code_only(src):
    """Comments removed and literal contents blanked, newlines kept."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            depth = 0
            while i < n:
                if src.startswith("/*", i):
                    depth += 1
                    i += 2
                elif src.startswith("*/", i):
                    depth -= 1
                    i += 2
                    if depth == 0:
                        break
                else:
                    out.append("\n" if src[i] == "\n" else " ")
                    i += 1
        elif c == "'" and i + 2 < n and src[i + 2] == "'":
            out.append("' '")
            i += 3
        elif c == "'" and i + 1 < n and src[i + 1] == "\\":
            j = src.find("'", i + 2)
            j = n - 1 if j < 0 else j
            out.append("'" + " " * (j - i - 1) + "'")
            i = j + 1
        elif c == "r" and re.match(r'r#*"', src[i:i + 8]) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            m = re.match(r'r(#*)"', src[i:])
            close = '"' + m.group(1)
            start = i + len(m.group(0))
            j = src.find(close, start)
            j = n if j < 0 else j
            out.append('"' + "".join("\n" if ch == "\n" else " " for ch in src[start:j]) + '"')
            i = j + len(close)
        elif c == '"':
            out.append('"')
            i += 1
            while i < n and src[i] != '"':
                if src[i] == "\\" and i + 1 < n:
                    out.append(" " + ("\n" if src[i + 1] == "\n" else " "))
                    i += 2
                else:
                    out.append("\n" if src[i] == "\n" else " ")
                    i += 1
            out.append('"')
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


FN = re.compile(r"\bfn\s+[A-Za-z_][A-Za-z0-9_]*")


def functions(code):
    """(start line, line count) of every fn with a body."""
    out = []
    for m in FN.finditer(code):
        # The body's brace: the first `{` after the signature, unless a `;` comes first.
        i = m.end()
        depth_paren = 0
        while i < len(code):
            ch = code[i]
            if ch in "([<":
                depth_paren += 1
            elif ch in ")]>":
                depth_paren -= 1
            elif ch == ";" and depth_paren <= 0:
                i = -1
                break
            elif ch == "{" and depth_paren <= 0:
                break
            i += 1
        if i < 0 or i >= len(code):
            continue
        depth = 0
        j = i
        while j < len(code):
            if code[j] == "{":
                depth += 1
            elif code[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        start = code.count("\n", 0, m.start()) + 1
        end = code.count("\n", 0, j) + 1
        out.append((start, end - start + 1))
    return out


def significant(line):
    s = " ".join(line.split())
    if not s or s.startswith("use ") or s.startswith("pub use ") or re.fullmatch(r"[{}()\[\];,.]*", s):
        return None
    return s


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "src")
    fns = long_fns = invalid = string_results = 0
    windows = defaultdict(list)
    for path in rust_files(root):
        with open(path, encoding="utf-8", errors="replace") as f:
            code = code_only(f.read())
        rel = os.path.relpath(path, root)
        lib = not rel.startswith("bin" + os.sep)
        for _, lines in functions(code):
            fns += 1
            long_fns += lines > LONG
        if lib:
            invalid += len(re.findall(r"Error::Invalid\b", code))
            string_results += len(re.findall(r"Result<[^,>]*,\s*String>", code))
        sig = [(k + 1, s) for k, s in enumerate(significant(l) for l in code.split("\n")) if s]
        for k in range(len(sig) - WINDOW + 1):
            key = "\n".join(s for _, s in sig[k:k + WINDOW])
            windows[key].append((rel, sig[k][0]))
    pairs = set()
    for places in windows.values():
        if len(places) < 2 or len(places) > 8:
            continue
        for a in range(len(places)):
            for b in range(a + 1, len(places)):
                p, q = sorted([places[a], places[b]])
                if p[0] == q[0] and abs(p[1] - q[1]) < WINDOW:
                    continue  # one run overlapping itself
                # One pair per pair of files and region (a run of windows counts once).
                pairs.add((p[0], p[1] // 50, q[0], q[1] // 50))
    print(f"functions: {fns}; over {LONG} lines: {long_fns}")
    print(f"Error::Invalid sites in the library: {invalid}")
    print(f"Result<_, String> in the library: {string_results}")
    print(f"repeated blocks of {WINDOW}+ lines (pairs of places): {len(pairs)}")


if __name__ == "__main__":
    main()
