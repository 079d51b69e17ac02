"""Optimizers, Keras 3 names, defaults and update rules, on fused compiled kernels.

An optimizer holds its state in numpy arrays: one slot array per variable and per kind of slot
(Adam: 'momentum' and 'velocity'), plus the step count ``iterations``. ``apply(grads,
variables)`` updates every variable in place with one fused kernel per variable, over the
variable, its gradient and its slots; per-step scalars (Adam's bias-corrected step size,
Nadam's momentum schedule) are computed here in float64 and passed in. One call into the
compiled ``Updater`` runs a whole step: gradient checks, clipping factors and the updates.

The learning rate is a float or a ``schedules.LearningRateSchedule``; a schedule is evaluated
once per step, here, at ``iterations`` before the step (as in Keras), and its value passed on
as the float would be.

Every optimizer also takes Keras' common arguments: ``weight_decay`` (decoupled,
``p -= p * weight_decay * learning_rate`` before the update), ``clipnorm`` (per variable),
``global_clipnorm``, ``clipvalue`` and ``loss_scale_factor`` (gradients are divided by it).

Example:
    >>> opt = optimizers.get("adam")
    >>> opt.build([w, b])
    >>> opt.apply([dw, db], [w, b])       # w, b updated in place
"""
import math
import numbers
import sys
import warnings

import numpy as np

from minidl import schedules
from minidl.autodiff.tensor import Tensor, WeightWrites
from minidl._core import _optimizers as _kernels
from minidl.schedules import LearningRateSchedule
from minidl.utils.checks import check_bool, check_name
from minidl.utils.registry import Registry, deserializer, subclass_test
from minidl.utils.registry import serialize as _serialize

# Keras' path, keras.optimizers.schedules, for imports too ("from minidl.optimizers.schedules
# import CosineDecay"), without turning this module into a package (as os.path does).
sys.modules[__name__ + ".schedules"] = schedules

OPTIMIZERS = Registry("optimizer", accepts=subclass_test(lambda: Optimizer))

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# Keras' wording.
SCHEDULE_NOT_SETTABLE = (
    "This optimizer was created with a `LearningRateSchedule` object as its `learning_rate` "
    "constructor argument, hence its learning rate is not settable. If you need the learning "
    "rate to be settable, you should instantiate the optimizer with a float `learning_rate` "
    "argument.")


def _number(owner, name, value, low=None, high=None, high_open=False, allow_none=False):
    """value as a float after checking it is a real number in [low, high] (or [low, high))."""
    if value is None and allow_none:
        return None
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value)):
        raise ValueError(f"{owner}: {name} must be a finite number; received {name}={value!r}.")
    above = value >= high if high_open else value > high if high is not None else False
    if (low is not None and value < low) or (high is not None and above):
        bounds = f"[{low}, {high}{')' if high_open else ']'}" if high is not None else f">= {low}"
        raise ValueError(f"{owner}: {name} must be in {bounds}; received {name}={value!r}.")
    return float(value)


class Optimizer:
    """Base class: state, variable bookkeeping and the shared gradient transforms.

    Args:
        learning_rate: a float >= 0, or a :class:`schedules.LearningRateSchedule` evaluated
            at each step.
        weight_decay: decoupled weight decay factor, or None.
        clipnorm: clip each gradient to this L2 norm, or None.
        clipvalue: clip each gradient element to [-clipvalue, clipvalue], or None.
        global_clipnorm: clip all gradients together to this global L2 norm, or None.
        loss_scale_factor: gradients are divided by it (for a scaled loss), or None.
        name: name of the instance.

    Subclasses set ``_KERNEL`` (a kind of ``minidl._core._optimizers``) and
    ``_KERNEL_SLOTS`` (their slot names in the kernel's order) and define ``_slot_specs()``
    (slot names with their initial values) and ``_step_scalars(lr, t)`` (the kernel's
    scalars for step t, in the order of ``_optimizers.SCALARS[_KERNEL]``).
    """

    _KERNEL = None
    _KERNEL_SLOTS = ()

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, loss_scale_factor=None, name=None):
        owner = type(self).__name__
        self.learning_rate = learning_rate
        self.weight_decay = _number(owner, "weight_decay", weight_decay, 0.0, allow_none=True)
        self.clipnorm = _number(owner, "clipnorm", clipnorm, 0.0, allow_none=True)
        self.clipvalue = _number(owner, "clipvalue", clipvalue, 0.0, allow_none=True)
        self.global_clipnorm = _number(owner, "global_clipnorm", global_clipnorm, 0.0,
                                       allow_none=True)
        if sum(c is not None for c in (self.clipnorm, self.clipvalue, self.global_clipnorm)) > 1:
            raise ValueError(f"{owner}: only one of clipnorm, clipvalue and global_clipnorm can "
                             f"be set. Received: clipnorm={clipnorm}, clipvalue={clipvalue}, "
                             f"global_clipnorm={global_clipnorm}")
        self.loss_scale_factor = _number(owner, "loss_scale_factor", loss_scale_factor, 0.0,
                                         allow_none=True)
        if self.loss_scale_factor == 0:
            raise ValueError(f"{owner}: loss_scale_factor must be > 0 or None; received "
                             f"loss_scale_factor={loss_scale_factor!r}.")
        self.name = check_name(owner, name, owner.lower())
        self._iterations = 0
        self.built = False
        self._variables = []
        self._index = {}
        self._slots = {}        # slot name -> list of arrays, one per variable
        self._updater = None    # the compiled kernels over the built variables

    # ---- hyperparameters and state ----

    @property
    def learning_rate(self):
        """The learning rate of the next step, a float.

        Settable to a float or a schedule; as in Keras, an optimizer created with a schedule
        only accepts another schedule (TypeError otherwise).
        """
        lr = self._learning_rate
        return float(lr(self._iterations)) if isinstance(lr, LearningRateSchedule) else lr

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(value, LearningRateSchedule):
            self._learning_rate = value
            return
        if isinstance(getattr(self, "_learning_rate", None), LearningRateSchedule):
            raise TypeError(SCHEDULE_NOT_SETTABLE)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"{type(self).__name__}: learning_rate must be a float or a "
                             f"LearningRateSchedule; received learning_rate={value!r}.")
        self._learning_rate = _number(type(self).__name__, "learning_rate", value, 0.0)

    @property
    def iterations(self):
        """Number of update steps applied so far (settable, e.g. when restoring state)."""
        return self._iterations

    @iterations.setter
    def iterations(self, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"{type(self).__name__}: iterations must be an int >= 0; received "
                             f"iterations={value!r}.")
        self._iterations = int(value)

    @property
    def slot_names(self):
        """Names of the per-variable slots, in the order of :meth:`get_slot_arrays`."""
        return tuple(name for name, _ in self._slot_specs())

    def _slot_specs(self):
        return ()

    # ---- variables and slots ----

    def build(self, variables):
        """Create zero-initialised slots (of each variable's shape and dtype) for variables.

        As in Keras, a built optimizer ignores further calls; a new set of variables needs a
        new optimizer.

        Args:
            variables: list of C-contiguous, writeable float32/float64 numpy arrays; they are
                updated in place by :meth:`apply`.
        """
        if self.built:
            return
        variables = [v.value if isinstance(v, Tensor) else v for v in variables]
        owner = type(self).__name__
        for i, v in enumerate(variables):
            if not isinstance(v, np.ndarray) or v.dtype not in _FLOAT_DTYPES:
                raise TypeError(f"{owner}.build: variable {i} must be a float32/float64 numpy "
                                f"array; received {type(v).__name__} "
                                f"{getattr(v, 'dtype', '')}.")
            if not v.flags.c_contiguous or not v.flags.writeable:
                raise ValueError(f"{owner}.build: variable {i} must be C-contiguous and "
                                 f"writeable (it is updated in place).")
        if len({id(v) for v in variables}) != len(variables):
            raise ValueError(f"{owner}.build: the same array appears twice in variables.")
        self._variables = variables
        self._index = {id(v): i for i, v in enumerate(variables)}
        self._slots = {name: [np.full_like(v, init) for v in variables]
                       for name, init in self._slot_specs()}
        self._updater = _kernels.Updater(self._KERNEL, variables,
                                         [self._slots.get(name) for name in self._KERNEL_SLOTS],
                                         owner)
        self.built = True

    def get_slot_arrays(self, variables=None):
        """The slot arrays (live, not copies): for each slot name, one per variable.

        Args:
            variables: optional, the built variables in the order wanted (default: the
                order of :meth:`build`).
        """
        if variables is None:
            return [a for name in self.slot_names for a in self._slots.get(name, [])]
        positions = [self._variable_index(v) for v in variables]
        return [self._slots[name][i] for name in self.slot_names if name in self._slots
                for i in positions]

    @property
    def variables(self):
        """The optimizer's own state arrays; the same list as :meth:`get_slot_arrays`."""
        return self.get_slot_arrays()

    def set_slot_arrays(self, arrays):
        """Copy saved slot values (in :meth:`get_slot_arrays` order) into the slots."""
        if not self.built:
            raise ValueError(f"{type(self).__name__}: call build(variables) before "
                             f"set_slot_arrays().")
        current = self.get_slot_arrays()
        arrays = list(arrays)
        if len(arrays) != len(current):
            raise ValueError(f"{type(self).__name__}: expected {len(current)} slot arrays "
                             f"({', '.join(self.slot_names) or 'no slots'} for "
                             f"{len(self._variables)} variables); received {len(arrays)}.")
        for i, (dst, src) in enumerate(zip(current, arrays)):
            src = np.asarray(src)
            if src.shape != dst.shape:
                raise ValueError(f"{type(self).__name__}: slot array {i} must have shape "
                                 f"{dst.shape}; received {src.shape}.")
        for dst, src in zip(current, arrays):
            np.copyto(dst, src, casting="same_kind")

    def get_slot(self, variable, name):
        """The slot array ``name`` of ``variable``."""
        if name not in self._slots:
            raise ValueError(f"{type(self).__name__} has no slot {name!r}; its slots are "
                             f"{self.slot_names}.")
        return self._slots[name][self._variable_index(variable)]

    def _variable_index(self, variable):
        i = self._index.get(id(variable))
        if i is None or self._variables[i] is not variable:
            raise ValueError(f"{type(self).__name__}: unknown variable of shape "
                             f"{getattr(variable, 'shape', None)}. This optimizer can only "
                             f"update the variables it was built with; build a new optimizer "
                             f"for new variables.")
        return i

    # ---- updates ----

    def apply(self, grads, variables=None):
        """Update ``variables`` in place from ``grads`` (one fused kernel per variable).

        Args:
            grads: list of gradient arrays, one per variable (None entries are skipped).
                Gradients of another dtype or layout are converted (a copy).
            variables: the variables (minidl Variables or their arrays), or None for those
                the optimizer was built with. The first call builds the optimizer when
                needed. A Variable with a ``constraint`` is projected after its update.
        """
        constrained = ()
        if variables is not None and not isinstance(variables, list):
            variables = list(variables)
        if variables and isinstance(variables[0], Tensor):
            # minidl Variables (what user code holds: layer.kernel, model.trainable_weights)
            # stand for their arrays, which the kernels update in place. (The training
            # loop passes the arrays themselves: nothing to convert per step.)
            constrained = [v for v in variables if getattr(v, "constraint", None)]
            variables = [v.value if isinstance(v, Tensor) else v for v in variables]
            grads = [g.value if isinstance(g, Tensor) else g for g in grads]
        self._apply_arrays(grads, variables)
        for v in constrained:
            v.assign(v.constraint(v.value))
        WeightWrites.written()

    def _apply_arrays(self, grads, variables):
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            lr = lr(self._iterations)
        if self.built and self._updater.step(
                grads, variables, self._step_scalars(lr, self._iterations + 1),
                self.weight_decay or 0.0,
                1.0 / self.loss_scale_factor if self.loss_scale_factor else 1.0,
                self.clipvalue or 0.0, self.clipnorm or 0.0, self.global_clipnorm or 0.0):
            self._iterations += 1
            return
        # General path: variables in another order or a subset, None gradients, first call.
        grads = list(grads)
        if not grads:
            return
        if variables is None:
            if not self.built:
                raise ValueError(f"{type(self).__name__}: pass variables to apply() or call "
                                 f"build(variables) first.")
            indices = range(len(self._variables))
        else:
            variables = list(variables)
            if not self.built:
                self.build(variables)
            if (len(variables) == len(self._variables)
                    and all(a is b for a, b in zip(variables, self._variables))):
                indices = range(len(variables))
            else:
                indices = [self._variable_index(v) for v in variables]
        if len(grads) != len(indices):
            raise ValueError(f"{type(self).__name__}: received {len(grads)} gradients for "
                             f"{len(indices)} variables.")
        pairs = [(g, i) for g, i in zip(grads, indices) if g is not None]
        if not pairs:
            raise ValueError("No gradients provided for any variable.")
        if len(pairs) < len(grads):
            warnings.warn(f"{type(self).__name__}: some gradients are None; those variables "
                          f"are not updated.", stacklevel=2)
        t = self._iterations + 1
        self._updater.update([g for g, _ in pairs], [i for _, i in pairs],
                             self._step_scalars(lr, t),
                             self.weight_decay or 0.0,
                             1.0 / self.loss_scale_factor if self.loss_scale_factor else 1.0,
                             self.clipvalue or 0.0, self.clipnorm or 0.0,
                             self.global_clipnorm or 0.0)
        self._iterations = t

    def apply_gradients(self, grads_and_vars):
        """Keras alias: ``apply`` from a list of (gradient, variable) pairs."""
        grads_and_vars = list(grads_and_vars)
        if not grads_and_vars:
            return self._iterations
        grads, variables = zip(*grads_and_vars)
        self.apply(list(grads), list(variables))
        return self._iterations

    def _step_scalars(self, lr, t):
        raise NotImplementedError

    # ---- config ----

    def get_config(self):
        """The constructor arguments (a schedule as ``schedules.serialize`` writes it)."""
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            lr = schedules.serialize(lr)
        return {"learning_rate": lr, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm, "clipvalue": self.clipvalue,
                "global_clipnorm": self.global_clipnorm,
                "loss_scale_factor": self.loss_scale_factor, "name": self.name}

    @classmethod
    def from_config(cls, config):
        """The optimizer of ``get_config()``'s output (with a fresh state)."""
        if isinstance(config.get("learning_rate"), dict):
            try:
                schedule = schedules.deserialize(config["learning_rate"])
            except (ValueError, TypeError) as error:
                raise type(error)(f"{cls.__name__}: invalid learning_rate: {error}") from None
            config = {**config, "learning_rate": schedule}
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}(learning_rate={self._learning_rate!r}, name={self.name!r})"


@OPTIMIZERS.register()
class SGD(Optimizer):
    """Gradient descent, with optional (Nesterov) momentum, as in Keras.

    ``velocity = momentum * velocity - learning_rate * g``, then ``w += velocity``
    (``w += momentum * velocity - learning_rate * g`` with ``nesterov``); without momentum,
    ``w -= learning_rate * g``.

    Args:
        learning_rate: defaults to 0.01.
        momentum: in [0, 1]; 0 is plain gradient descent. Defaults to 0.
        nesterov: use Nesterov momentum. Defaults to False.
        weight_decay, clipnorm, clipvalue, global_clipnorm, loss_scale_factor, name: see
            :class:`Optimizer`.
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, loss_scale_factor=None,
                 name="SGD"):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm,
                         loss_scale_factor, name)
        self.momentum = _number("SGD", "momentum", momentum, 0.0, 1.0)
        self.nesterov = check_bool("SGD", "nesterov", nesterov)

    _KERNEL, _KERNEL_SLOTS = "sgd", ("momentum",)

    def _slot_specs(self):
        return (("momentum", 0.0),) if self.momentum != 0 else ()

    def _step_scalars(self, lr, t):
        return lr, self.momentum, self.nesterov

    def get_config(self):
        config = super().get_config()
        return {"learning_rate": config.pop("learning_rate"), "momentum": self.momentum,
                "nesterov": self.nesterov, **config}


def _check_betas(owner, beta_1, beta_2, epsilon):
    return (_number(owner, "beta_1", beta_1, 0.0, 1.0, high_open=True),
            _number(owner, "beta_2", beta_2, 0.0, 1.0, high_open=True),
            _number(owner, "epsilon", epsilon, 0.0))


@OPTIMIZERS.register()
class Adam(Optimizer):
    """Adam, as in Keras 3.

    ``m += (g - m)(1 - beta_1)``, ``v += (g^2 - v)(1 - beta_2)``,
    ``w -= alpha * m / (sqrt(v) + epsilon)`` with
    ``alpha = learning_rate * sqrt(1 - beta_2^t) / (1 - beta_1^t)``; ``amsgrad`` uses the
    running maximum of ``v``.

    Args:
        learning_rate: defaults to 0.001.
        beta_1, beta_2: decay rates of the moment estimates, in [0, 1). Defaults 0.9, 0.999.
        epsilon: added to the denominator. Defaults to 1e-7 (Keras' value).
        amsgrad: use the AMSGrad variant. Defaults to False.
        weight_decay, clipnorm, clipvalue, global_clipnorm, loss_scale_factor, name: see
            :class:`Optimizer`.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, loss_scale_factor=None, name="adam"):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm,
                         loss_scale_factor, name)
        self.beta_1, self.beta_2, self.epsilon = _check_betas(type(self).__name__, beta_1,
                                                              beta_2, epsilon)
        self.amsgrad = check_bool(type(self).__name__, "amsgrad", amsgrad)

    _KERNEL, _KERNEL_SLOTS = "adam", ("momentum", "velocity", "velocity_hat")

    def _slot_specs(self):
        specs = (("momentum", 0.0), ("velocity", 0.0))
        return specs + ((("velocity_hat", 0.0),) if self.amsgrad else ())

    def _step_scalars(self, lr, t):
        alpha = lr * math.sqrt(1 - self.beta_2 ** t) / (1 - self.beta_1 ** t)
        return alpha, self.beta_1, self.beta_2, self.epsilon, lr

    def get_config(self):
        config = super().get_config()
        return {"learning_rate": config.pop("learning_rate"), "beta_1": self.beta_1,
                "beta_2": self.beta_2, "epsilon": self.epsilon, "amsgrad": self.amsgrad,
                **config}


@OPTIMIZERS.register()
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as in Keras 3.

    Args:
        learning_rate: defaults to 0.001.
        weight_decay: decay factor, required (not None). Defaults to 0.004.
        beta_1, beta_2, epsilon, amsgrad: as in :class:`Adam`.
        clipnorm, clipvalue, global_clipnorm, loss_scale_factor, name: see
            :class:`Optimizer`.
    """

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, loss_scale_factor=None, name="adamw"):
        if weight_decay is None:
            raise ValueError("AdamW: argument `weight_decay` must be a float. Received: "
                             "weight_decay=None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay,
                         clipnorm, clipvalue, global_clipnorm, loss_scale_factor, name)

    def get_config(self):
        config = super().get_config()
        return {"learning_rate": config.pop("learning_rate"),
                "weight_decay": config.pop("weight_decay"), **config}


@OPTIMIZERS.register()
class RMSprop(Optimizer):
    """RMSprop, as in Keras 3.

    ``v = rho v + (1 - rho) g^2``; the step is ``learning_rate * g / sqrt(v + epsilon)``
    (``centered``: ``sqrt(v - mean_g^2 + epsilon)`` with ``mean_g`` a moving average of g);
    with ``momentum`` the steps accumulate in a momentum buffer.

    Args:
        learning_rate: defaults to 0.001.
        rho: discount of the squared-gradient average, in [0, 1]. Defaults to 0.9.
        momentum: in [0, 1]. Defaults to 0.
        epsilon: defaults to 1e-7.
        centered: normalise by the estimated variance. Defaults to False.
        weight_decay, clipnorm, clipvalue, global_clipnorm, loss_scale_factor, name: see
            :class:`Optimizer`.
    """

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, loss_scale_factor=None, name="rmsprop"):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm,
                         loss_scale_factor, name)
        self.rho = _number("RMSprop", "rho", rho, 0.0, 1.0)
        self.momentum = _number("RMSprop", "momentum", momentum, 0.0, 1.0)
        self.epsilon = _number("RMSprop", "epsilon", epsilon, 0.0)
        self.centered = check_bool("RMSprop", "centered", centered)

    def _slot_specs(self):
        specs = (("velocity", 0.0),)
        if self.momentum > 0:
            specs += (("momentum", 0.0),)
        if self.centered:
            specs += (("average_gradient", 0.0),)
        return specs

    _KERNEL, _KERNEL_SLOTS = "rmsprop", ("velocity", "momentum", "average_gradient")

    def _step_scalars(self, lr, t):
        return lr, self.rho, self.momentum, self.epsilon

    def get_config(self):
        config = super().get_config()
        return {"learning_rate": config.pop("learning_rate"), "rho": self.rho,
                "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered, **config}


@OPTIMIZERS.register()
class Adagrad(Optimizer):
    """Adagrad, as in Keras 3: ``acc += g^2``, ``w -= learning_rate g / sqrt(acc + epsilon)``.

    Args:
        learning_rate: defaults to 0.001.
        initial_accumulator_value: starting value of the accumulators, >= 0. Defaults to 0.1.
        epsilon: defaults to 1e-7.
        weight_decay, clipnorm, clipvalue, global_clipnorm, loss_scale_factor, name: see
            :class:`Optimizer`.
    """

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 loss_scale_factor=None, name="adagrad"):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm,
                         loss_scale_factor, name)
        self.initial_accumulator_value = _number("Adagrad", "initial_accumulator_value",
                                                 initial_accumulator_value, 0.0)
        self.epsilon = _number("Adagrad", "epsilon", epsilon, 0.0)

    def _slot_specs(self):
        return (("accumulator", self.initial_accumulator_value),)

    _KERNEL, _KERNEL_SLOTS = "adagrad", ("accumulator",)

    def _step_scalars(self, lr, t):
        return lr, self.epsilon

    def get_config(self):
        config = super().get_config()
        return {"learning_rate": config.pop("learning_rate"),
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon, **config}


@OPTIMIZERS.register()
class Nadam(Optimizer):
    """Nadam (Adam with Nesterov momentum, Dozat 2015), as in Keras 3.

    With ``u_t = beta_1 (1 - 0.5 * 0.96^t)`` and ``P_t = u_1 ... u_t``:
    ``m_hat = u_{t+1} m / (1 - P_{t+1}) + (1 - u_t) g / (1 - P_t)``,
    ``v_hat = v / (1 - beta_2^t)``, ``w -= learning_rate m_hat / (sqrt(v_hat) + epsilon)``.

    Args:
        learning_rate: defaults to 0.001.
        beta_1, beta_2: in [0, 1). Defaults 0.9, 0.999.
        epsilon: defaults to 1e-7.
        weight_decay, clipnorm, clipvalue, global_clipnorm, loss_scale_factor, name: see
            :class:`Optimizer`.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 loss_scale_factor=None, name="nadam"):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm,
                         loss_scale_factor, name)
        self.beta_1, self.beta_2, self.epsilon = _check_betas("Nadam", beta_1, beta_2, epsilon)

    def _slot_specs(self):
        return (("momentum", 0.0), ("velocity", 0.0))

    def _u(self, t):
        return self.beta_1 * (1.0 - 0.5 * 0.96 ** t)

    def _u_product(self, t):
        """P_t = u_1 ... u_t, advanced one factor per step and recomputed from t after a jump
        (so restoring ``iterations`` restores the schedule)."""
        known_t, product = getattr(self, "_u_cache", (0, 1.0))
        if known_t == t:
            return product
        if known_t != t - 1:
            known_t, product = 0, 1.0
            for s in range(1, t):
                product *= self._u(s)
        product *= self._u(t)
        self._u_cache = (t, product)
        return product

    _KERNEL, _KERNEL_SLOTS = "nadam", ("momentum", "velocity")

    def _step_scalars(self, lr, t):
        u_product = self._u_product(t)
        u_t, u_next = self._u(t), self._u(t + 1)
        return (lr, self.beta_1, self.beta_2, self.epsilon,
                u_next / (1 - u_product * u_next), (1 - u_t) / (1 - u_product),
                1 - self.beta_2 ** t)

    def get_config(self):
        config = super().get_config()
        return {"learning_rate": config.pop("learning_rate"), "beta_1": self.beta_1,
                "beta_2": self.beta_2, "epsilon": self.epsilon, **config}


# ---- lookup ----

def get(identifier):
    """An :class:`Optimizer` from a name ('adam', 'sgd', ...), a config dict written by
    :func:`serialize`, or an Optimizer instance.

    Raises:
        ValueError: unknown name or uninterpretable identifier; the message lists valid names.
    """
    return OPTIMIZERS.get(identifier, base=Optimizer)


def serialize(optimizer):
    """``{"class_name": ..., "config": ...}`` for an optimizer (its state is not included)."""
    return _serialize(optimizer)


deserialize = deserializer(get, "optimizer")


__all__ = ["Adagrad", "Adam", "AdamW", "Nadam", "OPTIMIZERS", "Optimizer", "RMSprop", "SGD",
           "deserialize", "get", "schedules", "serialize"]
