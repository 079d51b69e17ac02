"""minidl.utils.Dataset (tf.data's Dataset): sources, transformations, shuffling,
prefetching and cardinality, against plain Python / numpy expectations."""
import threading
import time

import numpy as np
import pytest

import minidl
from minidl.data import AUTOTUNE, Dataset, TensorSpec
from minidl.layers import Dense
from minidl.models import Sequential
from minidl.utils import set_random_seed
from minidl.utils.dataset import INFINITE_CARDINALITY, UNKNOWN_CARDINALITY


def values(dataset):
    """The elements as plain Python values, structures kept."""
    def plain(element):
        if isinstance(element, tuple):
            return tuple(plain(item) for item in element)
        if isinstance(element, dict):
            return {key: plain(item) for key, item in element.items()}
        return np.asarray(element).tolist()
    return [plain(element) for element in dataset]


def generated(array):
    """The same elements as from_tensor_slices(array), through the generic (stream) path."""
    return Dataset.from_generator(lambda: iter(array))


# ---- sources ----

def test_from_tensor_slices_tuple_yields_numpy_slices():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    y = np.array([3, 1, 4, 1])
    ds = Dataset.from_tensor_slices((x, y))
    elements = list(ds)
    assert len(ds) == ds.cardinality() == 4
    for i, (xi, yi) in enumerate(elements):
        assert isinstance(xi, np.ndarray) and xi.dtype == np.float32
        np.testing.assert_array_equal(xi, x[i])
        assert yi == y[i] and yi.dtype == y.dtype
    assert values(ds) == values(ds)  # iterating again starts over


def test_from_tensor_slices_dict_and_nested():
    ds = Dataset.from_tensor_slices(({"b": np.arange(3), "a": np.ones((3, 2))}, np.arange(3) * 2))
    assert values(ds)[1] == ({"b": 1, "a": [1.0, 1.0]}, 2)
    assert list(list(ds)[0][0]) == ["b", "a"]  # the dict keeps its key order


def test_from_tensor_slices_python_values_take_tf_default_dtypes():
    floats, ints, strings = next(iter(Dataset.from_tensor_slices(
        ([1.5, 2.5], [1, 2], ["a", "bc"]))))
    assert floats.dtype == np.float32 and ints.dtype == np.int32
    assert strings == "a"
    big = next(iter(Dataset.from_tensor_slices([2 ** 40])))
    assert big.dtype == np.int64


def test_from_tensor_slices_length_mismatch_names_both_arrays():
    with pytest.raises(ValueError, match=r"tensors\[0\] of length 5 and tensors\[1\]\['y'\] "
                                         r"of length 4"):
        Dataset.from_tensor_slices((np.zeros(5), {"y": np.zeros(4)}))
    with pytest.raises(ValueError, match="scalar"):
        Dataset.from_tensor_slices((np.zeros(5), 3.0))
    with pytest.raises(TypeError, match="None"):
        Dataset.from_tensor_slices((np.zeros(5), None))


def test_from_tensors_is_one_element():
    ds = Dataset.from_tensors((np.arange(3), 7))
    assert ds.cardinality() == 1
    assert values(ds) == [([0, 1, 2], 7)]


@pytest.mark.parametrize("args", [(5,), (2, 9), (10, 0, -3), (3, 3)])
def test_range_matches_python_range(args):
    ds = Dataset.range(*args)
    assert values(ds) == list(range(*args))
    assert len(ds) == len(range(*args))
    assert all(v.dtype == np.int64 for v in ds)


def test_range_rejects_non_ints():
    with pytest.raises(TypeError, match="ints"):
        Dataset.range(2.5)
    with pytest.raises(TypeError, match="1 to 3"):
        Dataset.range()


def test_from_generator_calls_the_generator_at_each_iteration():
    calls = []

    def gen(n):
        calls.append(n)
        for i in range(n):
            yield i, [i, i]
    ds = Dataset.from_generator(gen, args=(3,))
    assert values(ds) == [(0, [0, 0]), (1, [1, 1]), (2, [2, 2])]
    assert values(ds) == values(ds)
    assert calls == [3, 3, 3]
    assert ds.cardinality() == UNKNOWN_CARDINALITY
    with pytest.raises(TypeError, match="The dataset length is unknown."):
        len(ds)


def test_from_generator_output_signature_casts_and_checks():
    signature = (TensorSpec((None,), "float32"), TensorSpec((), "int64"))
    ds = Dataset.from_generator(lambda: iter([([1, 2], 0), ([3], 1)]),
                                output_signature=signature)
    (x0, y0), (x1, _) = list(ds)
    assert x0.dtype == np.float32 and y0.dtype == np.int64 and x1.shape == (1,)
    bad = Dataset.from_generator(lambda: iter([([[1]], 0)]), output_signature=signature)
    with pytest.raises(ValueError, match=r"element 0 has shape \(1, 1\)"):
        list(bad)
    wrong = Dataset.from_generator(lambda: iter([{"x": 1}]), output_signature=signature)
    with pytest.raises(TypeError, match="does not match output_signature"):
        list(wrong)


def test_from_generator_output_types_and_shapes():
    ds = Dataset.from_generator(lambda: iter([(1, [1.0, 2.0])]), output_types=("int64", "float64"),
                                output_shapes=((), (2,)))
    x, y = next(iter(ds))
    assert x.dtype == np.int64 and y.dtype == np.float64 and y.shape == (2,)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        list(Dataset.from_generator(lambda: iter([[1, 2]]), output_types="int32",
                                    output_shapes=(3,)))


def test_from_generator_needs_a_callable_returning_an_iterator():
    with pytest.raises(TypeError, match="generator="):
        Dataset.from_generator(iter([1, 2]))
    with pytest.raises(TypeError, match="must return an iterator"):
        list(Dataset.from_generator(lambda: 5))


# ---- map, filter, batch ----

def test_map_passes_tuple_components_as_arguments():
    ds = Dataset.from_tensor_slices((np.arange(4), np.arange(4) * 10))
    assert values(ds.map(lambda x, y: x + y)) == [0, 11, 22, 33]
    assert values(ds.map(lambda x, y: [y, x])) == [(0, 0), (10, 1), (20, 2), (30, 3)]
    dicts = Dataset.from_tensor_slices({"a": np.arange(3)})
    assert values(dicts.map(lambda d: d["a"] * 2.0)) == [0.0, 2.0, 4.0]
    assert next(iter(dicts.map(lambda d: 1.5))).dtype == np.float32


def test_parallel_map_keeps_order_and_raises_errors():
    def slow_square(x):
        time.sleep(0.001 * (int(x) % 3))
        return x * x
    ds = Dataset.range(40)
    assert values(ds.map(slow_square, num_parallel_calls=4)) == [i * i for i in range(40)]
    assert values(ds.map(slow_square, num_parallel_calls=AUTOTUNE)) == [i * i for i in range(40)]

    def fail_at_7(x):
        if x == 7:
            raise ValueError("bad element 7")
        return x
    with pytest.raises(ValueError, match="bad element 7"):
        list(ds.map(fail_at_7, num_parallel_calls=3))
    with pytest.raises(ValueError, match="num_parallel_calls=0"):
        ds.map(slow_square, num_parallel_calls=0)
    with pytest.raises(TypeError, match="map_func="):
        ds.map(3)


def test_filter_keeps_matching_elements():
    ds = Dataset.range(10).filter(lambda x: x % 3 == 0)
    assert values(ds) == [0, 3, 6, 9]
    assert ds.cardinality() == UNKNOWN_CARDINALITY
    with pytest.raises(TypeError, match="scalar bool"):
        list(Dataset.range(3).filter(lambda x: x))


@pytest.mark.parametrize("drop_remainder", [False, True])
@pytest.mark.parametrize("source", [Dataset.from_tensor_slices, generated])
def test_batch_stacks_like_numpy(source, drop_remainder):
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    ds = source(x).batch(4, drop_remainder=drop_remainder)
    batches = list(ds)
    expected = [x[0:4], x[4:8]] + ([] if drop_remainder else [x[8:10]])
    assert len(batches) == len(expected)
    for got, want in zip(batches, expected):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
    if source is Dataset.from_tensor_slices:
        assert len(ds) == len(expected)


def test_batch_of_tuples_yields_tuples_of_arrays():
    x, y, w = np.random.default_rng(0).random((7, 2)), np.arange(7), np.ones(7)
    for source in (Dataset.from_tensor_slices((x, y, w)),
                   Dataset.from_generator(lambda: iter(zip(x, y, w)))):
        batches = list(source.batch(3))
        assert [type(b) for b in batches] == [tuple] * 3
        np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)
        np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)


def test_batch_strings_are_object_arrays_of_str():
    for ds in (Dataset.from_tensor_slices(["a", "bc", "def"]),
               Dataset.from_generator(lambda: iter(["a", "bc", "def"]))):
        first = next(iter(ds.batch(2)))
        assert first.dtype == object and first.tolist() == ["a", "bc"]
        assert all(type(s) is str for s in first)


def test_batch_ragged_elements_name_the_shapes():
    ds = Dataset.from_generator(lambda: iter([np.zeros(2), np.zeros(3)]))
    with pytest.raises(ValueError, match=r"shape \(2,\) in the batch's element 0 and \(3,\)"):
        list(ds.batch(2))
    with pytest.raises(ValueError, match="batch_size=0"):
        ds.batch(0)
    with pytest.raises(TypeError, match="batch_size="):
        ds.batch(2.0)


def test_unbatch_inverts_batch():
    x, y = np.arange(14).reshape(7, 2), np.arange(7)
    ds = Dataset.from_tensor_slices((x, y)).batch(3).unbatch()
    assert values(ds) == values(Dataset.from_tensor_slices((x, y)))


# ---- shuffle ----

def reference_shuffle(items, buffer_size, seed_key):
    """The tf.data buffer algorithm, written out plainly: picks from one generator of the
    seed, the order of what is left at the end from the other."""
    pick, drain = [np.random.default_rng(c) for c in np.random.SeedSequence(seed_key).spawn(2)]
    uniforms = iter(pick.random(len(items)).tolist())
    buffer, out = [], []
    for item in items:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        at = int(next(uniforms) * buffer_size)
        out.append(buffer[at])
        buffer[at] = item
    return out + [buffer[at] for at in drain.permutation(len(buffer))]


@pytest.mark.parametrize("buffer_size", [1, 3, 10, 50])
def test_shuffle_follows_the_buffer_algorithm(buffer_size):
    n, seed = 20, 42
    expected = reference_shuffle(list(range(n)), buffer_size, [seed, 0])
    for source in (Dataset.range(n), generated(np.arange(n))):
        assert values(source.shuffle(buffer_size, seed=seed)) == expected
    # Element i of the output is one of the first i + buffer_size inputs.
    assert all(value < i + buffer_size for i, value in enumerate(expected))
    assert sorted(expected) == list(range(n))
    if buffer_size == 1:
        assert expected == list(range(n))


@pytest.mark.parametrize("n, buffer_size", [(1000, 7), (1000, 999), (257, 1000), (64, 64)])
def test_shuffle_in_memory_and_streamed_agree(n, buffer_size):
    # from_tensor_slices shuffles indices with numpy; a generator's elements go through the
    # buffer one by one: the same seed gives the same order.
    x = np.arange(n)
    a = Dataset.from_tensor_slices(x).shuffle(buffer_size, seed=5).batch(10)
    b = generated(x).shuffle(buffer_size, seed=5).batch(10)
    for _ in range(2):
        assert values(a) == values(b)


def test_shuffle_is_deterministic_for_a_seed_and_reshuffles_per_iteration():
    a = Dataset.range(30).shuffle(30, seed=7)
    b = Dataset.range(30).shuffle(30, seed=7)
    first_a, second_a = values(a), values(a)
    assert first_a == values(b) and second_a == values(b)
    assert first_a != second_a and sorted(first_a) == sorted(second_a) == list(range(30))
    fixed = Dataset.range(30).shuffle(30, seed=7, reshuffle_each_iteration=False)
    assert values(fixed) == values(fixed) == first_a
    assert values(Dataset.range(30).shuffle(30, seed=8)) != first_a


def test_shuffle_without_seed_follows_set_random_seed():
    set_random_seed(3)
    a = values(Dataset.range(50).shuffle(50))
    set_random_seed(3)
    assert values(Dataset.range(50).shuffle(50)) == a


def test_shuffle_then_batch_keeps_pairs_together():
    x = np.arange(100, dtype=np.float32)
    ds = Dataset.from_tensor_slices((x, x * 2)).shuffle(100, seed=1).batch(16)
    xs, ys = zip(*ds)
    np.testing.assert_array_equal(np.concatenate(ys), 2 * np.concatenate(xs))
    assert sorted(np.concatenate(xs).tolist()) == x.tolist()
    assert np.concatenate(xs).tolist() != x.tolist()


def test_shuffle_argument_errors():
    with pytest.raises(ValueError, match="buffer_size=0"):
        Dataset.range(3).shuffle(0)
    with pytest.raises(ValueError, match="seed=-1"):
        Dataset.range(3).shuffle(3, seed=-1)


# ---- take, skip, repeat, cache, prefetch ----

def test_take_skip_and_their_cardinality():
    ds = Dataset.range(10)
    assert values(ds.take(3)) == [0, 1, 2] and ds.take(3).cardinality() == 3
    assert values(ds.skip(7)) == [7, 8, 9] and ds.skip(7).cardinality() == 3
    assert values(ds.take(-1)) == list(range(10))
    assert values(ds.skip(-1)) == [] and ds.skip(-1).cardinality() == 0
    assert ds.skip(20).cardinality() == 0 and values(ds.skip(20)) == []
    assert values(generated(np.arange(10)).skip(8)) == [8, 9]
    assert ds.repeat().take(25).cardinality() == 25
    assert values(ds.skip(2).take(3).shuffle(3, seed=0).batch(3))[0] in (
        [2, 3, 4], [2, 4, 3], [3, 2, 4], [3, 4, 2], [4, 2, 3], [4, 3, 2])
    with pytest.raises(ValueError, match="count=-2"):
        ds.take(-2)


def test_repeat():
    ds = Dataset.range(3)
    assert values(ds.repeat(3)) == [0, 1, 2] * 3 and ds.repeat(3).cardinality() == 9
    forever = ds.repeat()
    assert forever.cardinality() == INFINITE_CARDINALITY
    with pytest.raises(TypeError, match="The dataset is infinite."):
        len(forever)
    assert values(forever.take(7)) == [0, 1, 2, 0, 1, 2, 0]
    assert values(Dataset.range(0).repeat()) == []  # an empty dataset stays empty
    shuffled = Dataset.range(5).shuffle(5, seed=2).repeat(2)
    epochs = values(shuffled)
    assert sorted(epochs[:5]) == sorted(epochs[5:]) == list(range(5))


def test_cache_runs_the_pipeline_once():
    calls = []

    def record(x):
        calls.append(int(x))
        return x * 2
    ds = Dataset.range(5).map(record).cache()
    next(iter(ds))  # a partial pass caches nothing
    assert values(ds) == [0, 2, 4, 6, 8]
    assert values(ds) == [0, 2, 4, 6, 8]
    assert calls == [0, 0, 1, 2, 3, 4]
    assert ds.cardinality() == 5
    assert values(Dataset.range(5).cache("ignored_file")) == list(range(5))
    frozen = Dataset.range(10).shuffle(10, seed=4).cache()
    assert values(frozen) == values(frozen)


def _prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "minidl-prefetch" and t.is_alive()]


def test_prefetch_yields_everything_in_order():
    ds = Dataset.range(100).map(lambda x: x + 1).prefetch(AUTOTUNE)
    assert values(ds) == list(range(1, 101))
    assert values(ds.batch(7)) == values(Dataset.range(1, 101).batch(7))
    assert ds.cardinality() == 100
    assert values(Dataset.range(3).prefetch(0)) == [0, 1, 2]
    with pytest.raises(ValueError, match="buffer_size=-3"):
        Dataset.range(3).prefetch(-3)


def test_prefetch_raises_pipeline_errors_in_the_consumer():
    def explode(x):
        if x == 5:
            raise RuntimeError("broken record 5")
        return x
    ds = Dataset.range(10).map(explode).prefetch(2)
    seen = []
    with pytest.raises(RuntimeError, match="broken record 5"):
        for x in ds:
            seen.append(int(x))
    assert seen == [0, 1, 2, 3, 4]


def test_prefetch_abandoned_early_stops_its_thread():
    before = len(_prefetch_threads())
    iterator = iter(Dataset.range(10 ** 6).prefetch(1))
    assert next(iterator) == 0
    iterator.close()
    deadline = time.monotonic() + 5
    while len(_prefetch_threads()) > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(_prefetch_threads()) == before


# ---- combining datasets ----

def test_zip_concatenate_enumerate():
    a, b = Dataset.range(3), Dataset.range(10, 15)
    assert values(Dataset.zip(a, b)) == [(0, 10), (1, 11), (2, 12)]
    assert Dataset.zip(a, b).cardinality() == 3
    assert values(Dataset.zip({"x": a, "y": (b, a)})) == [
        {"x": i, "y": (10 + i, i)} for i in range(3)]
    assert values(Dataset.zip((a, generated(np.arange(5))))) == [(0, 0), (1, 1), (2, 2)]
    assert Dataset.zip(a, a.repeat()).cardinality() == 3
    assert values(Dataset.zip(a)) == [0, 1, 2]
    assert values(a.concatenate(b)) == [0, 1, 2, 10, 11, 12, 13, 14]
    assert a.concatenate(b).cardinality() == 8
    assert values(b.enumerate(start=5)) == [(5, 10), (6, 11), (7, 12), (8, 13), (9, 14)]
    with pytest.raises(TypeError, match="differ in structure"):
        list(a.concatenate(Dataset.zip(a, b)))
    with pytest.raises(TypeError, match="Datasets"):
        Dataset.zip(a, [1, 2])


def test_flat_map_and_apply():
    ds = Dataset.range(1, 4).flat_map(lambda n: Dataset.range(int(n)))
    assert values(ds) == [0, 0, 1, 0, 1, 2]
    assert values(Dataset.range(4).apply(lambda d: d.skip(2))) == [2, 3]


def test_dataset_is_truthy_even_with_unknown_length():
    assert bool(Dataset.range(3).filter(lambda x: x > 0))
    assert "cardinality=unknown" in repr(Dataset.range(3).filter(lambda x: x > 0))


def test_namespaces():
    assert minidl.data.Dataset is minidl.utils.Dataset is Dataset
    assert minidl.data.AUTOTUNE == minidl.utils.AUTOTUNE == Dataset.AUTOTUNE == -1
    assert (Dataset.INFINITE, Dataset.UNKNOWN) == (-1, -2)
    assert minidl.data.experimental.cardinality(Dataset.range(4)) == 4


# ---- training ----

def _model():
    minidl.utils.set_random_seed(0)
    model = Sequential([Dense(4, activation="tanh", input_shape=(3,)), Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_batched_dataset_trains_a_model_as_the_arrays_do():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]], np.float32)).astype(np.float32)
    by_dataset, by_slices = _model(), _model()
    ds = Dataset.from_tensor_slices((x, y)).batch(8).prefetch(AUTOTUNE)
    first = last = None
    for _ in range(5):
        for xb, yb in ds:
            loss = by_dataset.train_on_batch(xb, yb)
            first = loss if first is None else first
            last = loss
        for start in range(0, 40, 8):
            by_slices.train_on_batch(x[start:start + 8], y[start:start + 8])
    assert last < first
    for a, b in zip(by_dataset.get_weights(), by_slices.get_weights()):
        np.testing.assert_array_equal(a, b)


# ---- padded_batch, reduce, shard ----

def test_padded_batch_pads_to_the_longest_or_to_fixed_shapes():
    rows = [np.arange(n) + 1 for n in (2, 4, 1, 3)]
    ds = Dataset.from_generator(lambda: iter([(row, len(row)) for row in rows]))
    first, second = list(ds.padded_batch(2))
    np.testing.assert_array_equal(first[0], [[1, 2, 0, 0], [1, 2, 3, 4]])
    assert first[1].tolist() == [2, 4]
    np.testing.assert_array_equal(second[0], [[1, 0, 0], [1, 2, 3]])
    fixed = next(iter(ds.padded_batch(3, padded_shapes=([5], ()), padding_values=(-1, 0))))
    np.testing.assert_array_equal(fixed[0], [[1, 2, -1, -1, -1], [1, 2, 3, 4, -1],
                                             [1, -1, -1, -1, -1]])
    with pytest.raises(ValueError, match=r"larger than padded_shapes' \(3,\)"):
        list(ds.padded_batch(2, padded_shapes=([3], [])))
    with pytest.raises(ValueError, match="padding_values has 3 values for elements of 2 components"):
        list(ds.padded_batch(2, padding_values=(0, 0, 0)))
    images = Dataset.from_generator(lambda: iter([np.ones((2, 3)), np.ones((3, 1))]))
    batch = next(iter(images.padded_batch(2)))
    assert batch.shape == (2, 3, 3) and batch.sum() == 6 + 3
    words = Dataset.from_generator(lambda: iter([np.array(["a"]), np.array(["b", "c"])]))
    assert next(iter(words.padded_batch(2))).tolist() == [["a", ""], ["b", "c"]]
    assert Dataset.range(7).padded_batch(3).cardinality() == 3


def test_reduce_and_shard():
    assert Dataset.range(5).reduce(0, lambda total, x: total + x) == 10
    pairs = Dataset.from_tensor_slices((np.arange(4), np.ones(4)))
    total, count = pairs.reduce((0, 0.0), lambda state, element: (state[0] + element[0],
                                                                  state[1] + element[1]))
    assert (total, count) == (6, 4.0)
    for source in (Dataset.range(10), generated(np.arange(10))):
        assert values(source.shard(3, 1)) == [1, 4, 7]
        assert values(source.shard(3, 0)) == [0, 3, 6, 9]
    assert Dataset.range(10).shard(3, 2).cardinality() == 3
    with pytest.raises(ValueError, match="index=3, num_shards=3"):
        Dataset.range(10).shard(3, 3)
