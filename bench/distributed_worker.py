"""One rank of a benchmark job of bench_distributed.py, started by ``mpirun -np N``.

    python distributed_worker.py WORKLOAD COMMANDS_FIFO ANSWERS_FIFO [TRANSPORT]

Every rank builds the workload once, runs one warm-up round, and then waits for commands:
rank 0 reads a line from COMMANDS_FIFO ("run" or "quit") and hands it to every rank; on "run"
every rank does one round, all meet at a barrier (so the round lasts as long as the slowest
rank), and rank 0 answers "done" on ANSWERS_FIFO. The benchmark times that exchange, so the
figure is the job's wall-clock time for one round, plus a pipe round trip of some
microseconds.

Workloads (one thread per rank; a round is the same global work for any number of ranks N):
    cnn32     the reference CNN (cnn_reference.py), batch 32 per rank, 2,048 images a round
    mlp256    the reference MLP (mlp_reference.py), batch 256 per rank, 16,384 samples
    mlp32     the reference MLP, batch 32 per rank, 8,192 samples
    allreduce 50 averages of the reference CNN's 225,034 float32 gradients, minidl's
              reproducible allreduce on its staging buffer
    mpi4py    the same 50 averages with mpi4py's ``Allreduce`` (in place) and a division, on
              the same buffer
    mpi4py-sum  50 of mpi4py's ``Allreduce`` alone (a sum: less work than an average)

TRANSPORT "messages" makes minidl's reduction use Alltoall/Allgather even on one machine
(the shared-memory window is the default there), to measure what the window gains.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import minidl  # noqa: E402
from minidl import distributed, optimizers  # noqa: E402
from minidl.distributed import comm as dcomm  # noqa: E402

GLOBAL_SAMPLES = {"cnn32": 2048, "mlp256": 16384, "mlp32": 8192}
BATCH = {"cnn32": 32, "mlp256": 256, "mlp32": 32}
CNN_GRADIENTS = 225034
ALLREDUCE_CALLS = 50


def training_round(workload, transport):
    """A function that runs one round of data-parallel training on this rank's shard."""
    if workload == "cnn32":
        from cnn_reference import reference_cnn
        model, shape = reference_cnn(), (28, 28, 1)
    else:
        from mlp_reference import reference_mlp
        model, shape = reference_mlp(), (784,)
    optimizer = distributed.DistributedOptimizer(optimizers.Adam(1e-3))
    if transport == "messages":
        optimizer._distributed["reducer"] = distributed.ReproducibleAllreduce(
            shared_memory=False)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rows = GLOBAL_SAMPLES[workload] // distributed.size()
    rng = np.random.default_rng(1000 + distributed.rank())
    x = rng.random((rows,) + shape, dtype=np.float32)
    y = rng.integers(0, 10, rows)
    callbacks = [distributed.BroadcastGlobalVariablesCallback(0)]
    model.fit(x, y, batch_size=BATCH[workload], epochs=1, shuffle=False, verbose=0,
              callbacks=callbacks)

    def run():
        model.fit(x, y, batch_size=BATCH[workload], epochs=1, shuffle=False, verbose=0)
    return run


def allreduce_round(workload, transport):
    reducer = distributed.ReproducibleAllreduce(
        shared_memory=False if transport == "messages" else None)
    buffer = reducer.staging_buffer(CNN_GRADIENTS, np.float32)
    buffer[...] = np.random.default_rng(distributed.rank()).normal(size=CNN_GRADIENTS)
    comm = dcomm._comm()
    ranks = np.float32(distributed.size())
    from mpi4py import MPI

    def ours():
        for _ in range(ALLREDUCE_CALLS):
            reducer(buffer, average=True)

    def theirs():
        for _ in range(ALLREDUCE_CALLS):
            comm.Allreduce(MPI.IN_PLACE, buffer)
            np.divide(buffer, ranks, out=buffer)

    def their_sum():   # a sum only (values grow; their speed does not change)
        for _ in range(ALLREDUCE_CALLS):
            comm.Allreduce(MPI.IN_PLACE, buffer)
    return {"allreduce": ours, "mpi4py": theirs, "mpi4py-sum": their_sum}[workload]


def main():
    workload, commands, answers = sys.argv[1:4]
    transport = sys.argv[4] if len(sys.argv) > 4 else "auto"
    minidl.set_num_threads(1)
    distributed.init(timeout=600)
    if workload in GLOBAL_SAMPLES:
        run = training_round(workload, transport)
    else:
        run = allreduce_round(workload, transport)
    run()   # warm-up: plans, buffers, the window
    comm = dcomm._comm()
    reader = writer = None
    if distributed.rank() == 0:
        reader, writer = open(commands), open(answers, "w")
        writer.write("ready\n")
        writer.flush()
    while True:
        command = reader.readline().strip() if reader else None
        command = comm.bcast(command, root=0)
        if command != "run":
            break
        run()
        distributed.barrier()
        if writer:
            writer.write("done\n")
            writer.flush()


if __name__ == "__main__":
    main()
