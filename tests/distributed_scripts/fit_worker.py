import json, sys, numpy as np
import minidl
from minidl import distributed, layers, models, optimizers
from minidl.utils.random import set_random_seed

cfg = json.loads(sys.argv[1])
mpi = cfg.get("mpi", True)
if mpi:
    distributed.init(timeout=cfg.get("timeout", 30))
N = distributed.size() if mpi else 1
r = distributed.rank() if mpi else 0
B, steps, kind, dtype = cfg["batch"], cfg.get("steps", 20), cfg["kind"], cfg.get("dtype", "float64")
accumulate = cfg.get("accumulate", 1)
rng = np.random.default_rng(0)
shape = (8, 8, 2) if kind == "cnn" else (10,)
x = rng.normal(size=(steps * B,) + shape).astype(dtype)
y = rng.integers(0, 3, size=len(x))
set_random_seed(1)
if kind == "cnn":
    net = [layers.Input(shape, dtype=dtype), layers.Conv2D(4, 3, dtype=dtype,
                                                           use_bias=cfg.get("conv_bias", True)),
           layers.BatchNormalization(axis=cfg.get("bn_axis", -1), dtype=dtype,
                                     synchronized=cfg.get("synchronized", False)),
           layers.Activation("relu", dtype=dtype),
           layers.Flatten(dtype=dtype), layers.Dense(3, dtype=dtype)]
else:
    net = [layers.Input(shape, dtype=dtype), layers.Dense(16, activation="relu", dtype=dtype)]
    if kind == "dropout":
        net.append(layers.Dropout(0.3, dtype=dtype))
    net.append(layers.Dense(3, dtype=dtype))
model = models.Sequential(net)
opt = optimizers.Adam(1e-2)
if mpi or accumulate > 1:
    opt = distributed.DistributedOptimizer(opt, backward_passes_per_step=accumulate,
                                           average_aggregated_gradients=True)
model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
if cfg.get("order") == "ranks":
    # One process replaying the ranks' batches in turn: step k = rank 0's batch k, rank 1's...
    R, b = accumulate, B // accumulate
    parts = [(x[i::R], y[i::R]) for i in range(R)]
    x = np.concatenate([p[0][k * b:(k + 1) * b] for k in range(steps) for p in parts])
    y = np.concatenate([p[1][k * b:(k + 1) * b] for k in range(steps) for p in parts])
    b_run = b
else:
    x, y = distributed.shard((x, y)) if mpi else (x, y)
    b_run = B // N


class Fail(minidl.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 3 and r == cfg.get("fail_rank", -1):
            if cfg.get("hang"):
                import time
                time.sleep(120)
            raise RuntimeError("rank failed on purpose")


class Raw(minidl.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        report["raw"].append(dict(logs))


class Averaged(minidl.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        report["averaged"].append(dict(logs))


class CountEpochs(minidl.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        report["epochs_run"].append(epoch)


report = {"raw": [], "averaged": [], "saves": 0, "epochs_run": []}
cbs = [distributed.BroadcastGlobalVariablesCallback(0), Fail()] if mpi else []
cbs.append(CountEpochs())
if cfg.get("checkpoint"):
    saving = model.save_weights

    def counted(*args, **kwargs):
        report["saves"] += 1
        return saving(*args, **kwargs)
    model.save_weights = counted
    cbs += [Raw(), distributed.MetricAverageCallback(), Averaged(),
            minidl.callbacks.ModelCheckpoint(cfg["checkpoint"], save_weights_only=True)]
if cfg.get("csv"):
    cbs.append(minidl.callbacks.CSVLogger(cfg["csv"]))
if cfg.get("tensorboard"):
    cbs.append(minidl.callbacks.TensorBoard(cfg["tensorboard"]))
if cfg.get("backup"):
    cbs.append(minidl.callbacks.BackupAndRestore(cfg["backup"], delete_checkpoint=False))
model.fit(x, y, batch_size=b_run, epochs=cfg.get("epochs", 1), shuffle=False,
          verbose=cfg.get("verbose", 0), callbacks=cbs)
with open(f"{cfg['out']}_{r}.json", "w") as f:
    json.dump(report, f)
saved = model.weights if cfg.get("all_weights") else model.trainable_weights
np.savez(f"{cfg['out']}_{r}.npz", *[w.value if hasattr(w, "value") else w for w in saved])
