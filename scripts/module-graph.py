#!/usr/bin/env python3
"""Prints the crate's top-level module graph (who names whom through `crate::`)
and any cycles in it; exits 1 if there is a cycle.

    python3 scripts/module-graph.py            # edges and the verdict
    python3 scripts/module-graph.py --dot      # Graphviz

Unit tests (`tests.rs`, `#[cfg(test)]` sections) are left out: they may reach
anywhere."""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
USE = re.compile(r"\bcrate::(\w+)|\buse crate::\{([^}]*)\}")


def module_of(path):
    rel = os.path.relpath(path, SRC)
    top = rel.split(os.sep)[0]
    return top[:-3] if top.endswith(".rs") else top


def code_of(path):
    text = open(path, encoding="utf-8").read()
    cut = text.find("#[cfg(test)]\nmod tests")
    text = text if cut < 0 else text[:cut]
    # Doc links and comments name modules without depending on them.
    return "\n".join(re.sub(r"//.*", "", line) for line in text.split("\n"))


def graph():
    edges = {}
    for root, _, files in os.walk(SRC):
        for f in files:
            if not f.endswith(".rs") or f == "tests.rs" or f in ("main.rs", "lib.rs"):
                continue
            path = os.path.join(root, f)
            if os.sep + "tests" + os.sep in path:
                continue
            src = module_of(path)
            for m in USE.finditer(code_of(path)):
                names = [m.group(1)] if m.group(1) else [
                    n.strip().split("::")[0] for n in m.group(2).split(",")
                ]
                for n in names:
                    if n and n != src and n not in ("self", "super"):
                        edges.setdefault(src, set()).add(n)
    return edges


def cycles(edges):
    found, state = [], {}

    def visit(n, stack):
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                found.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m, stack)
        stack.pop()
        state[n] = 2

    for n in sorted(edges):
        if n not in state:
            visit(n, [])
    return found


def main():
    edges = graph()
    if "--dot" in sys.argv:
        print("digraph modules {")
        for a in sorted(edges):
            for b in sorted(edges[a]):
                print(f'  "{a}" -> "{b}";')
        print("}")
        return 0
    for a in sorted(edges):
        print(f"{a} -> {', '.join(sorted(edges[a]))}")
    found = cycles(edges)
    if not found:
        print("no cycle")
        return 0
    for c in found:
        print("cycle: " + " -> ".join(c))
    return 1


if __name__ == "__main__":
    sys.exit(main())
