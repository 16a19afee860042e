#!/usr/bin/env python3
"""The include rules of einlass, checked on the sources (run by ctest).

A module is src/NAME.c with include/einlass/NAME.h. A header whose name
ends in -t.h (conn-t.h, worker-t.h) holds types only and belongs to no
module: including it does not make a module depend on another one, but the
module headers it includes do count, for whoever includes it.

Rules:
 1. The module graph has no cycle: no two modules include each other,
    directly or around a longer loop.
 2. A -t.h header declares no function (types, constants and forward
    declarations only).

Usage: check_includes.py [SOURCE_DIR]   (default: the parent of tests/)
"""
import os
import re
import sys

# Edges still allowed while they are being removed. Each one is to go; once
# it is gone from the sources the check fails until it is taken out of here.
KNOWN = {}

INCLUDE = re.compile(r'^\s*#\s*include\s+"einlass/([A-Za-z0-9_-]+)\.h"', re.M)


def module_of(name):
    """The module a header or source name belongs to; None for a -t.h."""
    return None if name.endswith("-t") else name


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(
        os.path.dirname(os.path.abspath(__file__)))
    inc_dir = os.path.join(root, "include", "einlass")
    src_dir = os.path.join(root, "src")
    files = {}  # (kind, name) -> list of included header names
    for d, ext, kind in ((inc_dir, ".h", "h"), (src_dir, ".c", "c")):
        for f in sorted(os.listdir(d)):
            if f.endswith(ext):
                with open(os.path.join(d, f), encoding="utf-8") as fh:
                    text = fh.read()
                files[(kind, f[: -len(ext)])] = (INCLUDE.findall(text), text)

    errors = []

    def direct_modules(includes, seen):
        """Modules reached through includes, looking through -t.h headers."""
        out = set()
        for h in includes:
            if ("h", h) not in files:
                errors.append(f"einlass/{h}.h is included but does not exist")
                continue
            m = module_of(h)
            if m is not None:
                out.add(m)
            elif h not in seen:
                seen.add(h)
                out |= direct_modules(files[("h", h)][0], seen)
        return out

    graph = {}
    for (kind, name), (includes, _) in files.items():
        m = module_of(name)
        if m is None:
            continue
        graph.setdefault(m, set()).update(direct_modules(includes, set()) - {m})

    for edge, why in KNOWN.items():
        a, b = edge
        if b not in graph.get(a, set()):
            errors.append(f"known exception {a} -> {b} ({why}) is gone: remove it from KNOWN")
        else:
            graph[a].discard(b)

    # Rule 1: cycles (Tarjan's strongly connected components).
    index, low, on_stack, stack, sccs = {}, {}, set(), [], []
    counter = [0]

    def strongconnect(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    for comp in sccs:
        edges = [f"{a} -> {b}" for a in comp for b in sorted(graph[a]) if b in comp]
        errors.append("include cycle among modules " + ", ".join(comp) +
                      ": " + "; ".join(edges))

    # Rule 2: a -t.h header declares no function.
    for (kind, name), (_, text) in sorted(files.items()):
        if kind != "h" or module_of(name) is not None:
            continue
        body = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
        body = re.sub(r"//[^\n]*", " ", body)
        body = re.sub(r"^\s*#.*(?:\\\n.*)*$", " ", body, flags=re.M)
        depth, stmt = 0, []
        for ch in body:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif depth == 0:
                if ch == ";":
                    s = " ".join("".join(stmt).split())
                    if "(" in s and not s.startswith("typedef"):
                        errors.append(f"include/einlass/{name}.h declares a function "
                                      f"(types only in a -t.h header): {s};")
                    stmt = []
                else:
                    stmt.append(ch)

    for e in errors:
        print("check_includes: " + e)
    if errors:
        return 1
    print(f"check_includes: {len(graph)} modules, no include cycle, -t.h headers types only")
    return 0


if __name__ == "__main__":
    sys.exit(main())
