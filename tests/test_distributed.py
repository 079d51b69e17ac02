"""minidl.distributed: data-parallel training over MPI (Horovod's Keras shape).

The multi-rank tests launch ``mpirun --oversubscribe -np N`` on the scripts of
tests/distributed_scripts and compare what the ranks saved. They skip when mpirun or mpi4py
is missing. BatchNormalization keeps per-rank statistics (as Horovod), so N ranks with batch
b are compared with one process that runs the ranks' batches of b in turn and accumulates
their gradients (``backward_passes_per_step=N``, averaged): the same per-batch statistics.
"""
import importlib.util
import json
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

import minidl
from minidl import distributed, layers, models, optimizers
from minidl.callbacks import Callback
from minidl.distributed import comm

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "distributed_scripts")
# The minidl under test (installed, or a source tree on PYTHONPATH) is the one the workers
# import: never a checkout's root, whose minidl has no compiled extensions.
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(minidl.__file__)))


def _have_mpi4py():
    return importlib.util.find_spec("mpi4py") is not None


needs_mpi = pytest.mark.skipif(
    shutil.which("mpirun") is None or not _have_mpi4py(),
    reason="needs OpenMPI's mpirun and mpi4py (the minidl[mpi] extra)")


def _env(threads=1, **extra):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMP_NUM_THREADS=str(threads), OMPI_MCA_rmaps_base_oversubscribe="1",
               PYTHONPATH=PACKAGE_ROOT, **extra)
    return env


def _launch(ranks, script, *args, threads=1, timeout=60, check=True, **extra_env):
    command = [sys.executable, os.path.join(SCRIPTS, script), *args]
    if ranks:
        command = ["mpirun", "--oversubscribe", "-np", str(ranks), "-x", "OMP_NUM_THREADS",
                   "-x", "PYTHONPATH"] + [a for name in extra_env for a in ("-x", name)] \
            + command
    done = subprocess.run(command, env=_env(threads, **extra_env), capture_output=True,
                          text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def _fit(tmp_path, name, ranks, threads=1, **cfg):
    cfg = dict(cfg, out=str(tmp_path / name))
    if not ranks:
        cfg["mpi"] = False
    _launch(ranks, "fit_worker.py", json.dumps(cfg), threads=threads)
    count = ranks or 1
    return [dict(np.load(f"{cfg['out']}_{r}.npz")) for r in range(count)]


def _max_relative(a, b):
    return max(float(np.max(np.abs(a[k] - b[k])) / np.max(np.abs(a[k]))) for k in a)


def _same_bits(a, b):
    return all(a[k].tobytes() == b[k].tobytes() for k in a)


# ---- the reproducible allreduce ----

@needs_mpi
@pytest.mark.parametrize("ranks,shared_memory", [(2, "1"), (4, "1"), (2, "0")])
def test_allreduce_same_bits_on_every_rank_and_rank_ordered_sum(tmp_path, ranks,
                                                                  shared_memory):
    out = str(tmp_path / "r")
    _launch(ranks, "allreduce_worker.py", out, MINIDL_MPI_SHARED_MEMORY=shared_memory)
    # 1001 values: padded chunks; 1000: equal chunks, reduced in the buffer itself; 3: fewer
    # values than 4 ranks; 5000 after 3: a larger window. Both transports, from a copy and
    # from the staging buffer, give the rank-ordered sum's bits.
    for dtype, n in (("float32", 1001), ("float64", 1001), ("float32", 1000), ("float32", 3),
                     ("float32", 5000)):
        parts = [np.random.default_rng(100 + r).normal(size=n).astype(dtype) * 10.0 ** r
                 for r in range(ranks)]
        expected = parts[0].copy()
        for part in parts[1:]:
            expected = expected + part     # rank order: ((x0 + x1) + x2) + x3
        mean = expected / np.asarray(ranks, dtype)
        for r in range(ranks):
            for name, want in (("", expected), ("_auto", expected), ("_messages", expected),
                               ("_auto_mean", mean), ("_messages_mean", mean)):
                got = np.load(f"{out}_{dtype}_{n}{name}_{r}.npy")
                assert got.dtype == np.dtype(dtype)
                assert got.tobytes() == want.tobytes(), (dtype, n, name, r)
    for r in range(ranks):
        np.testing.assert_array_equal(np.load(f"{out}_bcast_{r}.npy"), np.full(3, ranks))
        np.testing.assert_array_equal(np.load(f"{out}_gather_{r}.npy"),
                                      [[k, 2.5 * k] for k in range(ranks)])
        horovod = np.load(f"{out}_horovod_{r}.npz")
        assert horovod["scalar_mean"].shape == () and \
            horovod["scalar_mean"] == sum(range(ranks)) / ranks
        assert horovod["int_sum"].dtype.kind == "i"
        np.testing.assert_array_equal(horovod["int_sum"], [sum(range(ranks)), ranks])
        assert horovod["f32_mean"].dtype == np.float32
        weights = np.arange(4, dtype=np.float32)
        expected = weights * 1
        for k in range(1, ranks):
            expected = expected + weights * (k + 1)
        assert horovod["f32_mean"].tobytes() == (expected / np.float32(ranks)).tobytes()
        np.testing.assert_array_equal(horovod["bcast"], [[1, 2]])
        steps = np.load(f"{out}_ops_{r}.npz")
        total = sum(range(1, ranks + 1))
        np.testing.assert_array_equal(steps["sum"], np.full(3, -total))
        np.testing.assert_array_equal(steps["average"], np.full(3, -total / ranks))
        np.testing.assert_allclose(steps["predivide"], np.full(3, -total / ranks), rtol=1e-6)
        assert horovod["bcast_scalar"] == ranks - 0.5
        rank, size, local_rank, local_size = np.load(f"{out}_info_{r}.npy")
        assert (rank, size, local_rank, local_size) == (r, ranks, r, ranks)


@needs_mpi
def _threads_per_rank(ranks, rank0_sets=0, omp_threads=None):
    """{rank: (threads after init, processors it may run on)} of an unbound job."""
    env = _env()
    env.pop("OMP_NUM_THREADS")
    if omp_threads is not None:
        env["OMP_NUM_THREADS"] = str(omp_threads)
    command = ["mpirun", "--oversubscribe", "--bind-to", "none", "-np", str(ranks)] + [
        a for name in ("PYTHONPATH", "OMP_NUM_THREADS") if name in env for a in ("-x", name)]
    done = subprocess.run(command + [sys.executable, os.path.join(SCRIPTS, "threads_worker.py"),
                                     str(rank0_sets)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    found = {}
    for line in done.stdout.splitlines():
        _, rank, _, threads, _, cpus = line.split()
        found[int(rank)] = (int(threads), int(cpus))
    return found


@needs_mpi
def test_unbound_ranks_of_one_host_share_its_processors():
    # 2 ranks that may each run on every processor: half of them each, at least one.
    for rank, (threads, cpus) in _threads_per_rank(2).items():
        assert threads == max(1, cpus // 2), (rank, threads, cpus)
    # The user's choice is kept: OMP_NUM_THREADS, or set_num_threads before init (here on
    # rank 0 alone: the other rank still shares, and nobody waits on a collective).
    assert {t for t, _ in _threads_per_rank(2, omp_threads=2).values()} == {2}
    found = _threads_per_rank(2, rank0_sets=2)
    assert found[0][0] == 2 and found[1][0] == max(1, found[1][1] // 2)


def test_without_mpirun_one_rank_of_size_one():
    done = _launch(0, "single_worker.py", timeout=60)
    assert "single ok" in done.stdout and "staging ok" in done.stdout


# ---- training ----

@needs_mpi
@pytest.mark.parametrize("ranks", [2, 4])
def test_mlp_n_ranks_match_one_process_with_n_times_the_batch(tmp_path, ranks):
    one = _fit(tmp_path, "one", 0, batch=16, kind="mlp")[0]
    many = _fit(tmp_path, "many", ranks, batch=16, kind="mlp")
    assert _max_relative(one, many[0]) < 1e-6
    for r in range(1, ranks):
        assert _same_bits(many[0], many[r])


@needs_mpi
def test_mlp_float32_within_float_rounding(tmp_path):
    one = _fit(tmp_path, "one", 0, batch=16, kind="mlp", dtype="float32")[0]
    many = _fit(tmp_path, "many", 2, batch=16, kind="mlp", dtype="float32")
    # 20 Adam steps of float32 rounding (summation orders differ from one process's).
    assert _max_relative(one, many[0]) < 1e-5
    assert _same_bits(many[0], many[1])


@needs_mpi
def test_cnn_batchnorm_per_rank_statistics(tmp_path):
    # Per-rank statistics: the reference is one process running the ranks' batches of 8 in
    # turn, accumulating 2 backward passes per update (same per-batch statistics).
    one = _fit(tmp_path, "one", 0, batch=16, kind="cnn", accumulate=2, order="ranks")[0]
    many = _fit(tmp_path, "many", 2, batch=16, kind="cnn")
    assert _max_relative(one, many[0]) < 1e-6
    assert _same_bits(many[0], many[1])
    # ... and not the statistics of one batch of 16 (the test can tell them apart).
    whole = _fit(tmp_path, "whole", 0, batch=16, kind="cnn")[0]
    assert _max_relative(whole, many[0]) > 1e-6


@needs_mpi
@pytest.mark.parametrize("ranks,axis", [(2, -1), (4, -1), (2, 1)])
def test_cnn_synchronized_batchnorm_matches_one_process_with_the_global_batch(tmp_path, ranks,
                                                                               axis):
    # BatchNormalization(synchronized=True): statistics over every rank's batch, so N ranks
    # with b each are one process with N*b (weights and moving statistics), and every rank
    # holds the same bits, moving statistics included. (No bias before the normalization, as
    # usual: its gradient is zero up to rounding, which Adam would turn into steps.)
    cfg = dict(batch=16, kind="cnn", all_weights=True, conv_bias=False, bn_axis=axis)
    one = _fit(tmp_path, "one", 0, synchronized=True, **cfg)[0]
    many = _fit(tmp_path, "many", ranks, synchronized=True, **cfg)
    assert _max_relative(one, many[0]) < 1e-6
    for r in range(1, ranks):
        assert _same_bits(many[0], many[r])
    again = _fit(tmp_path, "again", ranks, threads=2, synchronized=True, **cfg)
    assert _same_bits(many[0], again[0])
    # Per-rank statistics (the default) are not the global batch's: the test tells them apart.
    per_rank = _fit(tmp_path, "per_rank", ranks, **cfg)
    assert _max_relative(one, per_rank[0]) > 1e-6


@needs_mpi
def test_dropout_same_bits_two_runs_and_thread_counts(tmp_path):
    # Dropout draws its masks from the fit's stream on each rank; seeded alike, the ranks
    # draw the same masks for their own batches, so N ranks are not one process with N
    # times the batch (whose mask covers all N*b rows). "The same" here: every rank ends
    # with the same bits, and runs repeat them exactly for 1 or 2 threads per rank.
    first = _fit(tmp_path, "a", 2, batch=16, kind="dropout")
    second = _fit(tmp_path, "b", 2, batch=16, kind="dropout")
    threaded = _fit(tmp_path, "c", 2, threads=2, batch=16, kind="dropout")
    assert _same_bits(first[0], first[1])
    assert _same_bits(first[0], second[0])
    assert _same_bits(first[0], threaded[0])
    plain = _fit(tmp_path, "d", 2, batch=16, kind="mlp")
    assert not _same_bits(first[0], plain[0])   # the dropout did act


@needs_mpi
def test_cnn_same_bits_for_one_or_two_threads_per_rank(tmp_path):
    one = _fit(tmp_path, "a", 2, batch=16, kind="cnn", dtype="float32")
    two = _fit(tmp_path, "b", 2, threads=2, batch=16, kind="cnn", dtype="float32")
    assert _same_bits(one[0], two[0]) and _same_bits(one[1], two[1])


@needs_mpi
def test_rank_zero_alone_prints_and_saves_metrics_averaged(tmp_path):
    checkpoint = str(tmp_path / "ck.weights.h5")
    out, csv, logs = str(tmp_path / "w"), str(tmp_path / "log.csv"), str(tmp_path / "tb")
    tensorboard = importlib.util.find_spec("tensorboardX") is not None
    done = _launch(2, "fit_worker.py", json.dumps(dict(
        batch=16, kind="mlp", out=out, checkpoint=checkpoint, epochs=2, verbose=2, csv=csv,
        tensorboard=logs if tensorboard else None)))
    assert done.stdout.count("Epoch 2/2") == 1
    reports = [json.load(open(f"{out}_{r}.json")) for r in range(2)]
    assert [rep["saves"] for rep in reports] == [2, 0]
    assert os.path.exists(checkpoint)
    # CSVLogger and TensorBoard write from rank 0 alone: one header, one row per epoch,
    # the averaged loss; one event file.
    rows = open(csv).read().splitlines()
    assert len(rows) == 3 and rows[0] == "epoch,loss"
    assert float(rows[2].split(",")[1]) == pytest.approx(reports[0]["averaged"][1]["loss"])
    if tensorboard:
        assert len(os.listdir(os.path.join(logs, "train"))) == 1
    for epoch in range(2):
        raw = [rep["raw"][epoch]["loss"] for rep in reports]
        assert raw[0] != raw[1]   # each rank's own data
        for rep in reports:
            assert rep["averaged"][epoch]["loss"] == pytest.approx((raw[0] + raw[1]) / 2,
                                                                   rel=1e-12)
        assert reports[0]["averaged"][epoch] == reports[1]["averaged"][epoch]


@needs_mpi
def test_backup_by_rank_zero_resumes_on_two_ranks_with_the_same_bits(tmp_path):
    backup = str(tmp_path / "backup")
    straight = _fit(tmp_path, "straight", 2, batch=16, kind="mlp", steps=5, epochs=3)
    _fit(tmp_path, "first", 2, batch=16, kind="mlp", steps=5, epochs=2, backup=backup)
    resumed = _fit(tmp_path, "resumed", 2, batch=16, kind="mlp", steps=5, epochs=3,
                   backup=backup)
    assert _same_bits(straight[0], resumed[0]) and _same_bits(straight[1], resumed[1])
    for r in range(2):   # the resumed run trained the last epoch only
        assert json.load(open(tmp_path / f"resumed_{r}.json"))["epochs_run"] == [2]
    interrupted = _fit(tmp_path, "short", 2, batch=16, kind="mlp", steps=5, epochs=2)
    assert not _same_bits(straight[0], interrupted[0])   # the third epoch did run


# ---- faults ----

@needs_mpi
def test_a_rank_raising_stops_the_job_with_its_error(tmp_path):
    # The collectives would wait 50 s; the launch allows 40: the job ends only because the
    # failing rank's exception hook aborts it (MPI_Abort).
    done = _launch(2, "fit_worker.py", json.dumps(dict(
        batch=16, kind="mlp", out=str(tmp_path / "x"), fail_rank=1, timeout=50)),
        check=False, timeout=40)
    assert done.returncode != 0
    assert "rank failed on purpose" in done.stderr


@needs_mpi
def test_a_rank_hanging_times_out_the_others(tmp_path):
    # Rank 1 sleeps 120 s; rank 0's collective times out after 2 s and aborts the job,
    # well inside the launch's 40 s.
    done = _launch(2, "fit_worker.py", json.dumps(dict(
        batch=16, kind="mlp", out=str(tmp_path / "x"), fail_rank=1, hang=True, timeout=2)),
        check=False, timeout=40)
    assert done.returncode != 0
    assert "did not complete within 2 s (timeout)" in done.stderr


# ---- in process, without MPI ----

def test_missing_mpi4py_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match=r"minidl\[mpi\]"):
        comm._import_mpi()


def test_uninitialized_queries_raise():
    if comm.is_initialized():
        pytest.skip("MPI was initialized in this process")
    with pytest.raises(ValueError, match="init"):
        distributed.rank()
    assert distributed.is_writer()


def test_bad_arguments():
    with pytest.raises(ValueError, match="backward_passes_per_step"):
        distributed.DistributedOptimizer(optimizers.SGD(), backward_passes_per_step=0)
    with pytest.raises(ValueError, match="compression='fp16'"):
        distributed.DistributedOptimizer(optimizers.SGD(),
                                         compression=distributed.Compression.fp16)
    with pytest.raises(TypeError, match="name must be a string"):
        distributed.DistributedOptimizer(optimizers.SGD(), 2)
    with pytest.raises(ValueError, match="op must be"):
        distributed.DistributedOptimizer(optimizers.SGD(), op="max")
    with pytest.raises(ValueError, match="gradient_predivide_factor=0"):
        distributed.DistributedOptimizer(optimizers.SGD(), gradient_predivide_factor=0)
    with pytest.raises(ValueError, match="op=Average only"):
        distributed.DistributedOptimizer(optimizers.SGD(), op=distributed.Sum,
                                         gradient_predivide_factor=2.0)
    # Horovod's arguments about names, devices and fusion are taken and change nothing
    distributed.DistributedOptimizer(optimizers.SGD(), name="opt", device_dense="/cpu:0",
                                     sparse_as_dense=True, num_groups=2,
                                     compression=distributed.Compression.none)
    with pytest.raises(ValueError, match="root_rank"):
        distributed.BroadcastGlobalVariablesCallback(-1)
    with pytest.raises(ValueError, match="warmup_epochs"):
        distributed.LearningRateWarmupCallback(0.1, warmup_epochs=0)
    with pytest.raises(ValueError, match="rank"):
        distributed.shard(np.zeros(4), rank=2, size=2)
    with pytest.raises(ValueError, match="timeout"):
        comm._check_timeout(-1)
    with pytest.raises(TypeError, match="data"):
        distributed.shard(3, rank=0, size=2)
    with pytest.raises(ValueError, match="shared_memory=1"):
        distributed.ReproducibleAllreduce(shared_memory=1)
    reducer = distributed.ReproducibleAllreduce()
    with pytest.raises(TypeError, match="dtype=int32"):
        reducer.staging_buffer(4, np.int32)
    with pytest.raises(ValueError, match="n=0"):
        reducer.staging_buffer(0)
    with pytest.raises(TypeError, match="allreduce: value must hold numbers"):
        distributed.allreduce(np.array(["a"]))
    with pytest.raises(TypeError, match="broadcast: value must hold numbers"):
        distributed.broadcast({"a": 1})


def test_shared_memory_switch(monkeypatch):
    class Group:
        def __init__(self, ranks):
            self.ranks = ranks

        def Get_size(self):
            return self.ranks
    monkeypatch.setitem(comm._state, "local", Group(2))
    reducer, world = distributed.ReproducibleAllreduce(), Group(2)
    assert reducer._use_window(world)
    monkeypatch.setenv("MINIDL_MPI_SHARED_MEMORY", "0")
    assert not reducer._use_window(world)
    monkeypatch.setenv("MINIDL_MPI_SHARED_MEMORY", "yes")
    with pytest.raises(ValueError, match="MINIDL_MPI_SHARED_MEMORY='yes'"):
        reducer._use_window(world)
    monkeypatch.delenv("MINIDL_MPI_SHARED_MEMORY")
    assert not reducer._use_window(Group(4))            # ranks on several machines
    assert not distributed.ReproducibleAllreduce(shared_memory=False)._use_window(world)
    with pytest.raises(ValueError, match="several machines"):
        distributed.ReproducibleAllreduce(shared_memory=True)._use_window(Group(4))


def test_shard_strided_equal_counts():
    x, y = np.arange(10), np.arange(10) * 2
    parts = [distributed.shard((x, y), rank=r, size=3) for r in range(3)]
    np.testing.assert_array_equal(parts[1][0], [1, 4, 7])
    np.testing.assert_array_equal(parts[1][1], [2, 8, 14])
    assert {len(p[0]) for p in parts} == {3}
    assert list(distributed.shard(iter(range(7)), rank=1, size=3)) == [1, 4]
    d = distributed.shard({"a": x}, rank=0, size=2)
    np.testing.assert_array_equal(d["a"], [0, 2, 4, 6, 8])


def test_shard_py_dataset_takes_every_nth_batch():
    from minidl.utils import PyDataset

    class Batches(PyDataset):
        def __init__(self):
            super().__init__()
            self.ended = 0

        def __len__(self):
            return 7

        def __getitem__(self, index):
            return np.full((2, 1), index, np.float32), np.zeros((2, 1), np.float32)

        def on_epoch_end(self):
            self.ended += 1
    data = Batches()
    part = distributed.shard(data, rank=1, size=3)
    assert isinstance(part, PyDataset) and len(part) == 2
    assert [float(part[i][0][0, 0]) for i in range(2)] == [1.0, 4.0]
    with pytest.raises(IndexError, match="index"):
        part[2]
    part.on_epoch_end()
    assert data.ended == 1
    model2 = models.Sequential([layers.Input((1,)), layers.Dense(1)])
    model2.compile(optimizer="sgd", loss="mse")
    model2.fit(part, epochs=1, verbose=0)
    assert model2.optimizer.iterations == 2


def _mlp(optimizer):
    from minidl.utils.random import set_random_seed
    set_random_seed(3)
    model = models.Sequential([layers.Input((5,)), layers.Dense(4, activation="relu"),
                               layers.Dense(2)])
    model.compile(optimizer=optimizer, loss="mse")
    return model


def test_distributed_optimizer_single_process_same_bits_as_wrapped():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 5)).astype(np.float32), rng.normal(size=(64, 2)).astype(
        np.float32)
    plain = _mlp(optimizers.Adam(0.01))
    wrapped_opt = distributed.DistributedOptimizer(optimizers.Adam(0.01))
    wrapped = _mlp(wrapped_opt)
    plain.fit(x, y, batch_size=8, shuffle=False, verbose=0)
    wrapped.fit(x, y, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(plain.get_weights(), wrapped.get_weights()):
        assert a.tobytes() == b.tobytes()
    assert type(wrapped_opt) is optimizers.Adam
    copied = pickle.loads(pickle.dumps(wrapped_opt))
    assert copied.apply.optimizer is copied and copied._distributed["buffer"] is not None
    assert optimizers.serialize(wrapped_opt) == optimizers.serialize(plain.optimizer)
    assert wrapped_opt.iterations == plain.optimizer.iterations == 8


def test_backward_passes_accumulate_then_update_once():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(16, 5)).astype(np.float32), rng.normal(size=(16, 2)).astype(
        np.float32)
    whole = _mlp(optimizers.SGD(0.1))
    split = _mlp(distributed.DistributedOptimizer(optimizers.SGD(0.1),
                                                  backward_passes_per_step=2,
                                                  average_aggregated_gradients=True))
    whole.fit(x, y, batch_size=16, shuffle=False, verbose=0)
    split.fit(x, y, batch_size=8, shuffle=False, verbose=0)
    assert split.optimizer.iterations == 1
    for a, b in zip(whole.get_weights(), split.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)


def _fit_on_four_faked_ranks(monkeypatch, optimizer, callbacks, epochs):
    """Four ranks as the callbacks see them (``comm.size()``), one process training: the
    model, each batch's (learning rate, momentum) as the step sees them, the history."""
    monkeypatch.setattr(comm, "is_initialized", lambda: True)
    monkeypatch.setattr(comm, "size", lambda: 4)
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(40, 5)).astype(np.float32), rng.normal(size=(40, 2)).astype(
        np.float32)
    model = _mlp(optimizer)
    seen = []

    class Record(Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append((model.optimizer.learning_rate, model.optimizer.momentum))
    history = model.fit(x, y, batch_size=10, epochs=epochs, shuffle=False, verbose=0,
                        callbacks=callbacks + [Record()])
    return model, seen, history


def test_learning_rate_warmup_follows_horovod_formula(monkeypatch):
    # Four ranks: lr = 0.2 / 4 * ((epoch + batch / 4 + 1 / 4) * 3 / 2 + 1).
    model, seen, history = _fit_on_four_faked_ranks(
        monkeypatch, optimizers.SGD(0.5, momentum=0.9),
        [distributed.LearningRateWarmupCallback(0.2, warmup_epochs=2)], epochs=3)
    expected = [0.2 / 4 * ((e + (b + 1) / 4) * 3 / 2 + 1) for e in range(2) for b in range(4)]
    np.testing.assert_allclose([lr for lr, _ in seen[:8]], expected, rtol=1e-12)
    assert seen[7][0] == pytest.approx(0.2)
    np.testing.assert_allclose([lr for lr, _ in seen[8:]], [0.2] * 4, rtol=1e-12)
    # Momentum corrected by new / old learning rate during the step, restored after.
    assert seen[0][1] == pytest.approx(0.9 * expected[0] / 0.5)
    assert model.optimizer.momentum == pytest.approx(0.9)
    assert history.history["lr"][-1] == pytest.approx(0.2)


def test_learning_rate_schedule_callbacks_make_a_piecewise_schedule(monkeypatch):
    # Horovod's ResNet-50 recipe in small, on four ranks: warmup over epoch 0, then the rate
    # as it is in epochs 1-2, a tenth of it in epoch 3 (staircase), and a per-batch ramp from
    # epoch 4.
    schedules = [
        distributed.LearningRateWarmupCallback(0.4, warmup_epochs=1),
        distributed.LearningRateScheduleCallback(None, 1.0, start_epoch=1, end_epoch=3),
        distributed.LearningRateScheduleCallback(None, 1e-1, start_epoch=3, end_epoch=4),
        distributed.LearningRateScheduleCallback(0.4, lambda epoch: 0.01 * epoch,
                                                 start_epoch=4, staircase=False)]
    model, seen, history = _fit_on_four_faked_ranks(
        monkeypatch, optimizers.SGD(0.4, momentum=0.5), schedules, epochs=5)
    expected = ([0.4 / 4 * ((b + 1) / 4 * 3 + 1) for b in range(4)]
                + [0.4] * 8 + [0.04] * 4 + [0.4 * 0.01 * (4 + b / 4) for b in range(4)])
    np.testing.assert_allclose([lr for lr, _ in seen], expected, rtol=1e-12)
    np.testing.assert_allclose(history.history["lr"], [0.4, 0.4, 0.4, 0.04, 0.019],
                               rtol=1e-12)
    assert model.optimizer.momentum == pytest.approx(0.5)   # corrected per batch, restored
    with pytest.raises(TypeError, match="multiplier"):
        distributed.LearningRateScheduleCallback(0.1, "fast")
    with pytest.raises(ValueError, match="start_epoch"):
        distributed.LearningRateScheduleCallback(0.1, 1.0, start_epoch=-1)
    with pytest.raises(ValueError, match="initial_lr"):
        distributed.LearningRateScheduleCallback(float("nan"), 1.0)


def test_model_with_distributed_optimizer_saves_and_loads(tmp_path):
    from minidl.saving import load_model
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(16, 5)).astype(np.float32), rng.normal(size=(16, 2)).astype(
        np.float32)
    model = _mlp(distributed.DistributedOptimizer(optimizers.Adam(0.01)))
    model.fit(x, y, batch_size=8, shuffle=False, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = load_model(path)
    # As Horovod's load_model without wrapping: the plain optimizer, with the same state.
    assert type(loaded.optimizer) is optimizers.Adam
    assert loaded.optimizer.iterations == 2
    for a, b in zip(model.optimizer.get_slot_arrays(), loaded.optimizer.get_slot_arrays()):
        np.testing.assert_array_equal(a, b)
    # Horovod's load_model: the same, with the optimizer wrapped again, training on as the
    # plain one does in one process.
    wrapped = distributed.load_model(path)
    assert type(wrapped.optimizer) is optimizers.Adam
    assert wrapped.optimizer._distributed is not None and wrapped.optimizer.iterations == 2
    loaded.fit(x, y, batch_size=8, shuffle=False, verbose=0)
    wrapped.fit(x, y, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(loaded.get_weights(), wrapped.get_weights()):
        assert a.tobytes() == b.tobytes()
    assert distributed.load_model(path, compile=False).optimizer is None
    # Horovod's custom_optimizers and custom_objects: the program's classes, by name.
    class MyAdam(optimizers.Adam):
        pass
    model.compile(optimizer=MyAdam(), loss="sparse_categorical_crossentropy")
    model.save(path)
    with pytest.raises(ValueError, match="MyAdam"):
        distributed.load_model(path)
    for kwargs in ({"custom_optimizers": [MyAdam]}, {"custom_objects": {"MyAdam": MyAdam}}):
        again = distributed.load_model(path, **kwargs)
        assert type(again.optimizer) is MyAdam and again.optimizer._distributed is not None
    with pytest.raises(TypeError, match="custom_optimizers must be a list of Optimizer"):
        distributed.load_model(path, custom_optimizers=[int])
    with pytest.raises(TypeError, match="custom_objects must be a dict"):
        distributed.load_model(path, custom_objects=[MyAdam])


def test_synchronized_batchnorm_in_one_process_is_plain_batchnorm():
    from minidl.utils.random import set_random_seed
    rng = np.random.default_rng(4)
    x = rng.normal(size=(32, 6, 6, 3)).astype(np.float32)
    y = rng.integers(0, 2, 32)
    weights = []
    for synchronized in (False, True):
        set_random_seed(5)
        model = models.Sequential([layers.Input((6, 6, 3)), layers.Conv2D(4, 3),
                                   layers.BatchNormalization(synchronized=synchronized),
                                   layers.ReLU(), layers.Flatten(), layers.Dense(2)])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        weights.append(model.get_weights())
    assert all(a.tobytes() == b.tobytes() for a, b in zip(*weights))
    layer = layers.BatchNormalization(synchronized=True)
    assert layer.get_config()["synchronized"] is True
    assert layers.BatchNormalization.from_config(layer.get_config()).synchronized
    with pytest.raises(TypeError, match="synchronized"):
        layers.BatchNormalization(synchronized="yes")


def test_synchronized_batchnorm_from_a_keras_config():
    from minidl.saving.keras.config import layer_spec_from_keras
    keras = {"module": "keras.layers", "class_name": "BatchNormalization",
             "config": {"name": "bn", "synchronized": True, "axis": -1}}
    spec = layer_spec_from_keras(keras)
    assert spec["config"]["synchronized"] is True
