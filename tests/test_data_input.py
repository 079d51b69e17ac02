"""Data that fit / evaluate / predict take besides arrays: Python generators, PyDataset (threads
and processes), any iterable of batches (a torch DataLoader), with Keras 3's rules for epochs,
steps and arguments; and the fit details that go with them (callback log keys, predict's
progress bar, evaluate's keys, Keras' shape conveniences).

Exact equalities compare two minidl runs that see the same batches in the same order: the
batch arithmetic is the same whatever fed the batches, so the trained weights are the same
bits.
"""
import threading
import traceback

import numpy as np
import pytest

from minidl import callbacks, optimizers
from minidl.layers import Dense, Input
from minidl.models import Model, Sequential
from minidl.models.data_adapters import BatchConverter
from minidl.utils import PyDataset, set_random_seed

pytestmark = pytest.mark.usefixtures("one_thread")

BATCH = 10


def blobs(n=40, features=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, features)) * 2.0
    y = rng.integers(0, classes, n)
    return (centers[y] + rng.standard_normal((n, features))).astype(np.float32), y


def small_model(seed=3, input_shape=(4,), build=True):
    set_random_seed(seed)
    first = Dense(8, activation="tanh", **({"input_shape": input_shape} if build else {}))
    model = Sequential([first, Dense(3, activation="softmax")])
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def same_weights(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))


def generator(x, y, batch_size=BATCH, w=None):
    for start in range(0, len(x), batch_size):
        part = slice(start, start + batch_size)
        yield (x[part], y[part]) if w is None else (x[part], y[part], w[part])


def endless(x, y, batch_size=BATCH):
    while True:
        yield from generator(x, y, batch_size)


class Slices(PyDataset):
    """Batches sliced from arrays; records the indices asked for."""

    def __init__(self, x, y, batch_size=BATCH, fail_at=None, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size, self.fail_at = x, y, batch_size, fail_at
        self.asked = []
        self.epochs_begun = self.epochs_ended = 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        self.asked.append(index)
        if index == self.fail_at:
            raise KeyError(f"no batch {index} here")
        part = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.x[part], self.y[part]

    def on_epoch_begin(self):
        self.epochs_begun += 1

    def on_epoch_end(self):
        self.epochs_ended += 1


class Endless(PyDataset):
    """A PyDataset without end (num_batches None)."""

    def __init__(self, x, y, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y = x, y

    @property
    def num_batches(self):
        return None

    def __getitem__(self, index):
        start = (index * BATCH) % len(self.x)
        return self.x[start:start + BATCH], self.y[start:start + BATCH]


class NoSuper(PyDataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return 1

    def __getitem__(self, index):
        return self.x, self.y


class Reiterable:
    """An iterable of batches with __iter__ and __len__ (like tf.data or minidl.utils.Dataset)."""

    def __init__(self, x, y):
        self.x, self.y = x, y
        self.passes = 0

    def __iter__(self):
        self.passes += 1
        return generator(self.x, self.y)

    def __len__(self):
        return -(-len(self.x) // BATCH)


def batch_counter():
    counts = []
    return counts, callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: counts.append(0),
        on_train_batch_end=lambda batch, logs: counts.__setitem__(-1, counts[-1] + 1))


# ---- the same bits as arrays ----

def test_generator_trains_the_bits_of_arrays():
    x, y = blobs()
    a, b = small_model(), small_model()
    a.fit(x, y, batch_size=BATCH, shuffle=False, verbose=0)
    history = b.fit(generator(x, y), verbose=0)
    assert same_weights(a, b)
    assert history.params["steps"] == 4   # found at the end of the pass


def test_one_shot_generator_builds_an_unbuilt_model_without_losing_a_batch():
    x, y = blobs()
    a = small_model(build=False)   # (built by fit, from the global generator)
    a.fit(x, y, batch_size=BATCH, shuffle=False, verbose=0)
    b = small_model(build=False)
    b.fit(generator(x, y), verbose=0)
    assert same_weights(a, b)


@pytest.mark.parametrize("workers,processes", [(1, False), (2, False), (1, True), (2, True)])
def test_pydataset_trains_the_bits_of_arrays(workers, processes):
    x, y = blobs()
    a, b = small_model(), small_model()
    a.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    data = Slices(x, y, workers=workers, use_multiprocessing=processes, max_queue_size=2)
    b.fit(data, epochs=2, shuffle=False, verbose=0)
    assert same_weights(a, b)
    assert data.epochs_begun == data.epochs_ended == 2


def test_pydataset_shuffle_is_seeded_and_per_epoch():
    x, y = blobs(n=80)
    runs = []
    for _ in range(2):
        model = small_model()
        data = Slices(x, y)
        set_random_seed(5)
        model.fit(data, epochs=3, verbose=0)
        runs.append((model, data.asked))
    (a, asked_a), (b, asked_b) = runs
    assert same_weights(a, b) and asked_a == asked_b
    epochs = [asked_a[i:i + 8] for i in range(0, 24, 8)]
    assert all(sorted(order) == list(range(8)) for order in epochs)
    assert any(order != list(range(8)) for order in epochs)
    assert epochs[0] != epochs[1] or epochs[1] != epochs[2]
    in_order = Slices(x, y)
    small_model().fit(in_order, epochs=2, shuffle=False, verbose=0)
    assert in_order.asked == list(range(8)) * 2


def test_torch_dataloader_trains_the_bits_of_arrays():
    torch = pytest.importorskip("torch")
    x, y = blobs()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
        batch_size=BATCH, shuffle=False)
    a, b = small_model(), small_model()
    a.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    history = b.fit(loader, epochs=2, verbose=0)
    assert same_weights(a, b) and len(history.history["loss"]) == 2
    np.testing.assert_array_equal(b.predict(loader, verbose=0), b.predict(x, verbose=0))


def test_reiterable_is_iterated_anew_each_epoch_and_sample_weights_come_in_batches():
    x, y = blobs()
    w = np.linspace(0.5, 2.0, len(x)).astype(np.float32)
    data = Reiterable(x, y)
    a, b, c = small_model(), small_model(), small_model()
    a.fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0)
    b.fit(data, epochs=3, verbose=0)
    assert same_weights(a, b) and data.passes == 3
    a = small_model()
    a.fit(x, y, sample_weight=w, batch_size=BATCH, shuffle=False, verbose=0)
    c.fit(generator(x, y, w=w), verbose=0)
    assert same_weights(a, c)


def test_evaluate_and_predict_take_batches():
    x, y = blobs()
    model = small_model()
    model.fit(x, y, verbose=0)
    want = model.evaluate(x, y, batch_size=BATCH, verbose=0, return_dict=True)
    assert model.evaluate(generator(x, y), verbose=0, return_dict=True) == want
    assert model.evaluate(Slices(x, y, workers=2), verbose=0, return_dict=True) == want
    np.testing.assert_array_equal(model.predict(generator(x, y), verbose=0),
                                  model.predict(x, verbose=0))
    np.testing.assert_array_equal(model.predict((b for b, _ in generator(x, y)), verbose=0),
                                  model.predict(x, verbose=0))
    first_two = model.predict(Slices(x, y), steps=2, verbose=0)
    np.testing.assert_array_equal(first_two, model.predict(x[:20], verbose=0))


def test_c_contiguous_float32_batches_reach_the_step_without_a_copy():
    x, y = blobs()
    model = small_model()
    convert = BatchConverter(model, "x")
    xs, ys, _ = convert((x[:BATCH], y[:BATCH]), 0)
    assert np.shares_memory(xs[0], x)
    xs, _, _ = BatchConverter(model, "x")((x[:BATCH].astype(np.float64), y[:BATCH]), 0)
    assert xs[0].dtype == np.float32 and not np.shares_memory(xs[0], x)


# ---- epochs and steps ----

def test_steps_per_epoch_with_an_endless_generator_goes_on_across_epochs():
    x, y = blobs()
    counts, counter = batch_counter()
    a, b = small_model(), small_model()
    a.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    b.fit(endless(x, y), steps_per_epoch=2, epochs=4, verbose=0, callbacks=[counter])
    assert counts == [2, 2, 2, 2] and same_weights(a, b)


def test_one_shot_generator_runs_out_warns_and_stops_training():
    x, y = blobs()
    counts, counter = batch_counter()
    with pytest.warns(UserWarning, match="ran out of data; interrupting training"):
        history = small_model().fit(generator(x, y), epochs=3, verbose=0, callbacks=[counter])
    assert counts == [4] and history.epoch == [0]
    counts, counter = batch_counter()
    with pytest.warns(UserWarning, match="ran out of data") as record:
        history = small_model().fit(generator(x, y), steps_per_epoch=3, epochs=3, verbose=0,
                                    callbacks=[counter])
    assert counts == [3, 1] and history.epoch == [0, 1] and len(record) == 1


def test_steps_per_epoch_beyond_a_pydataset_ends_the_epoch_and_starts_a_new_pass():
    # Keras 3 (epoch_iterator.py): an input of known size that ends inside an epoch warns
    # and ends that epoch; the next epoch starts a new pass (arrays do the same).
    x, y = blobs()
    counts, counter = batch_counter()
    data = Slices(x, y)
    with pytest.warns(UserWarning, match="ran out of data") as record:
        small_model().fit(data, steps_per_epoch=3, epochs=3, shuffle=False, verbose=0,
                          callbacks=[counter])
    assert counts == [3, 1, 3] and len(record) == 1
    assert data.asked == [0, 1, 2, 3, 0, 1, 2]


def test_validation_data_and_validation_steps_with_batches():
    x, y = blobs(n=60)
    xv, yv = x[40:], y[40:]
    x, y = x[:40], y[:40]
    a, b, c = small_model(), small_model(), small_model()
    ha = a.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, validation_data=(xv, yv),
               validation_batch_size=BATCH, verbose=0)
    hb = b.fit(Slices(x, y), epochs=2, shuffle=False, validation_data=Slices(xv, yv),
               verbose=0)
    assert ha.history == hb.history
    hc = c.fit(generator(x, y), validation_data=endless(xv, yv), validation_steps=1,
               verbose=0)
    want = c.evaluate(xv[:BATCH], yv[:BATCH], verbose=0, return_dict=True)
    assert hc.history["val_loss"] == [want["loss"]]
    hd = small_model().fit(endless(x, y), steps_per_epoch=4, epochs=2, verbose=0,
                           validation_data=(xv, yv))
    assert sorted(hd.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]


# ---- bad input ----

def test_inconsistent_batches_name_the_batch_and_shapes():
    x, y = blobs()

    def shapes():
        yield x[:10], y[:10]
        yield x[10:20], y[10:20]
        yield x[20:30, :3], y[20:30]

    with pytest.raises(ValueError, match=r"Batch 2 of x.*shape \(10, 3\).*\(None, 4\)"):
        small_model().fit(shapes(), verbose=0)

    def dtypes():
        yield x[:10], y[:10]
        yield x[10:20].astype(np.float64), y[10:20]

    with pytest.raises(ValueError, match=r"Batch 1 of x does not match batch 0: its x has "
                                         r"shape \(None, 4\) and dtype float64.*float32"):
        small_model().fit(dtypes(), verbose=0)

    def bad_label():
        yield x[:10], y[:10]
        yield x[10:20], y[10:20] + 3

    with pytest.raises(ValueError, match=r"Batch 1 of x: y\[\d\] = \d is not a valid class"):
        small_model().fit(bad_label(), verbose=0)

    def nan():
        yield x[:10], y[:10]
        yield np.full((10, 4), np.nan, np.float32), y[:10]

    with pytest.raises(ValueError, match="Batch 1 of x: x contains 40 NaN"):
        small_model().fit(nan(), verbose=0)
    with pytest.raises(ValueError, match="tuple of 4 items"):
        small_model().fit(iter([(x, y, y, y)]), verbose=0)


def run_with_timeout(function, seconds=60):
    """function() in a thread; its exception, or an AssertionError if it hangs."""
    outcome = {}

    def target():
        try:
            function()
        except BaseException as err:   # noqa: B902 - handed to the test
            outcome["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "fit hung after an exception in __getitem__"
    return outcome.get("error")


@pytest.mark.parametrize("workers,processes", [(1, False), (3, False), (2, True)])
def test_getitem_exception_surfaces_from_fit_and_stops_the_workers(workers, processes):
    x, y = blobs(n=200)
    data = Slices(x, y, fail_at=6, workers=workers, use_multiprocessing=processes,
                  max_queue_size=4)
    error = run_with_timeout(lambda: small_model().fit(data, epochs=2, shuffle=False,
                                                       verbose=0))
    assert isinstance(error, KeyError) and "no batch 6 here" in str(error)
    if processes:   # the worker's traceback comes as the cause
        assert "__getitem__" in str(error.__cause__)
    else:
        frames = [frame.name for frame in traceback.extract_tb(error.__traceback__)]
        assert "__getitem__" in frames
    assert not [t for t in threading.enumerate() if t.name.startswith("PyDataset")]


def test_arguments_only_arrays_take_are_refused_with_batches():
    x, y = blobs()
    model = small_model()
    with pytest.raises(ValueError, match="`y` is not supported when x is a Python generator"):
        model.fit(generator(x, y), y=y, verbose=0)
    with pytest.raises(ValueError, match="`sample_weight` is not supported when x is a "
                                         "PyDataset"):
        model.fit(Slices(x, y), sample_weight=np.ones(40), verbose=0)
    with pytest.raises(ValueError, match="`batch_size` is not supported.*batch_size=16"):
        model.fit(Slices(x, y), batch_size=16, verbose=0)
    with pytest.raises(ValueError, match="validation_split is only supported for NumPy"):
        model.fit(generator(x, y), validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match="`batch_size` is not supported"):
        model.predict(Slices(x, y), batch_size=8, verbose=0)
    with pytest.raises(ValueError, match="`y` is not supported"):
        model.evaluate(Slices(x, y), y, verbose=0)


def test_endless_pydataset_needs_steps():
    x, y = blobs()
    model = small_model()
    with pytest.raises(ValueError, match="steps_per_epoch is required.*steps_per_epoch=None"):
        model.fit(Endless(x, y), verbose=0)
    with pytest.raises(ValueError, match="validation_steps is required"):
        model.fit(x, y, validation_data=Endless(x, y), verbose=0)
    with pytest.raises(ValueError, match="steps is required"):
        model.evaluate(Endless(x, y), verbose=0)
    history = model.fit(Endless(x, y, workers=2), steps_per_epoch=3, epochs=2, verbose=0,
                        validation_data=Endless(x, y), validation_steps=2)
    assert len(history.history["val_loss"]) == 2
    assert model.predict(Endless(x, y), steps=3, verbose=0).shape == (30, 3)


def test_pydataset_without_super_init_warns():
    x, y = blobs(n=10)
    with pytest.warns(UserWarning, match=r"should call `super\(\).__init__\(\*\*kwargs\)`"):
        small_model().fit(NoSuper(x, y), verbose=0)
    with pytest.raises(ValueError, match="workers must be an int >= 1; received workers=0"):
        Slices(x, y, workers=0)


# ---- fit details ----

def test_validation_callbacks_see_keras_keys_and_epochs_val_keys():
    x, y = blobs()
    seen = {"test_batch": set(), "test_end": set(), "epoch": set()}
    cb = callbacks.LambdaCallback(
        on_test_batch_end=lambda batch, logs: seen["test_batch"].update(logs),
        on_test_end=lambda logs: seen["test_end"].update(logs),
        on_epoch_end=lambda epoch, logs: seen["epoch"].update(logs))
    small_model().fit(x, y, validation_data=(x, y), verbose=0, callbacks=[cb])
    assert seen["test_batch"] == seen["test_end"] == {"loss", "accuracy"}
    assert seen["epoch"] == {"loss", "accuracy", "val_loss", "val_accuracy"}


def test_predict_shows_a_progress_bar_when_verbose(capsys):
    x, _ = blobs()
    model = small_model()
    model.predict(x, batch_size=BATCH, verbose=0)
    assert capsys.readouterr().out == ""
    model.predict(x, batch_size=BATCH, verbose=1)
    out = capsys.readouterr().out
    assert out.startswith("4/4 ━━━━━━━━━━━━━━━━━━━━") and out.endswith("/step\n")
    model.predict(x, batch_size=BATCH)   # 'auto' is 1
    assert capsys.readouterr().out.startswith("4/4 ")
    model.predict(x, batch_size=BATCH, verbose=2)
    assert capsys.readouterr().out.startswith("4/4 - ")
    model.predict((b for b, _ in generator(x, x)), verbose=1)   # no total known
    out = capsys.readouterr().out
    assert out.startswith("4 ") and "━" not in out


def test_fit_progress_bar_with_unknown_steps(capsys):
    x, y = blobs()
    small_model().fit(generator(x, y), verbose=1)
    out = capsys.readouterr().out
    assert out.startswith("Epoch 1/1\n4 ") and "loss:" in out


def test_evaluate_return_dict_keys_as_keras():
    x, y = blobs()
    assert list(small_model().evaluate(x, y, verbose=0, return_dict=True)) == \
        ["loss", "accuracy"]
    set_random_seed(1)
    inputs = Input((4,))
    hidden = Dense(8, activation="tanh")(inputs)
    model = Model(inputs, [Dense(3, activation="softmax", name="label")(hidden),
                           Dense(1, name="value")(hidden)])
    model.compile("adam", loss=["sparse_categorical_crossentropy", "mse"],
                  metrics=[["accuracy"], ["mae"]])
    target = x[:, :1]
    logs = model.evaluate(x, [y, target], batch_size=10, verbose=0, return_dict=True)
    assert list(logs) == ["loss", "label_loss", "value_loss", "label_accuracy", "value_mae"]
    assert logs["loss"] == pytest.approx(logs["label_loss"] + logs["value_loss"], rel=1e-6)
    gen_logs = model.evaluate(((x[i:i + 10], (y[i:i + 10], target[i:i + 10]))
                               for i in range(0, 40, 10)), verbose=0, return_dict=True)
    assert gen_logs == logs


def test_one_dimensional_x_for_an_input_of_shape_1_and_label_columns():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(40).astype(np.float32)
    y = (x > 0).astype(np.int64)
    models = [small_model(input_shape=(1,)) for _ in range(4)]
    models[0].fit(x[:, None], y, batch_size=BATCH, shuffle=False, verbose=0)
    models[1].fit(x, y[:, None], batch_size=BATCH, shuffle=False, verbose=0)
    models[2].fit(generator(x, y[:, None]), verbose=0)
    models[3].fit(Slices(x, y[:, None]), shuffle=False, verbose=0)
    assert all(same_weights(models[0], m) for m in models[1:])
    np.testing.assert_array_equal(models[0].predict(x, verbose=0),
                                  models[0].predict(x[:, None], verbose=0))
    assert models[0].evaluate(x, y[:, None], verbose=0) == models[0].evaluate(
        x[:, None], y, verbose=0)


# ---- models of every kind ----

class TwoLayers(Model):
    """A subclassed model: it trains through train_step."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = Dense(8, activation="tanh")
        self.out = Dense(3, activation="softmax")

    def call(self, inputs, training=False):
        return self.out(self.hidden(inputs))


def test_subclassed_model_trains_on_batches_as_on_arrays():
    x, y = blobs()
    runs = []
    for data in ((x, y), (generator(x, y),)):
        set_random_seed(4)
        model = TwoLayers()
        model.compile(optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        kwargs = {"batch_size": BATCH} if len(data) == 2 else {}
        history = model.fit(*data, shuffle=False, verbose=0, **kwargs)
        runs.append((model, history.history))
    (a, ha), (b, hb) = runs
    assert same_weights(a, b) and ha == hb
    assert a.evaluate(x, y, batch_size=BATCH, verbose=0) == \
        b.evaluate(Slices(x, y), verbose=0)


def test_several_inputs_as_dicts_and_class_weight_in_batches():
    x, y = blobs()
    weights = {0: 1.0, 1: 2.0, 2: 0.5}
    models = []
    for _ in range(2):
        set_random_seed(2)
        left, right = Input((2,), name="left"), Input((2,), name="right")
        merged = Dense(8, activation="tanh")(left) + Dense(8, activation="tanh")(right)
        model = Model([left, right], Dense(3, activation="softmax")(merged))
        model.compile(optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
        models.append(model)
    inputs = {"left": x[:, :2], "right": x[:, 2:]}
    models[0].fit(inputs, y, batch_size=BATCH, shuffle=False, class_weight=weights, verbose=0)
    batches = (({"left": x[i:i + BATCH, :2], "right": x[i:i + BATCH, 2:]}, y[i:i + BATCH])
               for i in range(0, 40, BATCH))
    models[1].fit(batches, class_weight=weights, verbose=0)
    assert same_weights(*models)
