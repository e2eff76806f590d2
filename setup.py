"""Builds the C extension reqprof._core (everything else is in pyproject.toml).

REQPROF_SANITIZE=1 builds it with AddressSanitizer and UBSan (make test-asan);
REQPROF_FAULTS=1 compiles in the fault-injection hooks used by the tests.
"""
import glob
import os

from setuptools import Extension, setup

CORE = "src/reqprof/_core"

cflags = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-Wno-missing-field-initializers",
          "-fvisibility=hidden", "-D_GNU_SOURCE"]
ldflags = ["-pthread"]
if os.environ.get("REQPROF_SANITIZE") == "1":
    san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
           "-fno-omit-frame-pointer", "-O1", "-g"]
    cflags += san
    ldflags += san
else:
    cflags += ["-O2"]
if os.environ.get("REQPROF_FAULTS") == "1":
    cflags.append("-DRP_FAULTS=1")

setup(
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
