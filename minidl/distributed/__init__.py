"""Data-parallel training over MPI, in Horovod's Keras shape.

Start with ``mpirun -np N python train.py``; each process::

    from minidl import distributed
    distributed.init()
    x_part, y_part = distributed.shard((x, y))
    optimizer = optimizers.SGD(0.01 * distributed.size())
    model.compile(optimizer=distributed.DistributedOptimizer(optimizer), ...)
    model.fit(x_part, y_part, batch_size=32, shuffle=False, callbacks=[
        distributed.BroadcastGlobalVariablesCallback(0),
        distributed.MetricAverageCallback()], verbose=1 if distributed.rank() == 0 else 0)

Gradients are averaged with a rank-ordered, reproducible allreduce (``comm.py``): every
rank holds the same bits, in every run, for any thread count. BatchNormalization keeps
per-rank batch statistics, as in Horovod (its moving mean and variance are those of rank
``root_rank`` after a broadcast; they differ across ranks otherwise), unless it is made with
``synchronized=True`` (Keras's argument): then its training statistics and their gradients
span every rank's batch, as one process with the global batch would have them, and its
moving statistics stay the same on every rank. Dropout draws its masks per rank from each
rank's own stream; seeded alike, ranks draw the same stream per step.
"""
from minidl.distributed.callbacks import (BroadcastGlobalVariablesCallback,
                                          LearningRateScheduleCallback,
                                          LearningRateWarmupCallback, MetricAverageCallback,
                                          broadcast_model_state)
from minidl.distributed.comm import (DistributedTimeoutError, ReproducibleAllreduce, abort,
                                     allgather, allreduce, allreduce_, barrier, broadcast,
                                     broadcast_, init, is_initialized, is_writer, local_rank,
                                     local_size, rank, size)
from minidl.distributed.data import ShardedPyDataset, shard
from minidl.distributed.optimizer import (Average, Compression, DistributedOptimizer, Sum,
                                          load_model)

__all__ = ["Average", "BroadcastGlobalVariablesCallback", "Compression", "DistributedOptimizer",
           "DistributedTimeoutError", "LearningRateScheduleCallback",
           "LearningRateWarmupCallback", "MetricAverageCallback",
           "ReproducibleAllreduce", "ShardedPyDataset", "abort", "allgather", "allreduce",
           "allreduce_", "barrier", "broadcast", "broadcast_", "broadcast_model_state", "init",
           "is_initialized", "is_writer", "load_model", "local_rank", "local_size", "rank", "shard",
           "size", "Sum"]
