"""Weight constraints (minidl.constraints, Keras 3's keras.constraints): each constraint's
values against a numpy transcription of Keras' formula, the registry (get, serialize,
deserialize), the layer arguments that take constraints, and constraints in training (fit,
a hand-written GradientTape loop) and in saved models."""
import json

import numpy as np
import pytest

import minidl
from minidl import callbacks, constraints, losses, optimizers
from minidl.autodiff import GradientTape, Variable
from minidl.constraints import Constraint, MaxNorm, MinMaxNorm, NonNeg, UnitNorm
from minidl.initializers import GlorotUniform
from minidl.layers import (BatchNormalization, Conv1D, Conv2D, Dense, Input, Layer,
                           LayerNormalization, PReLU)
from minidl.saving import register_serializable

pytestmark = pytest.mark.usefixtures("one_thread")

EPSILON = 1e-7   # Keras' backend.epsilon()


def rng(seed):
    return np.random.default_rng(seed)


# ---- numpy transcriptions of Keras' formulas (keras/src/constraints/constraints.py) ----

def ref_norms(w, axis):
    axis = tuple(axis) if isinstance(axis, (list, tuple)) else axis
    return np.sqrt(np.sum(np.square(w), axis=axis, keepdims=True))


def ref_max_norm(w, max_value, axis):
    norms = ref_norms(w, axis)
    return w * (np.clip(norms, 0, max_value) / (EPSILON + norms))


def ref_min_max_norm(w, min_value, max_value, rate, axis):
    norms = ref_norms(w, axis)
    desired = rate * np.clip(norms, min_value, max_value) + (1 - rate) * norms
    return w * (desired / (EPSILON + norms))


def ref_unit_norm(w, axis):
    return w / (EPSILON + ref_norms(w, axis))


def ref_non_neg(w):
    return np.maximum(w, 0)


# ---- values ----

def test_max_norm_rescales_only_the_columns_above_the_bound():
    # Keras' documented behaviour: the weights incident to each unit (a kernel column,
    # axis 0) keep a norm <= max_value. Columns of norms 1 and 4 under MaxNorm(2): the first
    # is left as it is (up to the epsilon), the second is halved to norm 2.
    w = np.array([[0.6, 0.0], [0.8, 4.0]])
    out = MaxNorm(2)(w)
    np.testing.assert_allclose(out[:, 0], [0.6, 0.8], rtol=2e-7)
    np.testing.assert_allclose(out[:, 1], [0.0, 2.0], rtol=2e-7)
    np.testing.assert_allclose(np.linalg.norm(out, axis=0), [1.0, 2.0], rtol=2e-7)
    # The exact values, epsilon included.
    np.testing.assert_array_equal(out, w * np.array([1 / (1 + EPSILON), 2 / (4 + EPSILON)]))


CASES = [
    (MaxNorm(1.5), lambda w: ref_max_norm(w, 1.5, 0)),
    (MaxNorm(0.5, axis=1), lambda w: ref_max_norm(w, 0.5, 1)),
    (MaxNorm(2.0, axis=-1), lambda w: ref_max_norm(w, 2.0, -1)),
    (MaxNorm(0.0), lambda w: ref_max_norm(w, 0.0, 0)),
    (MinMaxNorm(1.0, 2.0), lambda w: ref_min_max_norm(w, 1.0, 2.0, 1.0, 0)),
    (MinMaxNorm(1.0, 2.0, rate=0.3, axis=1), lambda w: ref_min_max_norm(w, 1.0, 2.0, 0.3, 1)),
    (MinMaxNorm(), lambda w: ref_min_max_norm(w, 0.0, 1.0, 1.0, 0)),
    (UnitNorm(), lambda w: ref_unit_norm(w, 0)),
    (UnitNorm(axis=1), lambda w: ref_unit_norm(w, 1)),
    (NonNeg(), ref_non_neg),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("constraint, reference", CASES, ids=[repr(c) for c, _ in CASES])
def test_values_match_keras_formula(constraint, reference, dtype):
    # Columns of norms from about 0.3 to 6, so that each bound is crossed both ways.
    w = (rng(1).standard_normal((5, 7)) * np.linspace(0.15, 2.5, 7)).astype(dtype)
    before = w.copy()
    out = constraint(w)
    assert out.dtype == dtype and out.shape == w.shape
    np.testing.assert_array_equal(w, before)   # a new array: the caller assigns it
    # The reference in float64: float32 results differ by their own rounding only.
    expected = reference(w.astype(np.float64))
    np.testing.assert_allclose(out, expected, rtol=1e-6 if dtype == np.float32 else 1e-13,
                               atol=1e-7 if dtype == np.float32 else 1e-15)


@pytest.mark.parametrize("constraint, reference", [
    (MaxNorm(1.0, axis=[0, 1, 2]), lambda w: ref_max_norm(w, 1.0, (0, 1, 2))),
    (UnitNorm(axis=[0, 1, 2]), lambda w: ref_unit_norm(w, (0, 1, 2))),
    (MinMaxNorm(0.5, 1.0, axis=[0, 1, 2]),
     lambda w: ref_min_max_norm(w, 0.5, 1.0, 1.0, (0, 1, 2))),
])
def test_norms_over_several_axes_constrain_each_conv_filter(constraint, reference):
    # A Conv2D kernel (rows, cols, in, out): axis [0, 1, 2] gives one norm per filter.
    w = rng(2).standard_normal((3, 3, 2, 4)) * np.array([0.05, 0.2, 1.0, 3.0])
    out = constraint(w)
    np.testing.assert_allclose(out, reference(w), rtol=1e-13)
    per_filter = np.sqrt((out ** 2).sum(axis=(0, 1, 2)))
    if isinstance(constraint, UnitNorm):
        np.testing.assert_allclose(per_filter, 1.0, rtol=1e-6)
    else:
        assert np.all(per_filter <= constraint.max_value * (1 + 1e-6))
        assert np.all(per_filter >= getattr(constraint, "min_value", 0.0) * (1 - 1e-6))


def test_min_max_norm_moves_norms_into_the_interval_at_its_rate():
    w = np.diag([0.5, 1.5, 4.0])   # column norms 0.5, 1.5 and 4
    strict = np.linalg.norm(MinMaxNorm(1.0, 2.0)(w), axis=0)
    np.testing.assert_allclose(strict, [1.0, 1.5, 2.0], rtol=1e-6)
    half = np.linalg.norm(MinMaxNorm(1.0, 2.0, rate=0.5)(w), axis=0)
    np.testing.assert_allclose(half, [0.75, 1.5, 3.0], rtol=1e-6)
    np.testing.assert_allclose(MinMaxNorm(1.0, 2.0, rate=0.0)(w), w, rtol=1e-6)


def test_zero_vectors_stay_zero():
    # The epsilon keeps 0 / 0 away: an all-zero unit stays zero, with no NaN.
    w = np.zeros((3, 2), np.float32)
    for constraint in (MaxNorm(), MinMaxNorm(), UnitNorm()):
        out = constraint(w)
        assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(MaxNorm()(w), 0)
    np.testing.assert_array_equal(UnitNorm()(w), 0)


def test_non_neg_keeps_integer_weights_and_the_others_give_floatx():
    np.testing.assert_array_equal(NonNeg()(np.array([-2, 0, 3])), [0, 0, 3])
    assert NonNeg()(np.array([-2, 3], np.int64)).dtype == np.int64
    # Python data converts as Keras converts it: floats (and norms of ints) in float32.
    out = MaxNorm(1.0)([3.0, 4.0])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.6, 0.8], rtol=1e-6)
    assert UnitNorm()(np.array([3, 4])).dtype == np.float32


def test_constraints_take_variables():
    v = Variable(np.array([[-1.0, 2.0], [3.0, -4.0]], np.float32))
    np.testing.assert_array_equal(NonNeg()(v), [[0.0, 2.0], [3.0, 0.0]])
    np.testing.assert_allclose(np.linalg.norm(UnitNorm()(v), axis=0), 1.0, rtol=1e-6)


def test_base_constraint_is_the_identity():
    w = np.arange(4.0)
    assert Constraint()(w) is w
    assert Constraint().get_config() == {}


def test_axis_out_of_range_names_the_axis_and_the_shape():
    with pytest.raises(ValueError, match=r"MaxNorm has axis=2.*shape \(3, 4\)"):
        MaxNorm(axis=2)(np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"UnitNorm has axis=\[0, -2\]"):
        UnitNorm(axis=[0, -2])(np.ones((3, 4)))   # the same axis twice


@pytest.mark.parametrize("make, argument, received", [
    (lambda: MaxNorm(max_value=-1.0), "max_value", "-1.0"),
    (lambda: MaxNorm(max_value="2"), "max_value", "'2'"),
    (lambda: MaxNorm(max_value=float("inf")), "max_value", "inf"),
    (lambda: MaxNorm(max_value=True), "max_value", "True"),
    (lambda: MaxNorm(axis=1.5), "axis", "1.5"),
    (lambda: MaxNorm(axis=[]), "axis", r"\[\]"),
    (lambda: UnitNorm(axis=[0, 0]), "axis", r"\[0, 0\]"),
    (lambda: UnitNorm(axis=True), "axis", "True"),
    (lambda: MinMaxNorm(min_value=-0.5), "min_value", "-0.5"),
    (lambda: MinMaxNorm(rate=1.5), "rate", "1.5"),
    (lambda: MinMaxNorm(rate=None), "rate", "None"),
    (lambda: MinMaxNorm(min_value=2.0, max_value=1.0), "max_value", "1.0"),
])
def test_bad_arguments_name_the_argument_and_the_value(make, argument, received):
    with pytest.raises(ValueError, match=rf"{argument}={received}"):
        make()


# ---- get, serialize, deserialize ----

@pytest.mark.parametrize("name, cls", [
    ("max_norm", MaxNorm), ("MaxNorm", MaxNorm), ("maxnorm", MaxNorm),
    ("min_max_norm", MinMaxNorm), ("MinMaxNorm", MinMaxNorm),
    ("non_neg", NonNeg), ("NonNeg", NonNeg), ("nonneg", NonNeg), ("Non-Neg", NonNeg),
    ("unit_norm", UnitNorm), ("UnitNorm", UnitNorm),
    ("constraint", Constraint), ("Constraint", Constraint),
])
def test_get_names_give_the_class_with_keras_defaults(name, cls):
    constraint = constraints.get(name)
    assert type(constraint) is cls
    assert constraint.get_config() == cls().get_config()


def test_keras_defaults_and_aliases():
    assert MaxNorm().get_config() == {"max_value": 2.0, "axis": 0}
    assert MinMaxNorm().get_config() == {"min_value": 0.0, "max_value": 1.0, "rate": 1.0,
                                         "axis": 0}
    assert UnitNorm().get_config() == {"axis": 0}
    assert NonNeg().get_config() == {}
    assert (constraints.max_norm, constraints.min_max_norm, constraints.non_neg,
            constraints.unit_norm) == (MaxNorm, MinMaxNorm, NonNeg, UnitNorm)
    assert minidl.constraints is constraints and "constraints" in minidl.__all__


def test_get_passes_instances_and_callables_through_and_instantiates_classes():
    assert constraints.get(None) is None
    c = MaxNorm(3.0)
    assert constraints.get(c) is c

    def clip(w):
        return np.clip(w, -1, 1)
    assert constraints.get(clip) is clip
    assert type(constraints.get(UnitNorm)) is UnitNorm
    got = constraints.get({"class_name": "MinMaxNorm",
                           "config": {"min_value": 0.5, "max_value": 3, "axis": [0, 1]}})
    assert type(got) is MinMaxNorm
    assert got.get_config() == {"min_value": 0.5, "max_value": 3.0, "rate": 1.0,
                                "axis": [0, 1]}


@pytest.mark.parametrize("identifier, error, match", [
    ("nope", ValueError, r"Unknown constraint 'nope'.*max_norm"),
    (5, ValueError, r"Could not interpret constraint identifier.*identifier=5"),
    ({"class_name": "Nope"}, ValueError, "Unknown constraint 'Nope'"),
    ({"max_value": 2}, ValueError, "Could not interpret constraint"),
    ({"class_name": "MaxNorm", "config": {"max_value": "x"}}, ValueError,
     "max_value='x'"),
    ({"class_name": "MaxNorm", "config": {"maximum": 2}}, TypeError, "maximum"),
    ({"class_name": "MaxNorm", "config": {}, "extra": 1}, ValueError, "extra|config"),
    (int, TypeError, r"subclass minidl.constraints.Constraint.*int"),
])
def test_get_refuses_bad_identifiers(identifier, error, match):
    with pytest.raises(error, match=match):
        constraints.get(identifier)


@pytest.mark.parametrize("constraint", [
    MaxNorm(1.25, axis=[0, 1]), MinMaxNorm(0.5, 2.0, rate=0.25, axis=-1), NonNeg(),
    UnitNorm(axis=1), Constraint()], ids=repr)
def test_serialize_round_trips_through_json(constraint):
    config = constraints.serialize(constraint)
    assert config == {"class_name": type(constraint).__name__,
                      "config": constraint.get_config()}
    back = constraints.deserialize(json.loads(json.dumps(config)))
    assert type(back) is type(constraint) and back.get_config() == constraint.get_config()
    assert type(constraints.get(config)) is type(constraint)
    # from_config takes get_config's output.
    assert type(constraint).from_config(constraint.get_config()).get_config() == \
        constraint.get_config()
    w = rng(3).standard_normal((4, 3, 2))
    np.testing.assert_array_equal(back(w), constraint(w))


def test_serialize_none_and_plain_callables():
    assert constraints.serialize(None) is None
    with pytest.raises(ValueError, match="Cannot serialize constraint.*register"):
        constraints.serialize(lambda w: w)


# ---- layer arguments ----

def _conv2d(**kwargs):
    return Conv2D(2, 3, **kwargs)


def _conv1d(**kwargs):
    return Conv1D(2, 3, **kwargs)


def _dense(**kwargs):
    return Dense(3, **kwargs)


# (make(**kwargs), sample input shape, argument, the attribute of the weight it constrains)
LAYER_ARGUMENTS = [
    (_dense, (4,), "kernel_constraint", "kernel"),
    (_dense, (4,), "bias_constraint", "bias"),
    (_conv2d, (5, 5, 2), "kernel_constraint", "kernel"),
    (_conv2d, (5, 5, 2), "bias_constraint", "bias"),
    (_conv1d, (5, 2), "kernel_constraint", "kernel"),
    (_conv1d, (5, 2), "bias_constraint", "bias"),
    (BatchNormalization, (4,), "beta_constraint", "beta"),
    (BatchNormalization, (4,), "gamma_constraint", "gamma"),
    (LayerNormalization, (4,), "beta_constraint", "beta"),
    (LayerNormalization, (4,), "gamma_constraint", "gamma"),
    (PReLU, (4,), "alpha_constraint", "alpha"),
]
ARGUMENT_IDS = [f"{make.__name__.strip('_')}-{argument}"
                for make, _, argument, _ in LAYER_ARGUMENTS]


@pytest.mark.parametrize("make, shape, argument, weight", LAYER_ARGUMENTS, ids=ARGUMENT_IDS)
def test_layer_argument_reaches_the_weight_and_the_config(make, shape, argument, weight):
    plain = make()
    assert plain.get_config()[argument] is None
    minidl.Sequential([Input(shape), plain])
    assert getattr(plain, weight).constraint is None

    layer = make(**{argument: "max_norm"})
    assert type(getattr(layer, argument)) is MaxNorm
    config = layer.get_config()
    assert config[argument] == {"class_name": "MaxNorm", "config": {"max_value": 2.0,
                                                                     "axis": 0}}
    json.dumps(config)
    minidl.Sequential([Input(shape), layer])
    assert getattr(layer, weight).constraint is getattr(layer, argument)
    assert layer.has_constraints
    # The config gives the layer back, with its constraint.
    again = type(layer).from_config(config)
    assert again.get_config()[argument] == config[argument]


@pytest.mark.parametrize("make, shape, argument, weight", LAYER_ARGUMENTS, ids=ARGUMENT_IDS)
def test_layer_argument_refuses_bad_values(make, shape, argument, weight):
    for bad, error in (("nope", ValueError), (5, ValueError),
                       ({"class_name": "UnitNorm", "config": {"axis": "0"}}, ValueError)):
        with pytest.raises(error, match=rf"cannot use {argument}="):
            make(**{argument: bad})


@pytest.mark.parametrize("make, shape, argument, weight", LAYER_ARGUMENTS, ids=ARGUMENT_IDS)
def test_layer_argument_is_applied_after_each_fit_step(make, shape, argument, weight):
    # A callable that sets the weight to a value no optimizer step would give: after fit,
    # the weight holds it, so the constraint ran after the last update.
    calls = []

    def quarter(w):
        calls.append(w.shape)
        return np.full_like(w, 0.25)

    layer = make(**{argument: quarter})
    model = minidl.Sequential([Input(shape), layer, minidl.layers.Flatten(), Dense(1)])
    model.compile(optimizers.SGD(0.1), "mse")
    x = rng(4).standard_normal((6,) + shape).astype(np.float32)
    y = rng(5).standard_normal((6, 1)).astype(np.float32)
    model.fit(x, y, batch_size=3, epochs=1, shuffle=False, verbose=0)
    target = getattr(layer, weight)
    np.testing.assert_array_equal(target.value, np.full(target.shape, 0.25, np.float32))
    assert calls == [target.shape] * 2   # once per step
    # Other weights are left alone.
    others = [v for v in layer.trainable_weights if v is not target]
    assert all(not np.all(v.value == 0.25) for v in others)


def test_add_weight_resolves_constraint_identifiers():
    class Owner(Layer):
        pass

    owner = Owner(name="owner")
    assert type(owner.add_weight((2,), constraint="non_neg", name="a").constraint) is NonNeg
    got = owner.add_weight((2, 2), name="b",
                           constraint={"class_name": "MaxNorm", "config": {"max_value": 3}})
    assert type(got.constraint) is MaxNorm and got.constraint.max_value == 3.0
    instance = UnitNorm()
    assert owner.add_weight((2,), constraint=instance, name="c").constraint is instance
    assert owner.add_weight((2,), name="d").constraint is None
    assert owner.has_constraints
    for bad in ("nope", 5, [NonNeg()]):
        with pytest.raises(ValueError, match=r"Layer 'owner' \(Owner\) cannot use constraint="):
            owner.add_weight((2,), constraint=bad, name="e")
    assert [w.name for w in owner.weights] == ["a", "b", "c", "d"]   # nothing half-added


# ---- training ----

X = rng(6).standard_normal((32, 4)).astype(np.float32)
Y = (X @ rng(7).standard_normal((4, 2)) * 3).astype(np.float32)


def _model(constraint, normalize):
    """Dense(6) -> [LayerNormalization] -> Dense(2), with seeded kernels; ``constraint`` on
    the first kernel. With the normalization, fit runs the general execution plan rather
    than the compiled Dense chain."""
    layers = [Input((4,)), Dense(6, activation="tanh", kernel_constraint=constraint,
                                 kernel_initializer=GlorotUniform(seed=3))]
    if normalize:
        layers.append(LayerNormalization())
    layers.append(Dense(2, kernel_initializer=GlorotUniform(seed=4)))
    return minidl.Sequential(layers)


def _column_norms(model):
    return np.sqrt(np.sum(np.square(model.layers[0].kernel.value), axis=0))


@pytest.mark.parametrize("normalize", [False, True], ids=["dense-chain", "plan"])
def test_fit_keeps_max_norm_and_matches_a_hand_loop(normalize):
    epochs, batch = 3, 8
    model = _model(MaxNorm(1.0), normalize)
    model.compile(optimizers.SGD(0.2), "mse")
    norms, weights = [], []
    record = callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: (
        norms.append(_column_norms(model)), weights.append(model.get_weights())))
    model.fit(X, Y, batch_size=batch, epochs=epochs, shuffle=False, verbose=0,
              callbacks=[record])
    assert (model._dense_chain is None) == normalize   # both compiled paths are covered
    assert len(norms) == epochs
    for epoch_norms in norms:
        assert np.all(epoch_norms <= 1 + 1e-6), epoch_norms
    assert np.max(norms[-1]) > 0.99   # the bound is reached: the constraint is active

    # Without the constraint, the same training takes some columns past norm 1.
    free = _model(None, normalize)
    free.compile(optimizers.SGD(0.2), "mse")
    free.fit(X, Y, batch_size=batch, epochs=epochs, shuffle=False, verbose=0)
    assert np.max(_column_norms(free)) > 1.05

    # A hand-written loop: the same steps, MaxNorm applied after each update.
    hand = _model(None, normalize)
    optimizer = optimizers.SGD(0.2)
    mse = losses.MeanSquaredError()
    project = MaxNorm(1.0)
    kernel = hand.layers[0].kernel
    for epoch in range(epochs):
        for start in range(0, len(X), batch):
            with GradientTape() as tape:
                loss = mse(Y[start:start + batch], hand(X[start:start + batch], training=True))
            grads = tape.gradient(loss, hand.trainable_weights)
            optimizer.apply_gradients(zip(grads, hand.trainable_weights))
            kernel.assign(project(kernel.value))
        for fitted, looped in zip(weights[epoch], hand.get_weights()):
            np.testing.assert_allclose(fitted, looped, rtol=1e-5, atol=1e-6)


class Scale(Layer):
    """``x * w`` with one weight per feature, created with a constraint by name."""

    def __init__(self, constraint=None, **kwargs):
        super().__init__(**kwargs)
        self.constraint = constraint

    def build(self, input_shape):
        self.w = self.add_weight((input_shape[-1],), initializer="ones",
                                 constraint=self.constraint, name="w")

    def call(self, x):
        return x * self.w


def _tape_loop(layer, steps):
    x = rng(8).standard_normal((16, 3)).astype(np.float32)
    y = -5.0 * x   # the best weights are -5: each step pushes them down
    optimizer = optimizers.SGD(0.3)
    layer(x)
    history = []
    for _ in range(steps):
        with GradientTape() as tape:
            loss = minidl.ops.mean(minidl.ops.square(layer(x) - y))
        grads = tape.gradient(loss, layer.trainable_weights)
        optimizer.apply_gradients(zip(grads, layer.trainable_weights))
        history.append(layer.w.value.copy())
    return history


def test_non_neg_in_a_gradient_tape_loop_with_apply_gradients():
    constrained = Scale("non_neg")
    history = _tape_loop(constrained, steps=6)
    assert type(constrained.w.constraint) is NonNeg
    for value in history:
        assert np.all(value >= 0), value
    np.testing.assert_array_equal(history[-1], 0.0)   # pushed to the bound and held there
    # The same loop without the constraint goes negative.
    assert np.all(_tape_loop(Scale(), steps=6)[-1] < 0)


# ---- saving ----

@register_serializable(package="minidl_constraint_tests")
class Clip(Constraint):
    """A custom constraint: ``clip(w, -limit, limit)``."""

    def __init__(self, limit=1.0):
        self.limit = limit

    def __call__(self, w):
        return np.clip(w, -self.limit, self.limit)

    def get_config(self):
        return {"limit": self.limit}


def _constrained_model():
    return minidl.Sequential([
        Input((6, 2)),
        Conv1D(3, 3, kernel_constraint=MaxNorm(1.5, axis=[0, 1]), bias_constraint="non_neg"),
        BatchNormalization(gamma_constraint=MinMaxNorm(0.5, 2.0, rate=0.5),
                           beta_constraint=Clip(0.1)),
        PReLU(alpha_constraint="non_neg"),
        minidl.layers.Flatten(),
        LayerNormalization(gamma_constraint=UnitNorm()),
        Dense(2, kernel_constraint=MaxNorm(0.5), bias_constraint=None),
    ])


ARGUMENTS = ("kernel_constraint", "bias_constraint", "beta_constraint", "gamma_constraint",
             "alpha_constraint")


def _constraint_configs(model):
    return [{key: value for key, value in layer.get_config().items() if key in ARGUMENTS}
            for layer in model.layers]


def test_save_and_load_keep_the_constraints(tmp_path):
    model = _constrained_model()
    model.compile(optimizers.Adam(0.05), "mse")
    x = rng(9).standard_normal((12, 6, 2)).astype(np.float32)
    y = rng(10).standard_normal((12, 2)).astype(np.float32)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    path = tmp_path / "constrained.minidl"
    model.save(path)
    loaded = minidl.models.load_model(path)

    expected = _constraint_configs(model)
    assert _constraint_configs(loaded) == expected
    assert expected[0]["kernel_constraint"] == {
        "class_name": "MaxNorm", "config": {"max_value": 1.5, "axis": [0, 1]}}
    assert expected[1]["beta_constraint"] == {"class_name": "Clip", "config": {"limit": 0.1}}
    assert expected[-1]["bias_constraint"] is None
    # The loaded weights carry constraint objects, which training applies.
    pairs = [(loaded.layers[0].kernel, MaxNorm), (loaded.layers[0].bias, NonNeg),
             (loaded.layers[1].gamma, MinMaxNorm), (loaded.layers[1].beta, Clip),
             (loaded.layers[2].alpha, NonNeg), (loaded.layers[4].gamma, UnitNorm),
             (loaded.layers[5].kernel, MaxNorm)]
    assert all(type(v.constraint) is cls for v, cls in pairs)
    assert loaded.layers[5].bias.constraint is None
    loaded.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.all(loaded.layers[0].bias.value >= 0)
    assert np.all(np.abs(loaded.layers[1].beta.value) <= 0.1)
    assert np.all(np.sqrt((loaded.layers[5].kernel.value ** 2).sum(axis=0)) <= 0.5 + 1e-6)
    np.testing.assert_allclose(np.linalg.norm(loaded.layers[4].gamma.value), 1.0, rtol=1e-5)


def test_saving_a_plain_callable_constraint_names_the_layer_and_argument(tmp_path):
    model = minidl.Sequential([Input((3,)), Dense(2, bias_constraint=lambda w: w,
                                                  name="head")])
    with pytest.raises(ValueError, match=r"Layer 'head' \(Dense\) cannot save "
                                         r"bias_constraint: Cannot serialize constraint"):
        model.save(tmp_path / "fn.minidl")
    assert not (tmp_path / "fn.minidl").exists()
