"""Builds the C extension reqprof._core (everything else is in pyproject.toml).

Environment variables, for development and CI only (a user's build sets none):
REQPROF_WERROR=1 makes compiler warnings errors (`make` and `.ci/run` set it);
REQPROF_SANITIZE=1 builds with AddressSanitizer and UBSan (make test-asan);
REQPROF_FAULTS=1 compiles in the fault-injection hooks used by the tests.

Before compiling, the build checks that it has what it needs (a working C
compiler, Python's headers, zlib's header) and, when something is missing,
stops with one sentence naming the package to install.
"""
import glob
import os
import shutil
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CORE = "src/reqprof/_core"

cflags = ["-std=c11", "-Wall", "-Wextra", "-Wno-missing-field-initializers",
          "-fvisibility=hidden", "-D_GNU_SOURCE"]
ldflags = ["-pthread"]
if os.environ.get("REQPROF_WERROR") == "1":
    cflags.append("-Werror")
if os.environ.get("REQPROF_SANITIZE") == "1":
    san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
           "-fno-omit-frame-pointer", "-O1", "-g"]
    cflags += san
    ldflags += san
else:
    cflags += ["-O2"]
if os.environ.get("REQPROF_FAULTS") == "1":
    cflags.append("-DRP_FAULTS=1")

PY = "%d.%d" % sys.version_info[:2]

# What a build needs: (probe source, what, Debian/Ubuntu, Fedora, Alpine, macOS).
NEEDS = [
    ("int main(void) { return 0; }\n", "a C compiler",
     "gcc", "gcc", "gcc musl-dev", "xcode-select --install"),
    ("#include <Python.h>\n", f"the headers of Python {PY}",
     f"python{PY}-dev", f"python{PY}-devel", "python3-dev",
     "they come with Python from python.org or Homebrew"),
    ("#include <zlib.h>\n", "the zlib headers",
     "zlib1g-dev", "zlib-devel", "zlib-dev", "xcode-select --install"),
]


class BuildExt(build_ext):
    """build_ext that first compiles one small probe per prerequisite, so
    that a missing one is reported as what to install, not as a compiler
    error or a traceback."""

    def build_extensions(self) -> None:
        self._check_prerequisites()
        super().build_extensions()

    def _check_prerequisites(self) -> None:
        from setuptools.errors import PlatformError

        include_dirs = list(self.include_dirs or [])
        for ext in self.extensions:
            include_dirs += ext.include_dirs
        cc = self.compiler.compiler_so[0] if getattr(self.compiler, "compiler_so", None) else "cc"
        for source, what, debian, fedora, alpine, macos in NEEDS:
            if self._compiles(source, include_dirs):
                continue
            if source == NEEDS[0][0]:
                found = "is not installed" if shutil.which(cc) is None else "cannot compile an empty C file"
                why = f"{what}, and {cc!r} {found}: install one"
            else:
                where = ", ".join(include_dirs) or "its include path"
                why = f"{what}, and {cc!r} did not find them in {where}: install them"
            raise PlatformError(
                f"reqprof: building its C extension needs {why} "
                f"(Debian/Ubuntu: apt install {debian}; Fedora: dnf install {fedora}; "
                f"Alpine: apk add {alpine}; macOS: {macos}) and build again, "
                f"or install a prebuilt reqprof wheel.")

    def _compiles(self, source: str, include_dirs: list) -> bool:
        """Whether `source` compiles; the compiler's own output is dropped
        (the message above says what it means)."""
        from setuptools.errors import CompileError

        tmp = tempfile.mkdtemp(prefix="reqprof-probe-")
        saved = [os.dup(1), os.dup(2)]
        try:
            probe = os.path.join(tmp, "probe.c")
            with open(probe, "w") as f:
                f.write(source)
            with open(os.devnull, "w") as null:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(null.fileno(), 1)
                os.dup2(null.fileno(), 2)
                try:
                    self.compiler.compile([probe], output_dir=tmp, include_dirs=include_dirs)
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os.dup2(saved[0], 1)
                    os.dup2(saved[1], 2)
            return True
        except (CompileError, OSError):
            return False
        finally:
            for fd in saved:
                os.close(fd)
            shutil.rmtree(tmp, ignore_errors=True)


setup(
    cmdclass={"build_ext": BuildExt},
    ext_modules=[
        Extension(
            "reqprof._core",
            sources=sorted(glob.glob(f"{CORE}/*.c")),
            depends=sorted(glob.glob(f"{CORE}/*.h")),
            extra_compile_args=cflags,
            extra_link_args=ldflags,
            libraries=["z"],    # zlib: the pprof writer gzips its output
        )
    ],
)
