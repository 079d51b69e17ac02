"""Lambda: a Python function as a layer, as Keras' ``layers.Lambda``.

A Lambda is a user layer (its ``call`` runs the function), so it runs eagerly, in
Sequential and functional models, and trains: inside a model's execution plan its function
runs on a tape and its gradients come from the ops the function used (``layers.eager``).

Saving: a model file holds no code, and minidl never runs code named by a file. A Lambda's
config names its function. Rebuilding it from a config (``load_model``, ``model_from_json``,
``from_config``) takes the function from the program, as Keras does for a named function:
one registered with ``minidl.saving.register_serializable`` or given in ``custom_objects``
under its name. Otherwise (a ``lambda`` expression has no name to give) it raises
:class:`LambdaLoadingError`: rebuild the model in code and load its weights with
``model.load_weights(path)``, or write the function as the ``call`` of a Layer subclass.
"""
import inspect
import json

from minidl.autodiff.tensor import no_record_scope
from minidl.layers import eager
from minidl.layers.base import LAYERS, Layer
from minidl.layers.op_layer import infer_output


class LambdaLoadingError(ValueError):
    """A config holding a Lambda layer was given to be rebuilt: refused, as a Lambda's
    function is Python code, which minidl never loads from a file or a config."""


@LAYERS.register()
class Lambda(Layer):
    """Wraps a function of tensors as a layer (Keras' ``layers.Lambda``).

    The function takes the layer's input (a tensor, or a list of tensors for a layer called
    on a list) and returns one tensor, computed with ``minidl.ops`` (or the Python
    operators of tensors) so that gradients flow through it. A function with a ``training``
    parameter receives the call's ``training`` value.

    Args:
        function: the function, ``function(inputs, **arguments)``.
        output_shape: optional. A tuple: the output shape without the batch dimension (the
            batch dimension is the input's). A callable: the whole output shape from the
            whole input shape(s) (batch dimension first). When omitted, the shape and dtype
            come from running the function on zeros of the input shape.
        mask: must be None (minidl has no masking).
        arguments: optional dict of keyword arguments passed to the function.
        **kwargs: name, dtype, trainable, input_shape (as for every layer).

    Example:
        >>> inputs = minidl.Input((4,))
        >>> x = Lambda(lambda t: ops.square(t) * 0.5)(inputs)
        >>> outputs = Dense(2)(x)

    A model holding a Lambda saves (the file names the function) and loads where the
    program gives the function: registered, or in ``load_model``'s ``custom_objects`` under
    its name. minidl never loads code from a file.
    """

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"Lambda '{self.name}': function must be callable; received "
                            f"function={function!r:.100}.")
        if mask is not None:
            raise ValueError(f"Lambda '{self.name}': minidl has no masking, so mask must be "
                             f"None; received mask={mask!r:.100}.")
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict) or not all(isinstance(k, str) for k in arguments):
            raise TypeError(f"Lambda '{self.name}': arguments must be a dict of keyword "
                            f"arguments for the function; received "
                            f"arguments={arguments!r:.100}.")
        if output_shape is not None and not callable(output_shape):
            output_shape = _check_shape(output_shape, f"Lambda '{self.name}': output_shape")
        # Set past Layer.__setattr__: a layer given as the function (or in arguments) is
        # code the Lambda calls, not a sublayer whose weights it owns (as in Keras).
        object.__setattr__(self, "function", function)
        object.__setattr__(self, "arguments", dict(arguments))
        self._output_shape = output_shape
        try:
            params = inspect.signature(function).parameters
        except (TypeError, ValueError):   # some builtins have no signature
            params = {}
        self._function_takes_training = "training" in params

    def call(self, inputs, training=None):
        """``function(inputs, **arguments)`` (with ``training`` when it takes one)."""
        kwargs = dict(self.arguments)
        if self._function_takes_training:
            kwargs["training"] = training
        return self.function(inputs, **kwargs)

    # ---- graphs ----

    def _call_symbolic(self, inputs, training, call_tensors=None):
        """Record a call on symbolic tensors (the output shape from ``output_shape``, or
        from running the function on zeros, which gives the dtype too)."""
        if isinstance(inputs, dict):
            raise TypeError(f"Lambda '{self.name}' takes a tensor or a list of tensors; "
                            f"received a dict.")
        return super()._call_symbolic(inputs, training, call_tensors)

    def _output_spec(self, leaves, sample):
        """(whole output shape, dtype) for the symbolic inputs ``leaves``."""
        multi = isinstance(sample, list)
        if self._output_shape is None:
            shape, dtype = self._infer([(t.shape, t.dtype) for t in leaves], multi)
            return shape, dtype
        whole = [t.shape for t in leaves] if multi else leaves[0].shape
        shape = self._declared_shape(whole)
        # As for other layers: float outputs in the layer's dtype, an index input's kept.
        dtype = leaves[0].dtype if leaves[0].dtype in ("int32", "int64") else self.dtype
        return shape, dtype

    def _declared_shape(self, whole):
        """The whole output shape from ``output_shape`` for whole input shape(s)."""
        if callable(self._output_shape):
            out = self._output_shape(whole)
            return _check_shape(out, f"Lambda '{self.name}': output_shape({whole})")
        batch = (whole[0] if isinstance(whole, list) else whole)[0]
        return (batch,) + self._output_shape

    def _infer(self, specs, multi):
        """Run the function on zeros (float inputs in the layer's dtype, as the plan casts
        them) without recording."""
        specs = [(shape, dtype if dtype not in ("float32", "float64") else self.dtype)
                 for shape, dtype in specs]

        def run(tensors):
            saved = self._added_losses
            try:
                return eager.user_call(self, (tensors if multi else tensors[0],), {}, False)
            finally:
                self._added_losses = saved
        with no_record_scope():
            out = infer_output(run, specs)
        if isinstance(out, list):
            raise ValueError(f"the function returns {len(out)} tensors; a layer in a model "
                             f"must return one tensor")
        return out

    def compute_output_shape(self, input_shape):
        """The output sample shape for an input sample shape (or a list of them)."""
        multi = isinstance(input_shape, list) and bool(input_shape) and \
            isinstance(input_shape[0], (list, tuple))
        shapes = [tuple(s) for s in input_shape] if multi else [tuple(input_shape)]
        if self._output_shape is not None:
            whole = [(None,) + s for s in shapes]
            return tuple(self._declared_shape(whole if multi else whole[0])[1:])
        shape, _ = self._infer([((None,) + s, self.dtype) for s in shapes], multi)
        return tuple(shape[1:])

    # ---- config ----

    def get_config(self):
        """The layer's settings, with the function and a callable ``output_shape`` by name
        (a config cannot hold code; see :meth:`from_config`). An argument that JSON cannot
        hold is written as ``{"class_name": "__repr__", "config": repr}``, which
        :meth:`from_config` refuses rather than pass on a different value."""
        config = super().get_config()
        shape = self._output_shape
        config.update(
            function=_describe_function(self.function),
            output_shape=None if shape is None else _describe_function(shape)
            if callable(shape) else list(shape),
            mask=None,
            arguments={key: _jsonable(value) for key, value in self.arguments.items()})
        return config

    @classmethod
    def from_config(cls, config):
        """The Lambda of ``config``, its function (and a callable ``output_shape``) found
        among the program's functions by name: registered with
        ``minidl.saving.register_serializable``, or given in ``custom_objects``.

        Raises:
            LambdaLoadingError: the function is not found (a config names it, it does not
                hold it; minidl never loads code from a file), or an argument was not
                saved as a value.
        """
        if not isinstance(config, dict):
            raise TypeError(f"Lambda.from_config expects a dict; received {config!r:.100}.")
        config = dict(config)
        name, function = config.get("name", "lambda"), config.get("function", "?")
        found = _named_function(function)
        if found is None:
            raise LambdaLoadingError(
                f"Lambda layer {name!r:.100} (function {function!r:.200}) cannot be rebuilt "
                f"from a config or model file: its function is Python code, which a config "
                f"only names and minidl never loads from a file. Give the function in "
                f"load_model's custom_objects (custom_objects={{{_short_name(function)!r}: "
                f"...}}) or register it with minidl.saving.register_serializable. Rebuild "
                f"the model in code with the same Lambda otherwise (a lambda expression has "
                f"no name to give), then load the weights with model.load_weights(path).")
        shape = config.get("output_shape")
        if isinstance(shape, str):
            config["output_shape"] = _named_function(shape)
            if config["output_shape"] is None:
                raise LambdaLoadingError(
                    f"Lambda layer {name!r:.100}: its output_shape function {shape!r:.200} is "
                    f"not among the program's functions; give it in custom_objects.")
        arguments = config.get("arguments") or {}
        unsaved = sorted(key for key, value in arguments.items()
                         if isinstance(value, dict) and value.get("class_name") == "__repr__")
        if unsaved:
            raise LambdaLoadingError(
                f"Lambda layer {name!r:.100}: its arguments {', '.join(unsaved)[:200]} were "
                f"saved as descriptions (values JSON cannot hold); rebuild the model in code.")
        config["function"] = found
        return cls(**config)


def _check_shape(shape, what):
    """``shape`` as a tuple of positive ints and None; ValueError naming ``what``."""
    try:
        dims = tuple(shape)
    except TypeError:
        dims = None
    if isinstance(shape, (str, bytes, dict)) or dims is None or not all(
            d is None or (isinstance(d, int) and not isinstance(d, bool) and d > 0)
            for d in dims):
        raise ValueError(f"{what} must be a tuple of positive ints (None for an unknown "
                         f"dimension); received {shape!r:.100}.")
    return dims


def _describe_function(function):
    """'module.qualname' of a function, for configs and messages."""
    module = getattr(function, "__module__", None)
    name = getattr(function, "__qualname__", None) or getattr(function, "__name__", None) \
        or type(function).__name__
    return f"{module}.{name}" if module else name


def _short_name(described):
    """The function's own name in a 'module.qualname' description."""
    return str(described).rsplit(".", 1)[-1]


def _named_function(described):
    """The program's function a config names ('module.qualname', 'package>name' or a bare
    name): registered, or in custom_objects, under the whole name or its last part; None
    when there is none (or the name is a lambda expression's, which no one can give)."""
    from minidl.losses.base import program_function
    if not isinstance(described, str) or not described or "<lambda>" in described:
        return None
    return program_function(described) or program_function(_short_name(described))


def _jsonable(value):
    """``value`` when JSON holds it as is, else a description that :meth:`Lambda.from_config`
    refuses (configs hold values, never code)."""
    try:
        json.dumps(value, allow_nan=False)
        return value
    except (TypeError, ValueError):
        return {"class_name": "__repr__", "config": repr(value)[:200]}
