"""Helpers of tests/install/smoke.sh (run with its build-tools venv).

    dist.py contents DIST_DIR       checks the sdist and the wheel in DIST_DIR
    dist.py cibw KEY [NAME=VALUE]   prints [tool.cibuildwheel] KEY from
                                    pyproject.toml, placeholders {NAME} filled

`cibw` is how the local run does exactly what cibuildwheel is configured to
do: the same build environment, repair command, test requirements and test
command, read from the one place they are written.
"""
from __future__ import annotations

import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: What the wheel must hold (besides the compiled engine) and the sdist too.
PACKAGE_FILES = ["reqprof/__init__.py", "reqprof/py.typed", "reqprof/_core.pyi",
                 "reqprof/viewer/template.html", "reqprof/viewer/viewer.css",
                 "reqprof/viewer/model.js", "reqprof/viewer/app.js"]


def fail(message: str) -> None:
    sys.exit(f"dist: FAILED: {message}")


def contents(dist: Path) -> None:
    [wheel] = dist.glob("*.whl")
    [sdist] = dist.glob("*.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    missing = [f for f in PACKAGE_FILES if f not in names]
    if missing:
        fail(f"{wheel.name} lacks {missing}")
    if not any(n.startswith("reqprof/_core.") and n.endswith(".so") for n in names):
        fail(f"{wheel.name} has no compiled reqprof._core")
    sources = [n for n in names if n.endswith((".c", ".h"))]
    if sources:
        fail(f"{wheel.name} ships C sources: {sources}")
    print(f"dist: ok: {wheel.name}: {len(names)} files, the package, its engine, "
          "py.typed, the stub and the viewer, no C sources")

    top = sdist.name[: -len(".tar.gz")]
    members = set(tarfile.open(sdist).getnames())
    core = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "src/reqprof/_core").iterdir()
                  if p.suffix in (".c", ".h"))
    wanted = ["setup.py", "pyproject.toml", "README.md", *core,
              *("src/" + f for f in PACKAGE_FILES)]
    missing = [f for f in wanted if f"{top}/{f}" not in members]
    if missing:
        fail(f"{sdist.name} lacks {missing}")
    stray = sorted(m for m in members if m.endswith((".so", ".o", ".pyc")) or f"{top}/tests/" in m)
    if stray:
        fail(f"{sdist.name} holds build products or tests: {stray}")
    print(f"dist: ok: {sdist.name}: {len(members)} entries, every C source and header, "
          "no build products")


def cibw(key: str, values: list[str]) -> None:
    try:
        import tomllib
    except ImportError:          # Python < 3.11: smoke.sh installs tomli
        import tomli as tomllib
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["cibuildwheel"]
    value = config[key]
    if isinstance(value, dict):        # environment: NAME=VALUE lines
        value = "\n".join(f"{k}={v}" for k, v in value.items())
    elif isinstance(value, list):      # test-requires: one a line
        value = "\n".join(value)
    for item in values:
        name, _, filled = item.partition("=")
        value = value.replace("{" + name + "}", filled)
    print(value)


if __name__ == "__main__":
    if sys.argv[1:2] == ["contents"] and len(sys.argv) == 3:
        contents(Path(sys.argv[2]))
    elif sys.argv[1:2] == ["cibw"] and len(sys.argv) >= 3:
        cibw(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)
