"""Build script for minidl's compiled core.

Every ``minidl/_core/*.pyx`` becomes an extension module. The C kernels in ``csrc/`` are
compiled into ``minidl._core._backend`` only; other Cython modules reach the GEMM through
``_backend.pxd`` (Cython's cross-module C API), so there is exactly one copy of the kernel
dispatch table and of the thread setting in a process.

OpenMP is detected by test-compiling a small program. A compiler without it gives a serial
build and a warning, never a failed install. There is no ``-march=native``: each ISA's
micro-kernel carries its own ``target`` attribute and is chosen at import from cpuid.
"""
import glob
import os
import shutil
import tempfile
import warnings

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

OPENMP_PROBE = r"""
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return n > 0 ? 0 : 1;
}
"""


def compiler_supports_openmp(compiler, flag):
    """Compile and link a tiny OpenMP program with ``flag``; True when both succeed."""
    tmp = tempfile.mkdtemp(prefix="minidl-omp-")
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(OPENMP_PROBE)
        objects = compiler.compile([src], output_dir=tmp, extra_postargs=[flag])
        compiler.link_executable(objects, "probe", output_dir=tmp, extra_postargs=[flag])
        return True
    except Exception:  # any compile or link failure means: no usable OpenMP
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExtWithOpenMP(build_ext):
    """build_ext that adds optimisation flags and OpenMP when the compiler has it."""

    def build_extensions(self):
        ctype = self.compiler.compiler_type
        if ctype == "msvc":
            base, omp_flag, omp_link = ["/O2"], "/openmp", []
        else:
            base = ["-O3", "-fno-math-errno", "-Wno-unused-function"]
            omp_flag, omp_link = "-fopenmp", ["-fopenmp"]
        openmp = os.environ.get("MINIDL_NO_OPENMP") != "1" and compiler_supports_openmp(
            self.compiler, omp_flag)
        if not openmp:
            warnings.warn("minidl: the C compiler has no usable OpenMP; building a serial "
                          "(single-thread) core.", stacklevel=1)
        for ext in self.extensions:
            ext.extra_compile_args = base + ([omp_flag] if openmp else [])
            ext.extra_link_args = omp_link if openmp else []
            ext.define_macros = list(ext.define_macros) + [("MDL_HAVE_OPENMP", "1" if openmp else "0")]
        super().build_extensions()


def extensions():
    csrc = sorted(glob.glob(os.path.join("csrc", "*.c")))
    csrc_headers = sorted(glob.glob(os.path.join("csrc", "*.h")) + glob.glob(os.path.join("csrc", "*.inc")))
    exts = []
    for pyx in sorted(glob.glob(os.path.join("minidl", "_core", "*.pyx"))):
        name = pyx[:-len(".pyx")].replace(os.sep, ".")
        is_backend = name == "minidl._core._backend"
        exts.append(Extension(
            name, [pyx] + (csrc if is_backend else []),
            depends=csrc_headers if is_backend else [],
            include_dirs=[numpy.get_include(), "csrc"],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        ))
    return cythonize(exts, language_level=3, compiler_directives={
        "boundscheck": False, "wraparound": False, "cdivision": True,
        "initializedcheck": False, "embedsignature": True,
    })


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExtWithOpenMP})
