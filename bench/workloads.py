"""The code the overhead benchmark runs: each workload is a function of no
arguments that takes a few hundred milliseconds on a current CPU, built once
by its factory (templates compiled, data generated) so that a timed run
measures only the work itself.

Workloads of optional packages (``OPTIONAL``: orjson, pydantic) are left out
of ``WORKLOADS`` when the package cannot be imported; ``MISSING`` says why,
for the benchmark to print."""
from __future__ import annotations

import json
import random
import re
from typing import Callable

Workload = Callable[[], object]


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def make_fib() -> Workload:
    """Call-heavy: fib(30), 1.6 million Python calls."""
    return lambda: fib(30)


def make_json() -> Workload:
    """JSON encode + decode of API-like records, then sorts with a Python key."""
    records = _records(2000, 1)

    def run() -> object:
        out = None
        for _ in range(12):
            text = json.dumps(records)
            decoded = json.loads(text)
            decoded.sort(key=lambda r: (r["address"]["city"], -r["score"]))
            out = sorted(decoded, key=lambda r: r["name"])
        return out

    return run


TEMPLATE = """\
{% macro row(item) -%}
<tr class="{{ loop_class(item) }}"><td>{{ item.id }}</td><td>{{ item.name|title }}</td>
<td>{{ "%.2f"|format(item.price) }}</td><td>{{ item.tags|join(", ") }}</td></tr>
{%- endmacro %}
<html><head><title>{{ title|e }}</title></head><body>
<h1>{{ title|upper }}</h1>
{% for group in groups %}
<h2>{{ group.name }} ({{ group.rows|length }})</h2>
<table>{% for item in group.rows if item.price > 1 %}{{ row(item) }}{% endfor %}</table>
{% endfor %}
</body></html>
"""


def make_jinja2() -> Workload:
    """A Jinja2 page: loops, a macro, filters, a global function."""
    import jinja2

    env = jinja2.Environment(autoescape=True)
    env.globals["loop_class"] = lambda item: "odd" if item["id"] % 2 else "even"
    template = env.from_string(TEMPLATE)
    rng = random.Random(2)
    groups = [
        {
            "name": f"group {g}",
            "rows": [
                {"id": i, "name": f"item <{i}>", "price": rng.uniform(0, 100),
                 "tags": ["x", "y", "z"][: rng.randint(1, 3)]}
                for i in range(100)
            ],
        }
        for g in range(20)
    ]

    def run() -> object:
        out = None
        for _ in range(5):
            out = template.render(title="Catalogue & prices", groups=groups)
        return out

    return run


def _records(n: int, seed: int) -> list[dict]:
    """API-like records: ids, names, floats, a list and a nested object."""
    rng = random.Random(seed)
    return [
        {
            "id": i,
            "name": "".join(rng.choice("abcdefghij") for _ in range(8)),
            "score": rng.random(),
            "tags": [rng.choice(("a", "b", "c", "d")) for _ in range(4)],
            "address": {"city": f"city{rng.randint(0, 99)}", "zip": f"{rng.randint(0, 99999):05d}"},
        }
        for i in range(n)
    ]


def _log_lines(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        f'10.0.{rng.randint(0, 255)}.{rng.randint(0, 255)} - - [29/Nov/2025:10:{rng.randint(0, 59):02d}:00] '
        f'"GET /api/v1/items/{rng.randint(1, 9999)}?page={rng.randint(1, 50)} HTTP/1.1" '
        f'{rng.choice((200, 200, 200, 404, 500))} {rng.randint(100, 99999)} user{rng.randint(0, 999)}@example.com'
        for _ in range(n)
    ]


def make_regex_findall() -> Workload:
    """Few, long C calls that hold the GIL: ``findall`` over a 600 kB log
    (each call runs for milliseconds without a Python frame)."""
    text = "\n".join(_log_lines(4000, 4))
    line_re = re.compile(r'^(\S+) \S+ \S+ \[([^\]]+)\] "(\w+) (\S+) [^"]+" (\d{3}) (\d+)', re.M)
    email_re = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")

    def run() -> object:
        n = 0
        for _ in range(6):
            n += len(line_re.findall(text)) + len(email_re.findall(text))
        return n

    return run


def make_orjson() -> Workload:
    """orjson encode + decode of the JSON workload's records: C calls of a
    fraction of a millisecond each, little Python between them."""
    import orjson

    records = _records(2000, 1)

    def run() -> object:
        out = None
        for _ in range(16):
            out = orjson.loads(orjson.dumps(records))
        return out

    return run


def make_pydantic() -> Workload:
    """pydantic v2 (pydantic-core): validate the records into models and
    serialise them back to JSON, a list of 2,000 at a time."""
    import pydantic

    class Address(pydantic.BaseModel):
        city: str
        zip: str

    class Record(pydantic.BaseModel):
        id: int
        name: str
        score: float
        tags: list[str]
        address: Address

    adapter = pydantic.TypeAdapter(list[Record])
    records = _records(2000, 1)

    def run() -> object:
        out = None
        for _ in range(4):
            models = adapter.validate_python(records)
            out = adapter.dump_json(models)
        return out

    return run


def make_regex() -> Workload:
    """Log parsing: findall, match with groups, sub with a Python callback."""
    lines = _log_lines(4000, 3)
    text = "\n".join(lines)
    line_re = re.compile(r'^(\S+) \S+ \S+ \[([^\]]+)\] "(\w+) (\S+) [^"]+" (\d{3}) (\d+)')
    email_re = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
    number_re = re.compile(r"\d+")

    def run() -> object:
        status: dict[str, int] = {}
        for _ in range(6):
            for line in lines:
                m = line_re.match(line)
                if m:
                    status[m.group(5)] = status.get(m.group(5), 0) + 1
            emails = email_re.findall(text)
            masked = number_re.sub(lambda m: "#" * len(m.group()), text[:200000])
        return status, len(emails), len(masked)

    return run


WORKLOADS: dict[str, Callable[[], Workload]] = {
    "fib(30)": make_fib,
    "json": make_json,
    "jinja2": make_jinja2,
    "regex": make_regex,
    "regex findall": make_regex_findall,
}
#: Workloads of packages that may not be installed: name, (factory, module).
OPTIONAL: dict[str, tuple[Callable[[], Workload], str]] = {
    "orjson": (make_orjson, "orjson"),
    "pydantic": (make_pydantic, "pydantic_core"),
}
#: Optional workloads left out: name -> why.
MISSING: dict[str, str] = {}


def _add_optional() -> None:
    import importlib

    for name, (factory, module) in OPTIONAL.items():
        try:
            importlib.import_module(module)
        except ImportError as exc:
            MISSING[name] = f"`{module}` is not importable ({exc}); see bench/requirements.txt"
        else:
            WORKLOADS[name] = factory


_add_optional()
