"""Building the extension from source (setup.py, through setuptools'
build_ext, as pip and `python -m build` run it): a missing prerequisite
stops the build with one sentence naming what to install, and warnings are
errors only when REQPROF_WERROR=1 asks (development and CI), never in a
user's build. The package itself (wheel, sdist, a fresh install) is tested
by `make test-install`."""
from __future__ import annotations

import os
import pprint
import shutil
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INSTALL_HINTS = ("Debian/Ubuntu: apt install", "Fedora: dnf install", "Alpine: apk add", "macOS:")


def build_ext(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`setup.py build_ext` of this checkout into tmp_path, with `env` added."""
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("REQPROF_WERROR", "REQPROF_SANITIZE", "REQPROF_FAULTS", "LD_PRELOAD")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--build-lib", str(tmp_path / "lib"),
         "--build-temp", str(tmp_path / "tmp"), "--force"],
        cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=300)


def assert_stops_with_one_sentence(proc: subprocess.CompletedProcess[str], needs: str) -> str:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: reqprof: building its C extension needs {needs}"), proc.stderr
    for hint in INSTALL_HINTS:
        assert hint in last, last
    assert last.endswith("or install a prebuilt reqprof wheel."), last
    return last


def test_a_missing_compiler_is_named_with_the_packages_that_bring_one(tmp_path: Path) -> None:
    proc = build_ext(tmp_path, CC=str(tmp_path / "no-such-cc"))
    last = assert_stops_with_one_sentence(proc, "a C compiler")
    assert f"'{tmp_path / 'no-such-cc'}' is not installed" in last
    assert "apt install gcc;" in last and "xcode-select --install" in last


def test_missing_python_headers_are_named_with_the_packages_that_bring_them(tmp_path: Path) -> None:
    # Python's build configuration with its include directory pointing at an
    # empty one: what a Python installed without its headers looks like to
    # setuptools (CPython reads this module instead of its own when
    # _PYTHON_SYSCONFIGDATA_NAME names it, as cross-builds do).
    name = sysconfig._get_sysconfigdata_name()  # type: ignore[attr-defined]
    config = dict(__import__(name).build_time_vars)
    empty = tmp_path / "include"
    empty.mkdir()
    config["INCLUDEPY"] = config["CONFINCLUDEPY"] = str(empty)
    (tmp_path / "_sysconfigdata_reqprof_test.py").write_text(
        f"build_time_vars = {pprint.pformat(config)}\n")
    proc = build_ext(tmp_path, PYTHONPATH=str(tmp_path),
                     _PYTHON_SYSCONFIGDATA_NAME="_sysconfigdata_reqprof_test")
    py = "%d.%d" % sys.version_info[:2]
    last = assert_stops_with_one_sentence(proc, f"the headers of Python {py}")
    assert str(empty) in last
    assert f"apt install python{py}-dev;" in last and f"dnf install python{py}-devel;" in last


def recording_compiler(tmp_path: Path) -> tuple[Path, Path]:
    """A compiler that records its arguments, compiles setup.py's probes
    with the real one and refuses anything else (so no build goes further
    than its first compile)."""
    real = shutil.which("cc") or shutil.which("gcc")
    if real is None:
        pytest.fail("no C compiler on PATH (cc or gcc)", pytrace=False)
    log = tmp_path / "cc.log"
    cc = tmp_path / "recording-cc"
    cc.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\n'
                  f'case "$*" in *probe.c*) exec "{real}" "$@";; esac\nexit 1\n')
    cc.chmod(cc.stat().st_mode | stat.S_IXUSR)
    return cc, log


@pytest.mark.parametrize("werror", [None, "1"])
def test_warnings_are_errors_only_when_asked(tmp_path: Path, werror: str | None) -> None:
    cc, log = recording_compiler(tmp_path)
    env = {"CC": str(cc)}
    if werror:
        env["REQPROF_WERROR"] = werror
    build_ext(tmp_path, **env)
    commands = [line for line in log.read_text().splitlines() if "_core/" in line]
    assert commands, log.read_text()
    assert ("-Werror" in commands[0].split()) == (werror == "1"), commands[0]
    assert "-Wall" in commands[0].split()
