"""Data-parallel training over MPI (issue 19): speed-up with the number of ranks, and the
reproducible allreduce beside mpi4py's own.

Each benchmark drives one ``mpirun -np N`` job of bench/distributed_worker.py, started once
and kept for the session: a round is one command through a pipe to rank 0, the same global
work on every rank count, run by all ranks (one thread each) and ended by a barrier. So in a
group ``distributed-<workload>-<N>ranks`` the ratio of "1 rank" to "minidl" (N ranks) is the
speed-up in samples per second: 2 ranks that process the round twice as fast give 2.0.

    cnn32     the reference CNN, batch 32 per rank (2,048 images a round)
    mlp256    the reference MLP, batch 256 per rank (16,384 samples a round)
    mlp32     the reference MLP, batch 32 per rank (8,192 samples a round); also with the
              reduction forced onto messages ("minidl-messages"), to show what the
              shared-memory window gains on one machine
    allreduce 50 averages of the CNN's 225,034 float32 gradients: minidl's reproducible
              allreduce beside mpi4py's ``Allreduce`` (in place, then a division) on the
              same buffer, and beside ``Allreduce`` alone (a sum, less work)

Rank counts: ``MINIDL_BENCH_RANKS`` (default "2"; on a 16-core machine "2,4,8,16").
Needs OpenMPI's ``mpirun`` and mpi4py; skipped otherwise.

    PYTHONPATH=. python -m pytest -q -p no:cacheprovider bench/bench_distributed.py \\
        --benchmark-only

Without pytest-benchmark, the same jobs print one table (speed-up over one rank from the
minimum round, the medians' in brackets; the allreduce per call beside mpi4py's):

    PYTHONPATH=. python bench/bench_distributed.py --ranks 1 2 4 8 16 --rounds 5
"""
import argparse
import importlib.util
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

import minidl

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(minidl.__file__)))
RANKS = [int(n) for n in os.environ.get("MINIDL_BENCH_RANKS", "2").split(",") if n.strip()]
ALLREDUCE_CALLS = 50   # per round, as distributed_worker.py makes them
ROUNDS = {"cnn32": 5, "mlp256": 5, "mlp32": 5, "allreduce": 10, "mpi4py": 10,
          "mpi4py-sum": 10}

HAVE_MPI = (shutil.which("mpirun") is not None
            and importlib.util.find_spec("mpi4py") is not None)

pytestmark = pytest.mark.skipif(not HAVE_MPI, reason="needs OpenMPI's mpirun and mpi4py "
                                                     "(the minidl[mpi] extra)")


def _binding(ranks):
    """One core per rank where there are enough (steady timings: OpenMPI binds to a whole
    socket above 2 ranks by default); no binding when the ranks share cores."""
    return ["--bind-to", "core" if ranks <= (os.cpu_count() or 1) else "none"]


class Job:
    """A running ``mpirun`` job of distributed_worker.py, driven through two FIFOs."""

    def __init__(self, directory, workload, ranks, transport="auto", timeout=600):
        name = f"{workload}-{ranks}-{transport}"
        self.commands = os.path.join(directory, name + ".commands")
        self.answers = os.path.join(directory, name + ".answers")
        os.mkfifo(self.commands)
        os.mkfifo(self.answers)
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                   OMP_NUM_THREADS="1", PYTHONPATH=PACKAGE_ROOT)
        self.log = open(os.path.join(directory, name + ".log"), "w+")
        self.process = subprocess.Popen(
            ["mpirun", "--oversubscribe", "-np", str(ranks), *_binding(ranks),
             "-x", "OMP_NUM_THREADS",
             "-x", "PYTHONPATH", sys.executable, os.path.join(HERE, "distributed_worker.py"),
             workload, self.commands, self.answers, transport],
            env=env, cwd=directory, stdout=self.log, stderr=subprocess.STDOUT)
        self.timeout = timeout
        # O_RDWR: opening never blocks, whether or not rank 0 has opened its end yet.
        self.command_fd = os.open(self.commands, os.O_RDWR)
        self.answer_fd = os.open(self.answers, os.O_RDWR)
        self._expect("ready")

    def _expect(self, word):
        deadline = time.monotonic() + self.timeout
        line = b""
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([self.answer_fd], [], [], 1.0)
            if ready:
                line += os.read(self.answer_fd, 64)
            elif self.process.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                raise RuntimeError(f"the benchmark job stopped: {self.log.read()[-3000:]}")
        assert line.decode().strip() == word, line

    def round(self):
        os.write(self.command_fd, b"run\n")
        self._expect("done")

    def close(self):
        os.write(self.command_fd, b"quit\n")
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self.command_fd)
        os.close(self.answer_fd)
        self.log.close()


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    """Jobs by (workload, ranks, transport), started on first use, ended with the module
    (one at a time, so that jobs never compete for the cores)."""
    directory = str(tmp_path_factory.mktemp("mpi-jobs"))
    running = {}

    def get(workload, ranks, transport="auto"):
        key = (workload, ranks, transport)
        if key not in running:
            for job in running.values():
                job.close()
            running.clear()
            running[key] = Job(directory, workload, ranks, transport)
        return running[key]
    yield get
    for job in running.values():
        job.close()


def _measure(benchmark, jobs, workload, ranks, impl, transport="auto"):
    job = jobs(workload, ranks, transport)
    benchmark.extra_info["impl"] = impl
    benchmark.extra_info["ranks"] = ranks
    benchmark.pedantic(job.round, rounds=ROUNDS[workload], warmup_rounds=1, iterations=1)


# ---- training: N ranks beside 1 rank, the same global work ----

@pytest.mark.parametrize("ranks", RANKS)
@pytest.mark.parametrize("workload", ["cnn32", "mlp256", "mlp32"])
def test_training_one_rank(benchmark, jobs, workload, ranks):
    benchmark.group = f"distributed-{workload}-{ranks}ranks"
    _measure(benchmark, jobs, workload, 1, "1 rank")


@pytest.mark.parametrize("ranks", RANKS)
@pytest.mark.parametrize("workload", ["cnn32", "mlp256", "mlp32"])
def test_training_ranks(benchmark, jobs, workload, ranks):
    benchmark.group = f"distributed-{workload}-{ranks}ranks"
    _measure(benchmark, jobs, workload, ranks, "minidl")


@pytest.mark.parametrize("ranks", RANKS)
def test_mlp32_ranks_reduction_by_messages(benchmark, jobs, ranks):
    benchmark.group = f"distributed-mlp32-{ranks}ranks"
    _measure(benchmark, jobs, "mlp32", ranks, "minidl-messages", transport="messages")


# ---- the allreduce of the CNN's gradients ----

ALLREDUCES = [  # (worker workload, impl shown, minidl's transport)
    ("allreduce", "minidl", "auto"),
    ("mpi4py", "mpi4py Allreduce", "auto"),
    ("allreduce", "minidl-messages", "messages"),
    ("mpi4py-sum", "mpi4py Allreduce (sum only)", "auto"),
]


@pytest.mark.parametrize("ranks", RANKS)
@pytest.mark.parametrize("workload,impl,transport", ALLREDUCES)
def test_allreduce(benchmark, jobs, workload, impl, transport, ranks):
    benchmark.group = f"distributed-allreduce-{ranks}ranks"
    _measure(benchmark, jobs, workload, ranks, impl, transport=transport)


# ---- the table, without pytest-benchmark ----

def _timed_rounds(job, rounds):
    job.round()   # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        job.round()
        times.append(time.perf_counter() - start)
    return min(times), sorted(times)[len(times) // 2]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2],
                        help="rank counts (1 is always measured, as the reference)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    if not HAVE_MPI:
        sys.exit("bench_distributed: needs OpenMPI's mpirun and mpi4py.")
    ranks = sorted(set(args.ranks) | {1})
    samples = {"cnn32": 2048, "mlp256": 16384, "mlp32": 8192}
    with tempfile.TemporaryDirectory() as directory:
        print(f"{'workload':<10} " + " ".join(f"{n:>16}" for n in ranks))
        for workload in samples:
            times = {}
            for n in ranks:
                job = Job(directory, workload, n)
                times[n] = _timed_rounds(job, args.rounds)
                job.close()
            cells = [f"{times[1][0] / times[n][0]:5.2f}x ({times[1][1] / times[n][1]:4.2f})"
                     for n in ranks]
            rate = samples[workload] / times[1][0]
            print(f"{workload:<10} " + " ".join(f"{c:>16}" for c in cells)
                  + f"   (1 rank: {rate:,.0f} samples/s)")
        print("allreduce of 225,034 float32, per call: minidl / mpi4py Allreduce + divide")
        for n in ranks[1:]:
            per_call = {}
            for workload in ("allreduce", "mpi4py"):
                job = Job(directory, workload, n)
                per_call[workload] = _timed_rounds(job, args.rounds)[0] / ALLREDUCE_CALLS
                job.close()
            print(f"  {n:>2} ranks: {per_call['allreduce'] * 1e6:7.1f} us / "
                  f"{per_call['mpi4py'] * 1e6:7.1f} us = "
                  f"{per_call['mpi4py'] / per_call['allreduce']:.2f}x")


if __name__ == "__main__":
    main()
