"""Writes the format-1 fixtures of tests/test_saving_format1.py: run it with minidl at
commit 2650d3f (the last to write format 1), ``python make_format1.py DIR``.

The model branches so that its layers' graph order (format 1: a, a2, a3, b, b2) differs
from Keras's order (format 2: a, a2, b, a3, b2), and every hidden Dense has the same shapes,
so loading in the wrong order would go unnoticed by the shape checks."""
import sys

import numpy as np

import minidl
from minidl.layers import Add, Dense
from minidl.utils import set_random_seed
set_random_seed(3)
x = minidl.Input((4,), name="x")
b = Dense(3, name="b")(x)
b2 = Dense(3, name="b2")(b)
a = Dense(3, name="a")(x)
a2 = Dense(3, name="a2")(a)
a3 = Dense(3, name="a3")(a2)
out = Dense(2, name="out")(Add(name="s")([a3, b2]))
model = minidl.Model(x, out, name="branched")
model.compile(minidl.optimizers.Adam(0.01), "mse")
rng = np.random.default_rng(0)
xs = rng.standard_normal((16, 4)).astype("float32")
ys = rng.standard_normal((16, 2)).astype("float32")
model.fit(xs, ys, batch_size=8, epochs=1, verbose=0)
d = sys.argv[1]
model.save(f"{d}/branched_v1.minidl")
model.save_weights(f"{d}/branched_v1.weights.minidl")
ref = {}
for layer in model.layers:
    for name, w in zip(layer.weight_names, layer.weight_arrays):
        ref[f"{layer.name}/{name}"] = w
        for slot in model.optimizer.slot_names:
            ref[f"{layer.name}/{name}/{slot}"] = model.optimizer.get_slot(w, slot)
ref["x"] = xs
ref["predictions"] = model.predict(xs, verbose=0)
np.savez(f"{d}/branched_v1_reference.npz", **ref)
