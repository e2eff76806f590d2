"""Helpers for tests that look into a report's call tree (the JSON schema)."""
from __future__ import annotations

from typing import Any, Iterator

Node = dict[str, Any]


def name_of(func: Any) -> str:
    """The function name a report shows for `func`: its qualified name
    (co_qualname, CPython 3.11+), or its bare name on older versions, whose
    code objects do not know their qualified name."""
    code = func.__code__
    return getattr(code, "co_qualname", code.co_name)


def walk(node: Node, depth: int = 0) -> Iterator[tuple[Node, int]]:
    """Every node with its depth (root = 0), without recursion."""
    stack = [(node, depth)]
    while stack:
        n, d = stack.pop()
        yield n, d
        stack.extend((c, d + 1) for c in reversed(n["children"]))


def find(root: Node, function: str) -> list[Node]:
    """All nodes whose function (qualname or label) is `function`."""
    return [n for n, _ in walk(root) if n["function"] == function]


def functions(root: Node) -> set[str]:
    return {n["function"] for n, _ in walk(root)}


def _subtree_sum(root: Node, function: str, field: str) -> float:
    """`field` summed over the subtrees of `function`, nested calls of it
    counted once."""
    total = 0.0
    stack = [(root, False)]
    while stack:
        n, inside = stack.pop()
        hit = n["function"] == function
        if hit and not inside:
            total += n[field]
        stack.extend((c, inside or hit) for c in n["children"])
    return total


def total_wall(root: Node, function: str) -> float:
    """Wall time under `function`, counting nested calls of it once."""
    return _subtree_sum(root, function, "wall_s")


def self_cpu_under(root: Node, function: str) -> float:
    """CPU time of the subtree(s) of `function`, counted once."""
    return _subtree_sum(root, function, "cpu_s")


def path_to(root: Node, function: str) -> list[str] | None:
    """Functions from the root down to the first node named `function`."""
    stack: list[tuple[Node, list[str]]] = [(root, [root["function"]])]
    while stack:
        n, path = stack.pop()
        if n["function"] == function:
            return path
        stack.extend((c, path + [c["function"]]) for c in n["children"])
    return None


def max_depth(root: Node) -> int:
    return max(d for _, d in walk(root))
