"""Workloads that stress a profiler's memory: deep recursion, and a call
tree with as many distinct paths as samples allow (100,000 distinct
functions called in random chains)."""
from __future__ import annotations

import random
import sys
import time
import types
from typing import Callable


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        for i in range(50):
            x += i


def recurse(depth: int, seconds: float) -> None:
    if depth > 0:
        recurse(depth - 1, seconds)
    else:
        spin(seconds)


def deep_recursion(depth: int, seconds: float) -> Callable[[], None]:
    """`depth` nested Python calls of one function, then `seconds` of work."""
    if sys.getrecursionlimit() < depth + 100:
        sys.setrecursionlimit(depth + 100)
    return lambda: recurse(depth, seconds)


def _template(d: int) -> None:
    if d:
        FUNCS[NEXT() % N](d - 1)
    else:
        spin(LEAF_S)


FUNCS: list[Callable[[int], None]] = []
N = 1
LEAF_S = 0.0002
NEXT: Callable[[], int] = random.Random(5).getrandbits.__call__  # replaced below


def distinct_functions(count: int, chain: int, seconds: float) -> Callable[[], None]:
    """`count` distinct functions (each its own code object); the work calls
    random chains of `chain` of them, each ending in a short leaf, until
    `seconds` have passed, so nearly every sample is a new call path."""
    global N, NEXT
    code = _template.__code__
    FUNCS.clear()
    for i in range(count):
        name = f"fn_{i:06d}"
        FUNCS.append(types.FunctionType(code.replace(co_name=name, co_qualname=name), globals(), name))
    N = count
    rng = random.Random(11)
    NEXT = lambda: rng.getrandbits(32)  # noqa: E731

    def run() -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            FUNCS[NEXT() % N](chain)

    return run
