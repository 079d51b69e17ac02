"""Build script for minidl's compiled core.

Every ``minidl/_core/*.pyx`` becomes an extension module. The C kernels in ``csrc/`` are
one shared library, ``minidl/_core/libminidl_core.so``, built first and linked by every
module (found beside them through an ``$ORIGIN`` run path), so there is exactly one copy of
the kernel tables, of the thread setting and of the scratch buffers in a process, and the C
API is declared once for Cython (``_backend.pxd``) with no forwarding wrappers. Only what
``csrc/minidl.h`` declares is exported from the library.

OpenMP is detected by test-compiling a small program. A compiler without it gives a serial
build and a warning, never a failed install. There is no ``-march=native``: each ISA's
version of a kernel carries its own ``target`` attribute, and the table of one ISA's versions
(csrc/kernels.h) is chosen at import from cpuid, or by ``MINIDL_ARCH``.

FMA contraction is off (``-ffp-contract=off``): a kernel that wants a fused multiply-add
writes one, so results never depend on what the optimiser chose to fuse, at any level.

Environment (GCC and clang):
    MINIDL_OPT: optimisation level, ``0`` to ``3`` (default ``3``). Results are the same bits
        at every level; a lower one is for debugging and the sanitizer build.
    MINIDL_SANITIZE: sanitizers to build with, e.g. ``address,undefined`` (``.ci/sanitize``);
        adds ``-fno-sanitize-recover=undefined`` so that undefined behaviour stops the run.
    MINIDL_DEBUG: ``1`` keeps debug information and symbols (by default the modules are
        built without and stripped, which keeps the install small).
"""
import glob
import os
import shutil
import sys
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor

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
        link = []
        if ctype == "msvc":
            base, omp_flag, omp_link = ["/O2"], "/openmp", []
        else:
            level = os.environ.get("MINIDL_OPT", "3").strip()
            if level not in ("0", "1", "2", "3"):
                raise ValueError(f"MINIDL_OPT must be 0, 1, 2 or 3; received MINIDL_OPT={level!r}.")
            base = [f"-O{level}", "-ffp-contract=off", "-fno-math-errno", "-Wno-unused-function"]
            sanitize = os.environ.get("MINIDL_SANITIZE", "").strip()
            if sanitize:
                flags = [f"-fsanitize={sanitize}", "-fno-sanitize-recover=undefined",
                         "-fno-omit-frame-pointer", "-g"]
                base += flags
                link += flags
            elif os.environ.get("MINIDL_DEBUG") != "1":
                # No debug information, symbols stripped at link time, unused code left
                # out, only the module's init function exported: the modules are a sixth of
                # their size, and no slower.
                base += ["-g0", "-fvisibility=hidden", "-ffunction-sections", "-fdata-sections",
                         "-fno-asynchronous-unwind-tables"]
                link += ["-s", "-Wl,--gc-sections"]
            omp_flag, omp_link = "-fopenmp", ["-fopenmp"]
        openmp = os.environ.get("MINIDL_NO_OPENMP") != "1" and compiler_supports_openmp(
            self.compiler, omp_flag)
        if not openmp:
            warnings.warn("minidl: the C compiler has no usable OpenMP; building a serial "
                          "(single-thread) core.", stacklevel=1)
        compile_args = base + ([omp_flag] if openmp else [])
        link_args = link + (omp_link if openmp else [])
        macros = [("MDL_HAVE_OPENMP", "1" if openmp else "0")]
        lib_dir = self.build_core_library(compile_args, link_args, macros)
        for ext in self.extensions:
            ext.extra_compile_args = compile_args
            ext.extra_link_args = link_args
            ext.define_macros = list(ext.define_macros) + macros
            if ext.name != SHARED_UTILITY:
                ext.libraries = list(ext.libraries) + [CORE_LIBRARY]
                ext.library_dirs = list(ext.library_dirs) + [lib_dir]
                ext.runtime_library_dirs = list(ext.runtime_library_dirs) + [RUN_PATH]
        super().build_extensions()

    def copy_extensions_to_source(self):
        """In-place builds (``--inplace``, editable installs) are built in build/ and then
        copied beside the sources: the library goes with the modules."""
        super().copy_extensions_to_source()
        built = os.path.join(self.build_lib, "minidl", "_core")
        lib_name = self.compiler.library_filename(CORE_LIBRARY, lib_type="shared")
        package_dir = self.get_finalized_command("build_py").get_package_dir("minidl._core")
        self.copy_file(os.path.join(built, lib_name), os.path.join(package_dir, lib_name))

    def build_core_library(self, compile_args, link_args, macros):
        """Compile csrc/*.c into the shared library beside the extension modules (in place
        or in build/); returns its folder. Skipped when it is newer than every C source and
        header and was built with the same flags (MINIDL_OPT, MINIDL_SANITIZE, ...), unless
        --force."""
        lib_dir = os.path.dirname(self.get_ext_fullpath("minidl._core._backend"))
        lib_name = self.compiler.library_filename(CORE_LIBRARY, lib_type="shared")
        target = os.path.join(lib_dir, lib_name)
        stamp = os.path.join(self.build_temp, CORE_LIBRARY + ".flags")
        flags = repr((compile_args, link_args, macros))
        inputs = CSRC + CSRC_HEADERS + [__file__]
        if (not self.force and os.path.exists(target) and os.path.exists(stamp)
                and os.path.getmtime(target) >= max(os.path.getmtime(f) for f in inputs)):
            with open(stamp) as f:
                if f.read() == flags:
                    return lib_dir
        os.makedirs(lib_dir, exist_ok=True)
        os.makedirs(self.build_temp, exist_ok=True)

        def compile_one(source):
            return self.compiler.compile([source], output_dir=self.build_temp, macros=macros,
                                         include_dirs=["csrc"], extra_postargs=compile_args,
                                         depends=CSRC_HEADERS)
        with ThreadPoolExecutor(max_workers=self.parallel or 1) as pool:
            objects = [obj for objs in pool.map(compile_one, CSRC) for obj in objs]
        soname = [] if sys.platform == "darwin" else [f"-Wl,-soname,{lib_name}"]
        self.compiler.link_shared_object(objects, lib_name, output_dir=lib_dir,
                                         libraries=["m"], extra_postargs=link_args + soname)
        with open(stamp, "w") as f:
            f.write(flags)
        return lib_dir


CSRC = sorted(glob.glob(os.path.join("csrc", "*.c")))
CSRC_HEADERS = sorted(glob.glob(os.path.join("csrc", "*.h")) + glob.glob(os.path.join("csrc", "*.inc")))
CORE_LIBRARY = "minidl_core"
# Where the modules find the library at run time: their own folder.
RUN_PATH = "@loader_path" if sys.platform == "darwin" else "$ORIGIN"


def extensions():
    exts = []
    for pyx in sorted(glob.glob(os.path.join("minidl", "_core", "*.pyx"))):
        name = pyx[:-len(".pyx")].replace(os.sep, ".")
        exts.append(Extension(
            name, [pyx],
            depends=CSRC_HEADERS,   # the modules include minidl.h and exact_math.h
            include_dirs=[numpy.get_include(), "csrc"],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        ))
    # Cython's run-time helpers (memoryviews, error handling, type checks) go into one
    # shared module instead of a copy in each of the others: a third of the install.
    exts.append(Extension(SHARED_UTILITY, sources=[], include_dirs=[numpy.get_include()]))
    return cythonize(exts, language_level=3, shared_utility_qualified_name=SHARED_UTILITY,
                     compiler_directives={
                         "boundscheck": False, "wraparound": False, "cdivision": True,
                         "initializedcheck": False, "embedsignature": True,
                     })


SHARED_UTILITY = "minidl._core._cyutility"


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExtWithOpenMP})
