"""Scaling benchmark: minidl beside PyTorch (and numpy's BLAS for GEMM) at several thread
counts, one table (issue 13).

    python bench/scaling.py                      # 1 and 2 threads, every workload
    python bench/scaling.py --threads 1 2 4 8 16 --rounds 5
    python bench/scaling.py --workloads cnn128 sgemm1024 --threads 1 16

Each cell is ``reference time / minidl time`` (> 1: minidl is faster) from the minimum of
``--rounds`` rounds, the two run alternately in one process so that both see the same
machine; the ratio of the medians follows in brackets, as a check on noise. For GEMM the
reference is the faster of MKL (``torch.mm``) and OpenBLAS (``numpy.matmul``) and the cell
also gives minidl's GFLOP/s; each GEMM round is a run of back-to-back products of about
0.1 s (see ``_repeated``). The ``mlp32-gemm`` row is the reference MLP's epoch time over
the time of its matrix products alone (the same products with the same shapes through
minidl's GEMM): the overhead of everything around them (issue 13's compiled-step target is
<= 1.35). Data are synthetic, of Fashion-MNIST's shape. PyTorch is imported before minidl,
so that the OpenMP runtime the two share keeps PyTorch's defaults (bench/conftest.py).

Thread counts above what minidl allows on this machine (``minidl.set_num_threads`` accepts up
to 4 x the processors) are skipped with a note. Needs PyTorch; threadpoolctl (test extras)
limits numpy's BLAS.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch  # before minidl: PyTorch keeps its own OpenMP settings (bench/conftest.py)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import minidl  # noqa: E402
from cnn_reference import reference_cnn, torch_epoch_runner as torch_cnn_runner  # noqa: E402
from mlp_reference import SEED, reference_mlp, torch_adam_epoch  # noqa: E402
from mlp_reference import torch_epoch_runner as torch_mlp_runner  # noqa: E402
from resnet_reference import reference_resnet, torch_resnet_epoch_runner  # noqa: E402

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - in the test extras
    threadpool_limits = None


def _data(n, image=False, seed=SEED):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n).astype(np.int64)
    return (x.reshape(n, 28, 28, 1) if image else x), y


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _pair(ours, theirs, rounds):
    """(minidl seconds, reference seconds) lists, alternating, after one warm-up each."""
    ours()
    theirs()
    a, b = [], []
    for _ in range(rounds):
        a.append(_timed(ours))
        b.append(_timed(theirs))
    return a, b


# ---- workloads: each returns (minidl callable, reference callable, extra) ----

def _fit(model, x, y, batch):
    return lambda: model.fit(x, y, batch_size=batch, epochs=1, shuffle=True, verbose=0)


def _image_epochs(make_model, torch_runner, batch, n):
    """minidl's and PyTorch's epoch over n synthetic images (NCHW for PyTorch)."""
    x, y = _data(n, image=True)
    model = make_model()
    epoch = torch_runner(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), y, SEED)
    order = np.random.default_rng(SEED).permutation(n)
    return _fit(model, x, y, batch), lambda: epoch(order, batch)


def cnn(batch, n=12000):
    return _image_epochs(reference_cnn, torch_cnn_runner, batch, n)


def resnet(batch=32, n=2048):
    return _image_epochs(reference_resnet, torch_resnet_epoch_runner, batch, n)


def mlp_wide(batch=256, n=15000):
    from minidl import Sequential
    from minidl.layers import Dense
    x, y = _data(n)
    minidl.utils.set_random_seed(SEED)
    model = Sequential([Dense(1024, activation="relu", input_shape=(784,)),
                        Dense(1024, activation="relu"), Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    torch.manual_seed(SEED)
    nn = torch.nn
    epoch = torch_adam_epoch(nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024),
                                           nn.ReLU(), nn.Linear(1024, 10)), x, y)
    order = np.random.default_rng(SEED).permutation(n)
    return _fit(model, x, y, batch), lambda: epoch(order, batch)


def mlp32(n=12000):
    x, y = _data(n)
    model = reference_mlp()
    epoch = torch_mlp_runner(x, y, SEED)
    order = np.random.default_rng(SEED).permutation(n)
    return _fit(model, x, y, 32), lambda: epoch(order, 32)


def predict(n=10000):
    x, _ = _data(n)
    model = reference_mlp()
    net = torch.nn.Sequential(torch.nn.Linear(784, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                              torch.nn.ReLU(), torch.nn.Linear(64, 10), torch.nn.Softmax(dim=1))
    xt = torch.from_numpy(x)

    def theirs():
        with torch.no_grad():
            net(xt)
    return lambda: model.predict(x, batch_size=n, verbose=0), theirs


def mlp32_gemm(n=12000, batch=32):
    """The reference MLP's epoch against its matrix products alone (minidl's GEMM)."""
    from minidl._core import _backend
    x, y = _data(n)
    model = reference_mlp()
    units = (784, 64, 64, 10)
    rng = np.random.default_rng(SEED)
    xs = [rng.random((batch, u), dtype=np.float32) for u in units]
    ws = [rng.random((a, b), dtype=np.float32) for a, b in zip(units[:-1], units[1:])]
    outs = [np.empty((batch, b), np.float32) for b in units[1:]]
    dws = [np.empty_like(w) for w in ws]
    dxs = [np.empty((batch, a), np.float32) for a in units[:-1]]

    def products():
        for _ in range(n // batch):
            for i, w in enumerate(ws):              # forward
                _backend.gemm(xs[i], w, out=outs[i])
            for i in reversed(range(len(ws))):      # backward: weight and input gradients
                _backend.gemm(xs[i], xs[i + 1], out=dws[i], trans_a=True)
                if i > 0:
                    _backend.gemm(xs[i + 1], ws[i], out=dxs[i], trans_b=True)
    return _fit(model, x, y, batch), products


def _repeated(fn, seconds=0.1):
    """fn run back to back for about ``seconds`` per call of the result (at least once).

    A GEMM of a few milliseconds timed once, right after the other library's call, pays for
    that library's worker threads still spinning on the same cores (OpenMP runtimes spin for
    a while before sleeping); a run of many products, as in training, does not. The count
    comes from fn's time alone, so both sides of a pair run about as long."""
    start = time.perf_counter()
    fn()
    count = max(1, int(seconds / max(time.perf_counter() - start, 1e-6)))

    def run():
        for _ in range(count):
            fn()
    run.count = count
    return run


class Gemm:
    def __init__(self, m, n, k):
        rng = np.random.default_rng(SEED)
        self.a = rng.random((m, k), dtype=np.float32)
        self.b = rng.random((k, n), dtype=np.float32)
        self.out = np.empty((m, n), np.float32)
        self.ta, self.tb = torch.from_numpy(self.a), torch.from_numpy(self.b)
        self.tout = torch.empty(m, n)
        self.flop = 2.0 * m * n * k

    def ours(self):
        from minidl._core import _backend
        _backend.gemm(self.a, self.b, out=self.out)

    def mkl(self):
        torch.mm(self.ta, self.tb, out=self.tout)

    def openblas(self):
        np.matmul(self.a, self.b, out=self.out)


GEMMS = {"sgemm1024": (1024, 1024, 1024), "sgemm4096": (4096, 4096, 4096),
         # the reference CNN's second convolution (batch 128): im2col rows x 288 x 64
         "sgemm-cnn": (128 * 13 * 13, 64, 288),
         # the wide MLP's hidden layer (batch 256): forward and weight gradient
         "sgemm-mlp": (256, 1024, 1024), "sgemm-mlp-dw": (1024, 1024, 256)}

WORKLOADS = {
    "cnn128": ("reference CNN, batch 128, 12,000 images", lambda: cnn(128)),
    "cnn32": ("reference CNN, batch 32, 12,000 images", lambda: cnn(32)),
    "resnet32": ("small ResNet (issue 12), batch 32, 2,048 images", resnet),
    "mlp-wide": ("MLP 784-1024-1024-10, batch 256, 15,000 samples", mlp_wide),
    "predict": ("predict 10,000 samples, reference MLP", predict),
    "mlp32": ("reference MLP, batch 32, 12,000 samples", mlp32),
}


def _set_threads(count):
    minidl.set_num_threads(count)
    torch.set_num_threads(count)
    return threadpool_limits(count) if threadpool_limits else None


def _cell(ours, theirs):
    ratio_min = min(theirs) / min(ours)
    ratio_median = float(np.median(theirs) / np.median(ours))
    return f"{ratio_min:.2f} ({ratio_median:.2f})"


def run(names, threads, rounds):
    allowed = [t for t in threads if t <= 4 * (os.cpu_count() or 1)]
    skipped = [t for t in threads if t not in allowed]
    rows = []
    for name in names:
        if name in GEMMS:
            label, cells = f"{name} {GEMMS[name]} (GF/s, ratio vs best of MKL/OpenBLAS)", []
            problem = Gemm(*GEMMS[name])
            for count in allowed:
                limits = _set_threads(count)
                calls = [_repeated(f) for f in (problem.ours, problem.mkl, problem.openblas)]
                ours, mkl = _pair(calls[0], calls[1], rounds)
                _, blas = _pair(calls[0], calls[2], rounds)
                ours, mkl, blas = ([t / c.count for t in times]   # seconds per product
                                   for times, c in zip((ours, mkl, blas), calls))
                best = min(min(mkl), min(blas))
                best_median = min(np.median(mkl), np.median(blas))
                cells.append(f"{problem.flop / min(ours) / 1e9:.0f} GF/s {best / min(ours):.2f} "
                             f"({best_median / np.median(ours):.2f})")
                if limits is not None:
                    limits.restore_original_limits()
        elif name == "mlp32-gemm":
            label, cells = "reference MLP batch 32: epoch / its GEMMs alone (target <= 1.35)", []
            for count in allowed:
                limits = _set_threads(count)
                epoch, products = mlp32_gemm()
                ours, gemms = _pair(epoch, products, rounds)
                cells.append(f"{min(ours) / min(gemms):.2f} "
                             f"({np.median(ours) / np.median(gemms):.2f})")
                if limits is not None:
                    limits.restore_original_limits()
        else:
            label, make = WORKLOADS[name]
            cells = []
            for count in allowed:
                limits = _set_threads(count)
                ours, theirs = _pair(*make(), rounds)
                cells.append(_cell(ours, theirs))
                if limits is not None:
                    limits.restore_original_limits()
        rows.append((label, cells))
        print(f"{label}: " + " | ".join(cells), file=sys.stderr, flush=True)
    head = "| workload | " + " | ".join(f"{t} thread{'s' * (t > 1)}" for t in allowed) + " |"
    print(head)
    print("|---" * (len(allowed) + 1) + "|")
    for label, cells in rows:
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(f"\nratio = reference time / minidl time, min of {rounds} rounds (median ratio in "
          f"brackets); {os.cpu_count()} processors, minidl {minidl.__version__}, "
          f"arch {minidl.backend_info()['arch']}")
    if skipped:
        print(f"skipped thread counts {skipped}: above 4 x the {os.cpu_count()} processors")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    every = list(WORKLOADS) + ["mlp32-gemm"] + list(GEMMS)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--workloads", nargs="+", default=every, choices=every)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if min(args.threads) < 1 or args.rounds < 1:
        parser.error(f"--threads and --rounds must be positive; received threads="
                     f"{args.threads}, rounds={args.rounds}")
    run(args.workloads, args.threads, args.rounds)


if __name__ == "__main__":
    main()
