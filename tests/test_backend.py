"""The backend's public controls: thread count, architecture selection (in process and through
MINIDL_ARCH at import), backend_info / show_config, and behaviour under Python threads (the
GIL is released while a kernel runs, and thread-local scratch memory is not leaked).
"""
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings

import numpy as np
import pytest

import minidl
from minidl._core import _backend
from minidl._core._backend import gemm

ALL_ARCHS = ("generic", "avx2", "avx512")
NUM_PROCS = minidl.backend_info()["num_procs"]
MAX_THREADS = minidl.backend_info()["max_threads"]
OPENMP = minidl.backend_info()["openmp"]


@pytest.fixture
def restore_threads():
    saved = minidl.get_num_threads()
    try:
        yield
    finally:
        minidl.set_num_threads(saved)


@pytest.fixture
def restore_arch():
    previous = _backend.get_arch()  # 'auto', or what MINIDL_ARCH chose for this run
    try:
        yield
    finally:
        _backend.set_arch(previous)


# ---- threads -----------------------------------------------------------------------------------

@pytest.mark.skipif(not OPENMP or MAX_THREADS < 8, reason="needs 8 threads (4 per processor)")
def test_threads_follow_the_size_of_a_call(restore_threads):
    minidl.set_num_threads(8)
    per_thread = _backend.WORK_PER_THREAD
    assert _backend.threads_for(per_thread - 1, 10**9) == 1          # too small for two
    assert _backend.threads_for(2 * per_thread, 10**9) == 2
    assert _backend.threads_for(5.5 * per_thread, 10**9) == 5
    assert _backend.threads_for(1e12, 10**9) == 8                   # capped by the setting
    assert _backend.threads_for(1e12, 3) == 3                       # one thread per piece
    assert _backend.threads_for(1e12, 0) == 1
    minidl.set_num_threads(1)
    assert _backend.threads_for(1e12, 10**9) == 1


@pytest.mark.parametrize("n", sorted({1, 2, 3, MAX_THREADS}))
def test_set_num_threads_positive(restore_threads, n):
    minidl.set_num_threads(n)
    assert minidl.get_num_threads() == n
    assert minidl.backend_info()["num_threads"] == n


def test_set_num_threads_accepts_numpy_integers(restore_threads):
    minidl.set_num_threads(np.int64(2))
    assert minidl.get_num_threads() == 2
    assert type(minidl.get_num_threads()) is int


@pytest.mark.parametrize("back", range(1, NUM_PROCS + 1))
def test_set_num_threads_counts_back_from_processors(restore_threads, back):
    """-1 is every processor, -2 all but one, ... -num_procs is one."""
    minidl.set_num_threads(-back)
    assert minidl.get_num_threads() == NUM_PROCS + 1 - back


@pytest.mark.parametrize("n", [0, -NUM_PROCS - 1, -1000])
def test_set_num_threads_rejects_out_of_range(restore_threads, n):
    before = minidl.get_num_threads()
    with pytest.raises(ValueError, match=f"n={n}"):
        minidl.set_num_threads(n)
    assert minidl.get_num_threads() == before


def test_thread_bound_is_four_per_processor():
    assert MAX_THREADS == 4 * NUM_PROCS


@pytest.mark.parametrize("n", [MAX_THREADS + 1, 4096, 65536, 2**40])
def test_set_num_threads_rejects_more_than_the_bound(restore_threads, n):
    """Above the bound libgomp overflowed the stack (65536: a segfault) or ended the process
    when it could not create a thread; now the call names the bound and the value."""
    before = minidl.get_num_threads()
    with pytest.raises(ValueError, match=rf"n <= {MAX_THREADS} .*received n={n}\."):
        minidl.set_num_threads(n)
    assert minidl.get_num_threads() == before


@pytest.mark.parametrize("n", [True, False, 1.0, 2.5, "2", None, [2]],
                         ids=lambda v: f"{type(v).__name__}-{v!r}")
def test_set_num_threads_rejects_non_integers(restore_threads, n):
    before = minidl.get_num_threads()
    with pytest.raises(TypeError, match=type(n).__name__):
        minidl.set_num_threads(n)
    assert minidl.get_num_threads() == before


def test_set_num_threads_warns_only_without_openmp(restore_threads):
    """A serial build says so when asked for threads; an OpenMP build stays quiet."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        minidl.set_num_threads(2)
    runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    if minidl.backend_info()["openmp"]:
        assert runtime == []
    else:
        assert runtime and "OpenMP" in str(runtime[0].message)


def _run_python(code, **env_changes):
    """Run code in a fresh interpreter that imports this same minidl; return the result."""
    env = dict(os.environ)
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(minidl.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in [env.get("PYTHONPATH")] if p])
    # Run outside the source tree: from the repository root, `import minidl` would find the
    # uncompiled sources instead of the installed package.
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=tempfile.gettempdir(),
                          timeout=120)


@pytest.mark.parametrize("omp", ["1", "3"])
def test_default_thread_count_comes_from_omp_num_threads(omp):
    result = _run_python("import minidl; print(minidl.get_num_threads())", OMP_NUM_THREADS=omp)
    assert result.returncode == 0, result.stderr
    expected = int(omp) if minidl.backend_info()["openmp"] else 1
    assert int(result.stdout.split()[-1]) == expected


# A GEMM of 2^24 multiply-adds runs in parallel whenever more than one thread is set.
_PARALLEL_GEMM = ("import numpy as np, minidl\n"
                  "a = np.ones((256, 256), np.float32)\n"
                  "assert (minidl.ops.gemm(a, a) == 256).all()\n"
                  "print(minidl.get_num_threads())\n")


def test_omp_num_threads_above_the_bound_is_clamped_with_a_warning():
    result = _run_python(_PARALLEL_GEMM, OMP_NUM_THREADS="65536")
    assert result.returncode == 0, result.stderr
    if OPENMP:
        assert int(result.stdout.split()[-1]) == MAX_THREADS
        assert "RuntimeWarning" in result.stderr
        assert "OMP_NUM_THREADS='65536'" in result.stderr
        assert f"bound of {MAX_THREADS}" in result.stderr


def test_threads_the_system_cannot_start_never_end_the_process():
    """A thread stack of about 4 PiB cannot be mapped in any x86-64 or arm64 address space,
    so every thread creation fails, as it does at the process or user thread limit. libgomp
    then ended the process with status 1 ("Thread creation failed") at the first parallel
    GEMM; now import uses one thread with a warning and set_num_threads raises."""
    code = _PARALLEL_GEMM + (
        "try:\n"
        "    minidl.set_num_threads(2)\n"
        "except RuntimeError as e:\n"
        "    print('refused:', e)\n"
        "print(minidl.get_num_threads())\n")
    result = _run_python(code, OMP_NUM_THREADS="2", OMP_STACKSIZE="4000000G")
    assert result.returncode == 0, result.stderr
    assert "Thread creation failed" not in result.stderr
    if OPENMP:
        lines = result.stdout.splitlines()
        assert lines[0] == "1" and lines[-1] == "1"
        assert "only 1 of 2 threads could be started" in result.stderr
        assert "refused: set_num_threads: only 1 of 2 threads" in result.stdout
        assert "n=2" in result.stdout


# ---- backend_info and show_config --------------------------------------------------------------

def test_backend_info_keys_and_types():
    info = minidl.backend_info()
    assert set(info) == {"arch", "supported_archs", "kernels", "kernel_versions", "openmp",
                         "num_threads", "max_threads", "num_procs", "compiler"}
    assert isinstance(info["arch"], str) and info["arch"] in info["supported_archs"]
    archs = info["supported_archs"]
    assert isinstance(archs, tuple) and all(isinstance(a, str) for a in archs)
    assert archs[0] == "generic"
    assert list(archs) == [a for a in ALL_ARCHS if a in archs]  # known names, best last
    assert isinstance(info["kernels"], str) and info["kernels"].startswith(info["arch"])
    assert info["kernel_versions"] == {family: info["arch"] for family in
                                       ("gemm", "conv_pool", "optimizers", "pooling", "patches",
                                        "recurrent", "batchnorm")}
    assert type(info["openmp"]) is bool
    assert type(info["num_threads"]) is int and 1 <= info["num_threads"] <= info["max_threads"]
    assert type(info["num_procs"]) is int and info["num_procs"] >= 1
    assert isinstance(info["compiler"], str) and info["compiler"]
    if not info["openmp"]:
        assert info["num_procs"] == 1


def test_default_arch_is_the_best_supported():
    """Unless MINIDL_ARCH says otherwise, import picks the most capable kernels."""
    if os.environ.get("MINIDL_ARCH", "").strip():
        expected = os.environ["MINIDL_ARCH"].strip().lower()
    else:
        expected = _backend.supported_archs()[-1]
    assert _backend.get_arch() == expected


@pytest.mark.parametrize("arch", _backend.supported_archs())
def test_backend_info_follows_set_arch(restore_arch, arch):
    """The kernel description names the active table and its sgemm register tile."""
    tiles = {"generic": "4x8", "avx2": "6x16", "avx512": "12x32"}
    assert _backend.set_arch(arch) == arch
    info = minidl.backend_info()
    assert info["arch"] == arch == _backend.get_arch()
    assert info["kernels"].startswith(arch) and f"sgemm {tiles[arch]}" in info["kernels"]
    assert set(info["kernel_versions"].values()) == {arch}   # every family follows


def test_show_config_prints_every_key(capsys):
    minidl.show_config()
    printed = capsys.readouterr().out
    info = minidl.backend_info()
    for key in info:
        assert key in printed
    assert ", ".join(info["supported_archs"]) in printed
    assert info["compiler"] in printed


# ---- set_arch -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["auto", None])
def test_set_arch_auto_picks_the_best(restore_arch, name):
    _backend.set_arch("generic")
    assert _backend.set_arch(name) == _backend.supported_archs()[-1]
    assert _backend.get_arch() == _backend.supported_archs()[-1]


def test_set_arch_is_case_insensitive(restore_arch):
    assert _backend.set_arch("GENERIC") == "generic"


@pytest.mark.parametrize("name", ["bogus", "", "sse2", "avx-512", 3, b"avx2"])
def test_set_arch_rejects_unknown_names(restore_arch, name):
    before = _backend.get_arch()
    with pytest.raises(ValueError, match="generic, avx2, avx512") as info:
        _backend.set_arch(name)
    assert repr(name) in str(info.value)
    assert _backend.get_arch() == before


@pytest.mark.parametrize("name", [a for a in ALL_ARCHS if a not in _backend.supported_archs()]
                         or [pytest.param("none", marks=pytest.mark.skip(
                             reason="this CPU runs every architecture minidl has"))])
def test_set_arch_rejects_unsupported(restore_arch, name):
    before = _backend.get_arch()
    with pytest.raises(ValueError, match="cannot run"):
        _backend.set_arch(name)
    assert _backend.get_arch() == before


# ---- MINIDL_ARCH at import --------------------------------------------------------------------

_REPORT = ("import numpy as np, minidl\n"
           "from minidl._core import _backend\n"
           "a = np.arange(60.0).reshape(6, 10); b = np.ones((10, 7))\n"
           "assert np.array_equal(minidl.ops.gemm(a, b), a @ b)\n"
           "print(_backend.get_arch(), minidl.backend_info()['kernels'].split(':')[0],\n"
           "      *sorted(set(_backend.kernel_versions().values())))\n")


@pytest.mark.parametrize("arch", _backend.supported_archs())
def test_minidl_arch_selects_the_kernels(arch):
    """The architecture, the GEMM's table and every family's version (kernel_versions)."""
    result = _run_python(_REPORT, MINIDL_ARCH=arch)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [arch, arch, arch]


@pytest.mark.parametrize("value", ["", "  ", None])
def test_minidl_arch_unset_or_blank_means_auto(value):
    result = _run_python(_REPORT, MINIDL_ARCH=value)
    assert result.returncode == 0, result.stderr
    best = _backend.supported_archs()[-1]
    assert result.stdout.split() == [best, best, best]


def test_minidl_arch_is_case_insensitive_and_trimmed():
    result = _run_python(_REPORT, MINIDL_ARCH=" Generic ")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["generic", "generic", "generic"]


def test_minidl_arch_unknown_fails_at_import():
    result = _run_python("import minidl", MINIDL_ARCH="bogus")
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "MINIDL_ARCH='bogus'" in result.stderr
    assert "generic, avx2, avx512" in result.stderr  # says what would have worked


@pytest.mark.parametrize("arch", [a for a in ALL_ARCHS if a not in _backend.supported_archs()]
                         or [pytest.param("none", marks=pytest.mark.skip(
                             reason="this CPU runs every architecture minidl has"))])
def test_minidl_arch_unsupported_fails_at_import(arch):
    result = _run_python("import minidl", MINIDL_ARCH=arch)
    assert result.returncode != 0
    assert "ImportError" in result.stderr and f"MINIDL_ARCH={arch!r}" in result.stderr
    assert "cannot run" in result.stderr


# ---- Python threads ---------------------------------------------------------------------------

def test_concurrent_gemms_from_python_threads_are_correct(restore_threads):
    """Several Python threads share the kernel table and the OpenMP runtime but each has its
    own packing buffers: results equal those computed one at a time, bit for bit."""
    minidl.set_num_threads(2)
    rng = np.random.default_rng(0)
    jobs = []
    for m, k, n, dtype in [(300, 400, 500, np.float32), (257, 300, 190, np.float64),
                           (32, 784, 64, np.float32), (1024, 64, 700, np.float32)]:
        a = rng.standard_normal((m, k)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
        jobs.append((a, b, gemm(a, b)))
    failures = []

    def worker(a, b, expected):
        out = np.empty_like(expected)
        for _ in range(4):
            gemm(a, b, out)
            if not np.array_equal(out, expected):
                failures.append((a.shape, b.shape))

    threads = [threading.Thread(target=worker, args=job) for job in jobs for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def _longest_stall_inside_gemm(a, b, out):
    """Run three gemms in a worker thread while this thread records timestamps in a tight
    loop; return (longest gap between timestamps inside a call, longest call)."""
    calls = []

    def worker():
        for _ in range(3):
            t0 = time.perf_counter()
            gemm(a, b, out)
            calls.append((t0, time.perf_counter()))

    thread = threading.Thread(target=worker)
    stamps = []
    thread.start()
    while thread.is_alive():
        stamps.append(time.perf_counter())
    thread.join()
    stamps = np.array(stamps)
    worst_gap = 0.0
    for t0, t1 in calls:
        inside = np.concatenate([[t0], stamps[(stamps > t0) & (stamps < t1)], [t1]])
        worst_gap = max(worst_gap, float(np.diff(inside).max()))
    return worst_gap, max(t1 - t0 for t0, t1 in calls)


def test_gil_is_released_during_gemm(restore_threads):
    """While one thread is inside a long gemm, another Python thread keeps running.

    Holding the GIL for a whole call would stall this thread for about the length of the
    call; releasing it leaves only scheduler-sized gaps. A busy machine can stall any thread
    now and then, so up to three attempts are made: a held GIL fails all of them.
    """
    minidl.set_num_threads(1)  # the gemm takes one core and leaves the other to the loop
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((900, 900)), rng.standard_normal((900, 900))
    out = np.empty((900, 900))
    attempts = []
    for _ in range(3):
        gap, call = _longest_stall_inside_gemm(a, b, out)
        assert call > 0.01, f"gemm too fast ({call:.4f} s) to tell GIL use apart"
        attempts.append(f"{gap * 1e3:.1f} ms stall in a {call * 1e3:.1f} ms call")
        if gap < 0.5 * call:
            return
    raise AssertionError("the GIL looks held during gemm: " + "; ".join(attempts))


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads Linux RSS")
def test_short_lived_threads_do_not_leak_scratch_memory():
    """Each Python thread that calls a packed gemm gets thread-local packing buffers; they must
    be given back when the thread ends (a server spawning threads per request would grow).

    40 threads x ~2 MiB of packing buffers each would add ~80 MiB if never freed.
    """
    page = os.sysconf("SC_PAGE_SIZE")

    def rss_mib():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page / 2**20

    a = np.ones((300, 500), np.float32)
    b = np.ones((500, 1000), np.float32)  # K * N * 4 = 2 MB: the packed path
    gemm(a, b)
    warm = threading.Thread(target=gemm, args=(a, b))  # first thread: allocator arenas
    warm.start()
    warm.join()
    before = rss_mib()
    for _ in range(40):
        t = threading.Thread(target=gemm, args=(a, b))
        t.start()
        t.join()
    grown = rss_mib() - before
    assert grown < 20, f"RSS grew by {grown:.0f} MiB over 40 short-lived threads"


@pytest.mark.parametrize("env, expected", [
    ({}, "3000"),                                   # a short spin by default
    ({"GOMP_SPINCOUNT": "5000"}, "5000"),           # the user's setting is kept
    ({"OMP_WAIT_POLICY": "passive"}, None),         # ... and so is their wait policy
])
def test_openmp_threads_spin_briefly_unless_the_user_chose(env, expected):
    unset = {"GOMP_SPINCOUNT": None, "OMP_WAIT_POLICY": None}
    result = _run_python("import os, minidl; print(os.environ.get('GOMP_SPINCOUNT'))",
                         **{**unset, **env})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(expected)


@pytest.mark.parametrize("env, chosen", [({"OMP_NUM_THREADS": None}, False),
                                         ({"OMP_NUM_THREADS": "2"}, True)])
def test_share_default_threads_lowers_only_a_count_the_user_did_not_choose(env, chosen):
    # minidl.distributed shares a host's processors among its ranks through this; a count
    # from OMP_NUM_THREADS or set_num_threads is the user's and stays.
    code = ("import minidl; from minidl._core import _backend as b\n"
            "n = minidl.get_num_threads()\n"
            "b.share_default_threads(1)\n"
            "chosen = b.user_chose_threads()\n"
            "print(chosen, minidl.get_num_threads() == (n if chosen else 1))\n"
            "minidl.set_num_threads(2)\n"
            "b.share_default_threads(1)\n"
            "print(b.user_chose_threads(), minidl.get_num_threads())\n")
    result = _run_python(code, **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(chosen), "True", "True", "2"]
