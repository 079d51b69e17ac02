"""Custom training code as keras.io writes it (Keras 3), on minidl's names: train_step /
test_step / predict_step overrides, a GAN, a VAE, add_loss, hand-written GradientTape loops,
and the errors of such code.

The checks compare numbers: the default compiled fit path started from the same weights on
the same batches (shuffle=False), numpy, and central differences on float64 models
(``numeric_grad``).
"""
import numpy as np
import pytest

import minidl
from minidl import layers, ops
from minidl._ref.gradcheck import numeric_grad
from minidl.autodiff import no_record_scope
from minidl.losses import BinaryCrossentropy, MeanSquaredError, SparseCategoricalCrossentropy

pytestmark = pytest.mark.usefixtures("one_thread")


def rng(seed):
    return np.random.default_rng(seed)


def regression_data(n=40, features=6, seed=0):
    r = rng(seed)
    x = r.standard_normal((n, features)).astype(np.float32)
    y = (x[:, :1] - 0.5 * x[:, 1:2] + 0.1 * r.standard_normal((n, 1))).astype(np.float32)
    return x, y


def small_functional(cls, features=6, outputs=1, seed=1):
    """The same architecture and initial weights for any Model class ``cls``."""
    minidl.utils.set_random_seed(seed)
    inputs = minidl.Input((features,))
    hidden = layers.Dense(8, activation="relu")(inputs)
    return cls(inputs, layers.Dense(outputs)(hidden))


def assert_same_weights(a, b, atol=1e-6):
    for name, wa, wb in zip(a.weight_names, a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=0, atol=atol, err_msg=name)


# ---- 2. train_step / test_step / predict_step overrides (Keras 3's guide) ----

class CustomModel(minidl.Model):
    """keras.io "Customizing what happens in fit()", Keras 3 version."""

    def train_step(self, data):
        x, y = data
        with minidl.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
        trainable_vars = self.trainable_weights
        gradients = tape.gradient(loss, trainable_vars)
        self.optimizer.apply(gradients, trainable_vars)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}


class WeightedCustomModel(minidl.Model):
    """The guide's variant supporting sample_weight."""

    def train_step(self, data):
        x, y, sample_weight = data
        with minidl.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred, sample_weight=sample_weight)
        self.optimizer.apply_gradients(zip(tape.gradient(loss, self.trainable_weights),
                                           self.trainable_weights))
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred, sample_weight=sample_weight)
        return {m.name: m.result() for m in self.metrics}


class CustomTestModel(minidl.Model):
    calls = 0

    def test_step(self, data):
        CustomTestModel.calls += 1
        x, y = data
        y_pred = self(x, training=False)
        loss = self.compute_loss(y=y, y_pred=y_pred)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}


class SoftmaxPredictModel(minidl.Model):
    def predict_step(self, data):
        return ops.softmax(self(data, training=False), axis=-1)


def test_train_step_override_matches_the_default_fit():
    x, y = regression_data()
    custom = small_functional(CustomModel)
    default = small_functional(minidl.Model)
    assert_same_weights(custom, default, atol=0)
    histories = []
    for model in (custom, default):
        model.compile(minidl.optimizers.Adam(0.01), "mse", metrics=["mae"])
        histories.append(model.fit(x, y, epochs=4, batch_size=10, shuffle=False,
                                   verbose=0).history)
        assert [m.name for m in model.metrics] == ["loss", "mae"]
    assert custom.optimizer.iterations == default.optimizer.iterations == 16
    assert_same_weights(custom, default)
    for key in ("loss", "mae"):
        np.testing.assert_allclose(histories[0][key], histories[1][key], rtol=1e-6)
    # the loss went down: the weights compared above were trained
    assert histories[0]["loss"][-1] < 0.8 * histories[0]["loss"][0]


def test_train_step_override_with_sample_weight_matches_the_default_fit():
    x, y = regression_data()
    weights = rng(1).uniform(0, 2, len(x)).astype(np.float32)
    custom = small_functional(WeightedCustomModel)
    default = small_functional(minidl.Model)
    histories = []
    for model in (custom, default):
        model.compile(minidl.optimizers.Adam(0.01), "mse")
        histories.append(model.fit(x, y, sample_weight=weights, epochs=2, batch_size=10,
                                   shuffle=False, verbose=0).history)
    assert_same_weights(custom, default)
    np.testing.assert_allclose(histories[0]["loss"], histories[1]["loss"], rtol=1e-6)


class LowLevelModel(minidl.Model):
    """The guide's "going lower-level" model: its own loss, trackers and metrics, compiled
    with an optimizer only."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_tracker = minidl.metrics.Mean(name="loss")
        self.mae_metric = minidl.metrics.MeanAbsoluteError(name="mae")
        self.loss_fn = MeanSquaredError()

    def train_step(self, data):
        x, y = data
        with minidl.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.loss_fn(y, y_pred)
        self.optimizer.apply(tape.gradient(loss, self.trainable_weights),
                             self.trainable_weights)
        self.loss_tracker.update_state(loss)
        self.mae_metric.update_state(y, y_pred)
        return {"loss": self.loss_tracker.result(), "mae": self.mae_metric.result()}

    @property
    def metrics(self):
        return [self.loss_tracker, self.mae_metric]


def test_train_step_without_a_compiled_loss_receives_y():
    x, y = regression_data()
    custom = small_functional(LowLevelModel)
    default = small_functional(minidl.Model)
    custom.compile(optimizer=minidl.optimizers.Adam(0.01))
    default.compile(minidl.optimizers.Adam(0.01), "mse", metrics=["mae"])
    histories = [model.fit(x, y, epochs=2, batch_size=10, shuffle=False, verbose=0).history
                 for model in (custom, default)]
    assert_same_weights(custom, default)
    np.testing.assert_allclose(histories[0]["mae"], histories[1]["mae"], rtol=1e-6)


def test_test_step_override_gives_the_default_evaluation():
    r = rng(2)
    x = r.standard_normal((30, 6)).astype(np.float32)
    y = r.integers(0, 3, 30)
    custom = small_functional(CustomTestModel, outputs=3)
    default = small_functional(minidl.Model, outputs=3)
    results = []
    for model in (custom, default):
        model.compile("adam", SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        results.append(model.evaluate(x, y, batch_size=10, verbose=0, return_dict=True))
    assert CustomTestModel.calls == 3
    assert results[0] == pytest.approx(results[1], rel=1e-6)
    # fit's validation runs the override too.
    CustomTestModel.calls = 0
    history = custom.fit(x, y, batch_size=10, epochs=2, validation_data=(x, y),
                         verbose=0).history
    assert CustomTestModel.calls == 2 * 3
    assert history["val_loss"][-1] == pytest.approx(
        custom.evaluate(x, y, batch_size=10, verbose=0, return_dict=True)["loss"], rel=1e-6)


def test_predict_step_override_shapes_predict():
    model = small_functional(SoftmaxPredictModel, outputs=3)
    x = rng(3).standard_normal((23, 6)).astype(np.float32)
    predicted = model.predict(x, batch_size=7, verbose=0)   # (a last batch of 2)
    logits = model(x).numpy().astype(np.float64)
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    assert predicted.shape == (23, 3)
    np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-7)


# ---- 3. a GAN (keras.io "DCGAN overriding train_step", on 2-D points) ----

LATENT = 3


def make_gan_parts(dtype="float32", seed=0):
    minidl.utils.set_random_seed(seed)
    discriminator = minidl.Sequential(
        [minidl.Input((2,), dtype=dtype), layers.Dense(16, activation="relu", dtype=dtype),
         layers.Dense(1, dtype=dtype)], name="discriminator")
    inputs = minidl.Input((LATENT,), dtype=dtype)
    hidden = layers.Dense(16, activation="relu", dtype=dtype)(inputs)
    generator = minidl.Model(inputs, layers.Dense(2, dtype=dtype)(hidden), name="generator")
    return discriminator, generator


def real_points(n=64, seed=0):
    return (rng(seed).standard_normal((n, 2)) * 0.3 + [2.0, -1.0]).astype(np.float32)


class GAN(minidl.Model):
    STEPS = None   # per-step (d_loss, g_loss), when a test wants them

    def __init__(self, discriminator, generator, latent_dim, seed=1337):
        super().__init__()
        self.discriminator = discriminator
        self.generator = generator
        self.latent_dim = latent_dim
        self.seed_generator = minidl.random.SeedGenerator(seed)

    # keras.io's GAN has no call (see test_gan_subclass_without_call_can_be_made); minidl
    # builds a subclassed model by calling it, so this one scores points.
    def call(self, x):
        return self.discriminator(x)

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        super().compile()
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn
        self.d_loss_metric = minidl.metrics.Mean(name="d_loss")
        self.g_loss_metric = minidl.metrics.Mean(name="g_loss")

    @property
    def metrics(self):
        return [self.d_loss_metric, self.g_loss_metric]

    def train_step(self, real_points):
        batch_size = ops.shape(real_points)[0]
        # Train the discriminator on generated points (label 1) and real ones (label 0),
        # with a little label noise.
        latent = minidl.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)
        generated = self.generator(latent)
        combined = ops.concatenate([generated, real_points], axis=0)
        labels = ops.concatenate([ops.ones((batch_size, 1)), ops.zeros((batch_size, 1))],
                                 axis=0)
        labels += 0.05 * minidl.random.uniform(ops.shape(labels), seed=self.seed_generator)
        with minidl.GradientTape() as tape:
            predictions = self.discriminator(combined)
            d_loss = self.loss_fn(labels, predictions)
        grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))

        # Train the generator to make the discriminator say "real" (without touching the
        # discriminator's weights).
        latent = minidl.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)
        misleading_labels = ops.zeros((batch_size, 1))
        with minidl.GradientTape() as tape:
            predictions = self.discriminator(self.generator(latent))
            g_loss = self.loss_fn(misleading_labels, predictions)
        grads = tape.gradient(g_loss, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))

        self.d_loss_metric.update_state(d_loss)
        self.g_loss_metric.update_state(g_loss)
        if self.STEPS is not None:
            self.STEPS.append((float(d_loss), float(g_loss)))
        return {"d_loss": self.d_loss_metric.result(), "g_loss": self.g_loss_metric.result()}


class LoggedGAN(GAN):
    """The GAN with a 'loss' entry in its logs as well (see
    test_fit_logs_without_a_loss_entry)."""

    def train_step(self, real_points):
        logs = super().train_step(real_points)
        logs["loss"] = logs["d_loss"] + logs["g_loss"]
        return logs


class WatchedAdam(minidl.optimizers.Adam):
    """Adam that records, around each of its updates, every weight of the watched models,
    in a log shared with another optimizer (so the order of updates shows)."""

    def __init__(self, label, models, log, **kwargs):
        super().__init__(**kwargs)
        self.label, self.models, self.log = label, models, log

    def snapshot(self):
        return {name: [w.numpy() for w in model.weights] for name, model in self.models.items()}

    def apply(self, grads, variables=None):
        before = self.snapshot()
        super().apply(grads, variables)
        self.log.append((self.label, before, self.snapshot()))


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def changed_all(a, b):
    return all(not np.array_equal(x, y) for x, y in zip(a, b))


def compiled_gan(cls=LoggedGAN, seed=1337):
    """The GAN compiled with two WatchedAdam; returns it and their shared log."""
    discriminator, generator = make_gan_parts()
    gan = cls(discriminator, generator, LATENT, seed=seed)
    models = {"d": discriminator, "g": generator}
    log = []
    gan.compile(d_optimizer=WatchedAdam("d", models, log, learning_rate=0.003),
                g_optimizer=WatchedAdam("g", models, log, learning_rate=0.003),
                loss_fn=BinaryCrossentropy(from_logits=True))
    return gan, log


def test_gan_trains_with_fit_and_logs_both_losses_per_epoch(monkeypatch):
    steps = []
    monkeypatch.setattr(GAN, "STEPS", steps)
    gan, _ = compiled_gan()
    history = gan.fit(real_points(), epochs=4, batch_size=16, verbose=0).history
    assert set(history) == {"loss", "d_loss", "g_loss"}
    assert len(history["d_loss"]) == len(history["g_loss"]) == 4
    assert np.all(np.isfinite(history["d_loss"])) and np.all(np.isfinite(history["g_loss"]))
    # The trackers (the overridden `metrics`) restart every epoch: each epoch's value is
    # the mean of its 4 steps.
    per_epoch = np.array(steps).reshape(4, 4, 2).mean(axis=1)
    np.testing.assert_allclose(history["d_loss"], per_epoch[:, 0], rtol=1e-6)
    np.testing.assert_allclose(history["g_loss"], per_epoch[:, 1], rtol=1e-6)
    assert gan.d_optimizer.iterations == gan.g_optimizer.iterations == 16


def test_gan_each_optimizer_moves_only_its_own_model():
    gan, log = compiled_gan()
    d_initial = gan.discriminator.get_weights()
    g_initial = gan.generator.get_weights()
    gan.fit(real_points(), epochs=2, batch_size=16, verbose=0)
    assert [label for label, _, _ in log] == ["d", "g"] * 8
    for label, before, after in log:
        other = "g" if label == "d" else "d"
        assert changed_all(before[label], after[label]), label
        assert same(before[other], after[other]), f"the {label} update moved {other}"
    # Nothing else writes the weights: each update starts where the previous one ended,
    # from the initial weights to the final ones.
    assert same(log[0][1]["d"], d_initial) and same(log[0][1]["g"], g_initial)
    for (_, _, after), (_, before, _) in zip(log, log[1:]):
        assert same(after["d"], before["d"]) and same(after["g"], before["g"])
    assert same(log[-1][2]["d"], gan.discriminator.get_weights())
    assert same(log[-1][2]["g"], gan.generator.get_weights())


def test_gan_is_reproducible_from_its_seed_generator():
    runs = []
    for seed in (1337, 1337, 7):
        gan, _ = compiled_gan(seed=seed)
        gan.fit(real_points(), epochs=2, batch_size=16, shuffle=False, verbose=0)
        runs.append(gan.generator.get_weights() + gan.discriminator.get_weights())
    assert same(runs[0], runs[1])
    assert not same(runs[0], runs[2])   # the latent draws do come from the generator


def test_persistent_tape_gives_both_gan_gradients_as_two_tapes_and_central_differences():
    discriminator, generator = make_gan_parts(dtype="float64")
    loss_fn = BinaryCrossentropy(from_logits=True)
    r = rng(4)
    real = r.standard_normal((5, 2)) + 1.0
    latent = r.standard_normal((5, LATENT))
    ones, zeros = np.ones((5, 1)), np.zeros((5, 1))

    def d_loss():
        return loss_fn(zeros, discriminator(real)) + \
            loss_fn(ones, discriminator(generator(latent)))

    def g_loss():
        return loss_fn(zeros, discriminator(generator(latent)))

    with minidl.GradientTape(persistent=True) as tape:
        d_value, g_value = d_loss(), g_loss()
    d_grads = tape.gradient(d_value, discriminator.trainable_weights)
    g_grads = tape.gradient(g_value, generator.trainable_weights)
    for fn, grads, model in ((d_loss, d_grads, discriminator), (g_loss, g_grads, generator)):
        with minidl.GradientTape() as tape:
            value = fn()
        for a, b in zip(grads, tape.gradient(value, model.trainable_weights)):
            np.testing.assert_array_equal(a, b)

        def scalar():
            with no_record_scope():
                return float(fn())
        for variable, grad in zip(model.trainable_weights, grads):
            np.testing.assert_allclose(grad, numeric_grad(scalar, variable.value), rtol=1e-6,
                                       atol=1e-9, err_msg=variable.path)


def test_gan_subclass_without_call_can_be_made():
    class CalllessGAN(minidl.Model):
        def __init__(self, discriminator, generator):
            super().__init__()
            self.discriminator = discriminator
            self.generator = generator

    discriminator, generator = make_gan_parts()
    gan = CalllessGAN(discriminator, generator)
    assert len(gan.trainable_weights) == 8


def test_fit_logs_without_a_loss_entry():
    gan, _ = compiled_gan(cls=GAN)
    history = gan.fit(real_points(), epochs=2, batch_size=16, verbose=0).history
    assert set(history) == {"d_loss", "g_loss"}


# ---- 4. a VAE (keras.io "Variational AutoEncoder", on 8-feature vectors) ----

class Sampling(layers.Layer):
    """z = z_mean + exp(z_log_var / 2) * epsilon, epsilon ~ N(0, 1)."""

    def __init__(self, seed=1337, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = minidl.random.SeedGenerator(seed)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        batch = ops.shape(z_mean)[0]
        dim = ops.shape(z_mean)[1]
        epsilon = minidl.random.normal(shape=(batch, dim), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon


class KLSampling(Sampling):
    """Sampling that adds the KL divergence to the loss itself."""

    def call(self, inputs):
        z_mean, z_log_var = inputs
        kl = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
        self.add_loss(ops.mean(ops.sum(kl, axis=1)))
        return super().call(inputs)


LATENT_VAE = 2


def make_vae_parts(sampling_cls=Sampling, seed=0):
    minidl.utils.set_random_seed(seed)
    inputs = minidl.Input((8,))
    hidden = layers.Dense(16, activation="relu")(inputs)
    z_mean = layers.Dense(LATENT_VAE, name="z_mean")(hidden)
    z_log_var = layers.Dense(LATENT_VAE, name="z_log_var")(hidden)
    z = sampling_cls()([z_mean, z_log_var])
    encoder = minidl.Model(inputs, [z_mean, z_log_var, z], name="encoder")
    latent = minidl.Input((LATENT_VAE,))
    hidden = layers.Dense(16, activation="relu")(latent)
    decoder = minidl.Model(latent, layers.Dense(8, activation="sigmoid")(hidden),
                           name="decoder")
    return encoder, decoder


def vae_data(n=128, seed=0):
    """Points in [0, 1]^8 driven by two latent factors: something a VAE can compress."""
    r = rng(seed)
    factors = r.standard_normal((n, 2))
    mixing = r.standard_normal((2, 8)) * 2
    return (1 / (1 + np.exp(-(factors @ mixing)))).astype(np.float32)


class VAE(minidl.Model):
    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.total_loss_tracker = minidl.metrics.Mean(name="total_loss")
        self.reconstruction_loss_tracker = minidl.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = minidl.metrics.Mean(name="kl_loss")
        self.steps = []

    def call(self, x):   # (keras.io's VAE has none; see the GAN's note)
        return self.decoder(self.encoder(x)[2])

    @property
    def metrics(self):
        return [self.total_loss_tracker, self.reconstruction_loss_tracker,
                self.kl_loss_tracker]

    def train_step(self, data):
        with minidl.GradientTape() as tape:
            z_mean, z_log_var, z = self.encoder(data)
            reconstruction = self.decoder(z)
            reconstruction_loss = ops.mean(ops.sum(minidl.losses.binary_crossentropy(
                data[..., None], reconstruction[..., None]), axis=1))
            kl_loss = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
            kl_loss = ops.mean(ops.sum(kl_loss, axis=1))
            total_loss = reconstruction_loss + kl_loss
        grads = tape.gradient(total_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self.total_loss_tracker.update_state(total_loss)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.kl_loss_tracker.update_state(kl_loss)
        self.steps.append((float(total_loss), float(reconstruction_loss), float(kl_loss)))
        return {"loss": self.total_loss_tracker.result(),
                "reconstruction_loss": self.reconstruction_loss_tracker.result(),
                "kl_loss": self.kl_loss_tracker.result()}


def test_vae_fits_x_alone_and_its_loss_decreases():
    vae = VAE(*make_vae_parts())
    vae.compile(optimizer=minidl.optimizers.Adam(0.01))
    history = vae.fit(vae_data(), epochs=12, batch_size=32, verbose=0).history
    assert set(history) == {"loss", "reconstruction_loss", "kl_loss"}
    loss = np.array(history["loss"])
    assert np.all(np.isfinite(loss))
    assert loss[-3:].mean() < loss[0] - 0.2
    np.testing.assert_allclose(loss, np.add(history["reconstruction_loss"],
                                            history["kl_loss"]), rtol=1e-6)


def test_vae_trackers_restart_every_epoch():
    # History values are the means of each epoch's own steps: the trackers are reset by
    # fit through the overridden `metrics` (else later epochs would average all steps).
    vae = VAE(*make_vae_parts())
    vae.compile(optimizer=minidl.optimizers.Adam(0.01))
    history = vae.fit(vae_data(), epochs=3, batch_size=32, verbose=0).history
    per_epoch = np.array(vae.steps).reshape(3, 4, 3).mean(axis=1)
    np.testing.assert_allclose(history["loss"], per_epoch[:, 0], rtol=1e-6)
    np.testing.assert_allclose(history["reconstruction_loss"], per_epoch[:, 1], rtol=1e-6)
    np.testing.assert_allclose(history["kl_loss"], per_epoch[:, 2], rtol=1e-6)
    cumulative = np.cumsum(np.array(vae.steps)[:, 0])[3::4] / np.arange(4, 13, 4)
    assert not np.allclose(history["loss"][1:], cumulative[1:], rtol=1e-6)


def test_sampling_layer_draws_from_its_seed_generator_and_differentiates():
    layer = Sampling(seed=42)
    r = rng(5)
    z_mean = minidl.Tensor(r.standard_normal((4, 3)))
    z_log_var = minidl.Tensor(r.standard_normal((4, 3)) * 0.5)
    state = layer.seed_generator.state.numpy()
    with minidl.GradientTape(persistent=True) as tape:
        tape.watch([z_mean, z_log_var])
        z = layer([z_mean, z_log_var])
        total = ops.sum(z)
    # epsilon is the generator's next draw: restore its state and draw it again.
    layer.seed_generator.state.assign(state)
    epsilon = minidl.random.normal((4, 3), seed=layer.seed_generator).numpy()
    np.testing.assert_allclose(z.numpy(), z_mean.numpy() + np.exp(0.5 * z_log_var.numpy())
                               * epsilon, rtol=1e-6)
    d_mean, d_log_var = tape.gradient(total, [z_mean, z_log_var])
    np.testing.assert_allclose(d_mean, np.ones((4, 3)))
    np.testing.assert_allclose(d_log_var, 0.5 * np.exp(0.5 * z_log_var.numpy()) * epsilon,
                               rtol=1e-6)
    # The next call draws anew.
    assert not np.allclose(layer([z_mean, z_log_var]).numpy(), z.numpy())


class AddLossVAE(minidl.Model):
    """KL term from add_loss in the sampling layer, joined by compute_loss."""

    def __init__(self, encoder, decoder):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.seen = []

    def call(self, x):
        return self.decoder(self.encoder(x)[2])

    def train_step(self, x):
        with minidl.GradientTape() as tape:
            reconstruction = self(x, training=True)
            loss = self.compute_loss(x=x, y=x, y_pred=reconstruction)
        self.optimizer.apply(tape.gradient(loss, self.trainable_weights),
                             self.trainable_weights)
        sampling = self.encoder.layers[-1]
        self.seen.append((float(loss), float(np.mean((reconstruction.numpy() - x) ** 2)),
                          [float(term) for term in sampling.losses]))
        for metric in self.metrics:
            metric.update_state(loss)
        return {m.name: m.result() for m in self.metrics}


def test_vae_with_add_loss_kl_term_joins_compute_loss():
    vae = AddLossVAE(*make_vae_parts(KLSampling))
    vae.compile(minidl.optimizers.Adam(0.01), "mse")
    history = vae.fit(vae_data(), epochs=8, batch_size=32, verbose=0).history
    for loss, mse, terms in vae.seen:
        assert len(terms) == 1 and terms[0] > 0
        assert loss == pytest.approx(mse + terms[0], rel=1e-5)
    assert history["loss"][-1] < history["loss"][0]


# ---- 5. add_loss: compiled plan path (functional) and eager path (subclassed) ----

RATE = 0.3


class ActivityPenalty(layers.Layer):
    """keras.io's ActivityRegularizationLayer: add_loss(rate * mean(x^2)), x unchanged."""

    def call(self, x):
        self.add_loss(RATE * ops.mean(ops.square(x)))
        return x


def functional_with_penalty():
    minidl.utils.set_random_seed(7)
    inputs = minidl.Input((4,), dtype="float64")
    hidden = layers.Dense(3, activation="tanh", dtype="float64")(inputs)
    hidden = ActivityPenalty(dtype="float64")(hidden)
    return minidl.Model(inputs, layers.Dense(1, dtype="float64")(hidden))


class SubclassedWithPenalty(minidl.Model):
    def __init__(self):
        minidl.utils.set_random_seed(7)
        super().__init__(dtype="float64")
        self.hidden = layers.Dense(3, activation="tanh", dtype="float64")
        self.penalty = ActivityPenalty(dtype="float64")
        self.out = layers.Dense(1, dtype="float64")

    def call(self, x):
        return self.out(self.penalty(self.hidden(x)))


def penalty_data():
    r = rng(8)
    return r.standard_normal((6, 4)), r.standard_normal((6, 1))


def penalty_losses(weights, x, y):
    """(mse, added term) of the tiny model, in numpy."""
    k1, b1, k2, b2 = weights
    h = np.tanh(x @ k1 + b1)
    return np.mean((h @ k2 + b2 - y) ** 2), RATE * np.mean(h ** 2)


def built(make):
    model = make()
    model.build((None, 4))
    return model


MAKERS = {"functional": functional_with_penalty, "subclassed": SubclassedWithPenalty}


@pytest.mark.parametrize("kind", [
    "functional",
    "subclassed"])
def test_add_loss_term_is_in_the_logged_loss(kind):
    x, y = penalty_data()
    model = built(MAKERS[kind])
    mse, term = penalty_losses(model.get_weights(), x, y)
    model.compile(minidl.optimizers.SGD(0.5), "mse")
    assert model.evaluate(x, y, batch_size=6, verbose=0) == pytest.approx(mse + term,
                                                                           rel=1e-12)
    # fit's loss is that of the batch before its one update.
    history = model.fit(x, y, batch_size=6, epochs=1, shuffle=False, verbose=0).history
    assert history["loss"][0] == pytest.approx(mse + term, rel=1e-12)


@pytest.mark.parametrize("kind", ["functional", "subclassed"])
def test_add_loss_gradient_reaches_the_weights(kind):
    # One SGD step: (w0 - w1) / lr is the gradient fit applied; it must be the central
    # difference of mse + added term (float64 model).
    x, y = penalty_data()
    model = built(MAKERS[kind])
    w0 = model.get_weights()
    lr = 0.5
    model.compile(minidl.optimizers.SGD(lr), "mse")
    model.fit(x, y, batch_size=6, epochs=1, shuffle=False, verbose=0)
    w1 = model.get_weights()
    ws = [w.copy() for w in w0]

    def total():
        return sum(penalty_losses(ws, x, y))
    for name, a, b, w in zip(model.weight_names, w0, w1, ws):
        numeric = numeric_grad(total, w)
        np.testing.assert_allclose((a - b) / lr, numeric, rtol=1e-6, atol=1e-9, err_msg=name)
    # (without the added term the first layer's gradient would differ)
    mse_only = numeric_grad(lambda: penalty_losses(ws, x, y)[0], ws[0])
    assert not np.allclose((w0[0] - w1[0]) / lr, mse_only, rtol=1e-3)


class SelfPenalized(minidl.Model):
    """add_loss called by the model's own call."""

    def __init__(self):
        super().__init__()
        self.dense = layers.Dense(1, kernel_initializer="ones")

    def call(self, x):
        out = self.dense(x)
        self.add_loss(ops.mean(ops.square(out)))
        return out


def test_add_loss_in_the_models_own_call_joins_the_loss():
    r = rng(9)
    x = r.standard_normal((6, 4)).astype(np.float32)
    y = r.standard_normal((6, 1)).astype(np.float32)
    model = SelfPenalized()
    model.compile(minidl.optimizers.SGD(0.0), "mse")
    out = x.sum(axis=1, keepdims=True)   # ones kernel, zero bias
    expected = np.mean((out - y) ** 2) + np.mean(out ** 2)
    assert model.evaluate(x, y, batch_size=6, verbose=0) == pytest.approx(expected, rel=1e-5)


class Summing(layers.Layer):
    def call(self, x):
        self.add_loss(ops.sum(x))
        return x


class SharedPenalty(minidl.Model):
    def __init__(self):
        super().__init__()
        self.penalty = Summing()
        self.dense = layers.Dense(1, kernel_initializer="ones")

    def call(self, x):
        return self.dense(self.penalty(x) + self.penalty(2.0 * x))


def test_add_loss_of_a_layer_called_twice_counts_both_calls():
    r = rng(10)
    x = r.standard_normal((6, 4)).astype(np.float32)
    y = r.standard_normal((6, 1)).astype(np.float32)
    model = SharedPenalty()
    model.compile(minidl.optimizers.SGD(0.0), "mse")
    out = 3 * x.sum(axis=1, keepdims=True)
    expected = np.mean((out - y) ** 2) + x.sum() + 2 * x.sum()
    assert model.evaluate(x, y, batch_size=6, verbose=0) == pytest.approx(expected, rel=1e-5)


class TrainingOnlyPenalty(minidl.Model):
    def __init__(self):
        super().__init__()
        self.penalty = Summing()
        self.dense = layers.Dense(1, kernel_initializer="ones")

    def call(self, x, training=None):
        if training:
            x = self.penalty(x)
        return self.dense(x)


def test_add_loss_of_a_layer_not_called_in_this_pass_is_not_counted():
    r = rng(11)
    x = r.standard_normal((6, 4)).astype(np.float32)
    y = r.standard_normal((6, 1)).astype(np.float32)
    model = TrainingOnlyPenalty()
    model.compile(minidl.optimizers.SGD(0.0), "mse")
    model.fit(x, y, batch_size=6, epochs=1, verbose=0)   # training: the penalty is added
    out = x.sum(axis=1, keepdims=True)
    # evaluate runs call with training=False: no penalty layer, no added term.
    assert model.evaluate(x, y, batch_size=6, verbose=0) == pytest.approx(
        np.mean((out - y) ** 2), rel=1e-5)


def test_model_losses_list_the_add_loss_terms_of_the_last_call():
    x, _ = penalty_data()
    model = built(SubclassedWithPenalty)
    model(x)
    (k1, b1, _, _) = model.get_weights()
    expected = RATE * np.mean(np.tanh(x @ k1 + b1) ** 2)
    assert [float(term) for term in model.losses] == pytest.approx([expected], rel=1e-12)


# ---- 6. hand-written loops ----

def conv_model():
    minidl.utils.set_random_seed(3)
    return minidl.Sequential([minidl.Input((6, 6, 2)), layers.Conv2D(4, 3, activation="relu"),
                              layers.BatchNormalization(), layers.Flatten(), layers.Dense(3)])


def test_gradient_tape_loop_reaches_the_weights_of_fit():
    r = rng(12)
    x = r.standard_normal((32, 6, 6, 2)).astype(np.float32)
    y = r.integers(0, 3, 32)
    loss_fn = SparseCategoricalCrossentropy(from_logits=True)
    fitted, looped = conv_model(), conv_model()
    assert_same_weights(fitted, looped, atol=0)
    fitted.compile(minidl.optimizers.Adam(0.01), loss_fn)
    history = fitted.fit(x, y, batch_size=8, epochs=5, shuffle=False, verbose=0).history

    optimizer = minidl.optimizers.Adam(0.01)
    losses = []
    for _ in range(5):
        for start in range(0, 32, 8):
            xb, yb = x[start:start + 8], y[start:start + 8]
            with minidl.GradientTape() as tape:
                logits = looped(xb, training=True)
                loss = loss_fn(yb, logits)
            grads = tape.gradient(loss, looped.trainable_weights)
            optimizer.apply_gradients(zip(grads, looped.trainable_weights))
            losses.append(float(loss))
    # Every weight, BatchNormalization's moving statistics included.
    assert_same_weights(fitted, looped)
    np.testing.assert_allclose(history["loss"], np.reshape(losses, (5, 4)).mean(axis=1),
                               rtol=1e-6)
    assert history["loss"][-1] < 0.5 * history["loss"][0]


def test_tape_gradients_of_built_in_layers_on_tensors_match_central_differences():
    minidl.utils.set_random_seed(0)
    conv = layers.Conv2D(3, 3, padding="same", activation="tanh", dtype="float64")
    norm = layers.BatchNormalization(dtype="float64")
    pool = layers.MaxPooling2D(2, dtype="float64")
    dense = layers.Dense(2, activation="sigmoid", dtype="float64")
    r = rng(13)
    x = minidl.Tensor(r.standard_normal((3, 4, 4, 2)))
    w = r.standard_normal((3, 2))

    def scalar_tensor():
        h = pool(norm(conv(x), training=True))   # batch statistics: a function of x
        return ops.sum(dense(ops.reshape(h, (3, -1))) * w)

    scalar_tensor()   # builds the layers
    variables = conv.trainable_weights + norm.trainable_weights + dense.trainable_weights
    with minidl.GradientTape() as tape:
        tape.watch(x)
        value = scalar_tensor()
    grads = tape.gradient(value, [x] + variables)

    def scalar():
        with no_record_scope():
            return float(scalar_tensor())
    np.testing.assert_allclose(grads[0], numeric_grad(scalar, x.value), rtol=1e-6, atol=1e-9)
    for variable, grad in zip(variables, grads[1:]):
        np.testing.assert_allclose(grad, numeric_grad(scalar, variable.value), rtol=1e-6,
                                   atol=1e-9, err_msg=variable.path)


def test_tape_gradients_through_a_float64_model_call_match_central_differences():
    minidl.utils.set_random_seed(1)
    model = minidl.Sequential([minidl.Input((5,), dtype="float64"),
                               layers.Dense(4, activation="tanh", dtype="float64"),
                               layers.Dense(3, dtype="float64")])
    r = rng(14)
    x, y = r.standard_normal((6, 5)), r.integers(0, 3, 6)
    loss_fn = SparseCategoricalCrossentropy(from_logits=True)
    with minidl.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_weights)

    def scalar():
        return float(loss_fn(y, model(x)))
    for variable, grad in zip(model.trainable_weights, grads):
        np.testing.assert_allclose(grad, numeric_grad(scalar, variable.value), rtol=1e-6,
                                   atol=1e-9, err_msg=variable.path)


# ---- 7. bad input ----

def test_non_persistent_tape_computes_gradients_once():
    v = minidl.Variable(np.array([1.0, 2.0, 3.0], np.float32))
    with minidl.GradientTape() as tape:
        y = ops.sum(v * v)
    np.testing.assert_allclose(tape.gradient(y, [v])[0], [2.0, 4.0, 6.0])
    with pytest.raises(RuntimeError, match="persistent"):
        tape.gradient(y, [v])
    with minidl.GradientTape(persistent=True) as tape:
        y = ops.sum(v * v)
    first, second = tape.gradient(y, [v])[0], tape.gradient(y, [v])[0]
    np.testing.assert_array_equal(first, second)


class ReturnsLoss(minidl.Model):
    def train_step(self, data):
        x, y = data
        with minidl.GradientTape() as tape:
            loss = self.compute_loss(y=y, y_pred=self(x, training=True))
        self.optimizer.apply(tape.gradient(loss, self.trainable_weights),
                             self.trainable_weights)
        return loss


class ReturnsNothing(ReturnsLoss):
    def train_step(self, data):
        super().train_step(data)


def test_train_step_returning_a_tensor_is_an_error():
    # Keras expects a dict of logs; anything else fails in fit (Keras: when the logs are
    # read as a dict).
    x, y = regression_data(n=8)
    model = small_functional(ReturnsLoss)
    model.compile("sgd", "mse")
    with pytest.raises((TypeError, AttributeError)):
        model.fit(x, y, batch_size=4, verbose=0)


def test_train_step_returning_none_is_an_error():
    x, y = regression_data(n=8)
    model = small_functional(ReturnsNothing)
    model.compile("sgd", "mse")
    with pytest.raises(TypeError):
        model.fit(x, y, batch_size=4, verbose=0)


def test_gradient_through_argmax_names_argmax():
    w = minidl.Variable(rng(15).standard_normal((4, 3)).astype(np.float32), name="w")
    x = rng(16).standard_normal((5, 4)).astype(np.float32)
    with minidl.GradientTape() as tape:
        chosen = ops.argmax(ops.matmul(x, w), axis=-1)
        loss = ops.sum(ops.cast(chosen, "float32"))
    with pytest.raises(ValueError, match="argmax"):
        tape.gradient(loss, [w])


class ArgmaxLoss(minidl.Model):
    def train_step(self, data):
        x, y = data
        with minidl.GradientTape() as tape:
            predicted = ops.cast(ops.argmax(self(x, training=True), axis=-1), "float32")
            loss = ops.mean(ops.square(predicted - y))
        self.optimizer.apply(tape.gradient(loss, self.trainable_weights),
                             self.trainable_weights)
        return {"loss": loss}


def test_fit_with_a_loss_through_argmax_raises_naming_argmax():
    x, _ = regression_data(n=8)
    model = small_functional(ArgmaxLoss, outputs=3)
    # (a compiled loss, so that fit hands y to the step: see
    # test_train_step_without_a_compiled_loss_receives_y)
    model.compile("sgd", SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(ValueError, match="argmax"):
        model.fit(x, np.zeros(8, np.float32), batch_size=4, verbose=0)


def test_compute_loss_in_a_hand_loop_of_an_unbuilt_subclassed_model():
    # The README's loop: compile, then call the model by hand; compute_loss learns the
    # outputs from y_pred (no x given), and its value is the compiled loss function's.
    class Tiny(minidl.Model):
        def __init__(self):
            super().__init__()
            self.dense = minidl.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3)).astype(np.float32)
    y = rng.standard_normal((5, 2)).astype(np.float32)
    model = Tiny()
    model.compile("sgd", loss=lambda t, p: ops.mean(ops.square(t - p), axis=-1))
    with minidl.GradientTape() as tape:
        pred = model(x, training=True)
        loss = model.compute_loss(y=y, y_pred=pred)
    assert float(loss) == pytest.approx(float(np.mean((y - np.asarray(pred)) ** 2)), rel=1e-6)
    grads = tape.gradient(loss, model.trainable_weights)
    expected = 2 * x.T @ (np.asarray(pred) - y) / y.size
    np.testing.assert_allclose(grads[0], expected, rtol=1e-5, atol=1e-7)
