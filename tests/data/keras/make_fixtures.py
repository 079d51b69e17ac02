"""Writes the Keras 3 fixture files used by tests/test_keras_files.py.

Run with real Keras (the fixtures in this folder were made with the versions
recorded in README.md):

    KERAS_BACKEND=torch python tests/data/keras/make_fixtures.py

Each model is seeded, compiled, trained a few steps (so BatchNormalization
statistics and the optimizer's slots are not their initial values) and saved
three ways: `<name>.keras` (Keras 3 zip), `<name>.h5` (legacy HDF5) and
`<name>.weights.h5` (Keras 3 weights layout). `<name>_io.npz` holds inputs `x`
and Keras's predictions `y` for them.
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402

import keras  # noqa: E402
from keras import layers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SIZE_LIMIT = 200 * 1024


def build_mlp():
    model = keras.Sequential(
        [
            keras.Input((8,)),
            layers.Dense(16, activation="relu"),
            layers.Dropout(0.1),
            layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = rng.integers(0, 3, size=(64,))
    return model, x, y


def build_cnn_bn():
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(4, 3, activation="relu"),
            layers.BatchNormalization(),
            layers.MaxPooling2D(2),
            layers.Conv2D(8, 3, padding="same"),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.AveragePooling2D(2),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    rng = np.random.default_rng(2)
    x = rng.random(size=(32, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, size=(32,))
    return model, x, y


def build_residual():
    inputs = keras.Input((12,), name="features")
    hidden = layers.Dense(16, activation="relu")(inputs)
    branch = layers.Dense(16, activation="tanh")(hidden)
    branch = layers.Dense(16)(branch)
    merged = layers.Add()([hidden, branch])
    merged = layers.LayerNormalization()(merged)
    outputs = layers.Dense(1)(merged)
    model = keras.Model(inputs, outputs, name="residual")
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=0.01), loss="mse", metrics=["mae"]
    )
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 12)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")
    return model, x, y


def build_nested():
    block = keras.Sequential(
        [keras.Input((6,)), layers.Dense(8, activation="relu"), layers.Dense(8)],
        name="block",
    )
    inner_in = keras.Input((8,))
    inner_out = layers.Dense(4, activation="sigmoid")(inner_in)
    head = keras.Model(inner_in, inner_out, name="head")
    inputs = keras.Input((6,))
    x = block(inputs)
    x = layers.Activation("relu")(x)
    outputs = head(x)
    model = keras.Model(inputs, outputs, name="nested")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="binary_crossentropy"
    )
    rng = np.random.default_rng(4)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = (rng.random(size=(64, 4)) > 0.5).astype("float32")
    return model, x, y


def build_lstm_text():
    model = keras.Sequential(
        [
            keras.Input((10,), dtype="int32"),
            layers.Embedding(50, 8),
            layers.LSTM(12),
            layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    rng = np.random.default_rng(5)
    x = rng.integers(0, 50, size=(32, 10)).astype("int32")
    y = rng.integers(0, 2, size=(32,))
    return model, x, y


# A program's own objects, not registered: loading needs them in custom_objects
# (tests/test_custom_objects.py defines minidl's counterparts under the same names).
class Scale(layers.Layer):
    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")

    def call(self, x):
        return x * self.scale


def scaled_mse(y_true, y_pred):
    return 2.0 * keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)


def mean_error(y_true, y_pred):
    return keras.ops.mean(y_pred - y_true, axis=-1)


def leaky_tanh(x):
    return keras.ops.tanh(x) + 0.1 * x


def halve(x):
    return x * 0.5


def build_custom():
    model = keras.Sequential(
        [keras.Input((5,)), Scale(), layers.Dense(3, activation=leaky_tanh), layers.Lambda(halve),
         layers.Dense(2)]
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss=scaled_mse,
                  metrics=[mean_error])
    rng = np.random.default_rng(6)
    x = rng.normal(size=(32, 5)).astype("float32")
    y = rng.normal(size=(32, 2)).astype("float32")
    return model, x, y


BUILDERS = {
    "mlp": build_mlp,
    "cnn_bn": build_cnn_bn,
    "residual": build_residual,
    "nested": build_nested,
    "lstm_text": build_lstm_text,
    "custom": build_custom,
}


def make(name, builder):
    keras.utils.set_random_seed(18)
    model, x, y = builder()
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
    probe = x[:8]
    prediction = np.asarray(model.predict(probe, verbose=0))
    model.save(os.path.join(HERE, name + ".keras"))
    model.save(os.path.join(HERE, name + ".h5"))
    model.save_weights(os.path.join(HERE, name + ".weights.h5"))
    np.savez(os.path.join(HERE, name + "_io.npz"), x=probe, y=prediction)
    for suffix in (".keras", ".h5", ".weights.h5", "_io.npz"):
        size = os.path.getsize(os.path.join(HERE, name + suffix))
        if size > SIZE_LIMIT:
            raise SystemExit(f"{name}{suffix} is {size} bytes, over {SIZE_LIMIT}")


def main(names):
    import torch

    for name in names or BUILDERS:
        make(name, BUILDERS[name])
    with open(os.path.join(HERE, "README.md"), "w") as readme:
        readme.write(
            "# Keras fixtures\n\n"
            "Written by `make_fixtures.py` (run it with "
            "`KERAS_BACKEND=torch python tests/data/keras/make_fixtures.py`) with\n\n"
            f"- keras {keras.__version__} (backend {keras.backend.backend()})\n"
            f"- torch {torch.__version__}\n"
            f"- numpy {np.__version__}\n\n"
            "Models: " + ", ".join(BUILDERS) + ". Each is saved as `<name>.keras`, "
            "`<name>.h5` (legacy) and `<name>.weights.h5`; `<name>_io.npz` holds the "
            "inputs `x` and Keras's predictions `y`.\n\n"
            "Also here: `keras_configs.json`, the configs real Keras writes for every layer "
            "sample (written by `make_configs.py`), and `keras2_configs.json`, Keras 2 "
            "dialect configs written by hand (its `_format` field says how); "
            "tests/test_keras_config.py and tests/test_keras_h5.py compare with them.\n"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
