"""Rewrite rules over an execution plan: every fusion of minidl, in one table.

A rule finds a pattern of steps in a plan and replaces it with one fused step that gives the
same bits as the steps it replaces, or marks what the backward pass can leave out. The
plan applies the rules in the order of ``RULES`` after building its steps; the trainer and
the layers know nothing of them.

| rule                       | pattern                                    | what it saves |
|----------------------------|--------------------------------------------|---------------|
| relu_then_max_pool         | a layer ending in ReLU, then max pooling   | the bias and ReLU pass over the un-pooled output (4x the pooled one), and the ReLU's backward pass; for a first layer, the un-pooled output altogether (csrc/conv_pool.c) |
| activation_into_layer      | Dense/Conv without activation, BatchNormalization or Add, then an activation layer (ReLU or ReLU6 after BatchNormalization, ReLU after Add) | a pass over the output, forward and backward |
| head_with_loss             | softmax or sigmoid output, then the matching cross-entropy | the activation's backward: the loss gives ``probs - targets`` at once |
| gradients_needed           | steps before the first trainable weight    | their backward passes, and the first trainable layer's input gradient |

Inference only (``inference_steps``: the steps an inference pass runs; training's stay):

| rule                       | pattern                                    | what it saves |
|----------------------------|--------------------------------------------|---------------|
| conv, max pool             | a convolution of few taps with a ReLU, BatchNormalization or not, then max pooling | the un-pooled output, and the normalization of 3 values in 4 (2x2 windows); the same bits (``ConvMaxPoolInferenceStep``) |
| batch norm folding         | Dense or convolution without activation, then BatchNormalization (and a ReLU) | the normalization's pass, folded into the layer's weights: equal up to rounding (``FoldedBatchNormStep``) |

Each rule is a function ``rule(plan)`` that edits ``plan.steps``; a fused step has the step
interface of ``steps.LayerStep``. A rule fuses only a tensor that nothing else reads and that
is not a model output, so no other step or loss ever needs what the fusion no longer forms.
"""
import numpy as np

from minidl._core import _conv_pool, _convolution, _normalization, _pooling
from minidl.autodiff.tensor import WeightWrites
from minidl.layers.base import CallContext
from minidl.models.steps import LayerStep


# ---- relu_then_max_pool -------------------------------------------------------------------

def _channels_first(layer):
    """Whether ``layer`` transposes channels_first data at its boundary
    (``layers.data_format``): only its ``forward`` and ``backward`` do, so the fusions
    that call its other entry points leave it alone."""
    return getattr(layer, "data_format", None) == "channels_first"


def _ends_in_plain_relu(layer):
    activation = getattr(layer, "activation", None)
    return (activation is not None and activation.kernel_params()[0] == "relu"
            and hasattr(layer, "forward_linear")
            and getattr(layer, "activity_regularizer", None) is None)


class ReluMaxPoolStep:
    """A layer computing ``relu(linear(x) + b)`` (Dense, Conv, Activation('relu')) and the
    max pooling after it, trained as one.

    forward: the pooling takes the maximum of each window of ``linear(x)`` and applies the
        bias and the ReLU to the maxima: ``max(relu(z + b)) = relu(max(z) + b)`` exactly,
        since float addition and the ReLU are monotonic.
    backward: the pooling's scatter, gated by the pooled output (positive exactly where
        the ReLU passes gradient), gives the gradient of the layer's pre-activation; the
        ReLU's own backward pass is skipped.
    direct: when the layer's input needs no gradient and the layer can
        (``can_pool_directly``: a convolution with few taps, windows tiling its output),
        the maxima come from csrc/conv_pool.c without forming ``linear(x)`` at all.
    Inference runs the two layers as they are (the same bits).
    """

    training = None   # (a call with a training argument is never fused)

    def __init__(self, first, pool, direct):
        self.first, self.pool, self.direct = first, pool, direct
        self.layers = (first.layer, pool.layer)
        self.inputs, self.outputs = first.inputs, pool.outputs
        self.trainable = first.trainable
        self.need_input_grads = first.need_input_grads
        self.runs_backward = True

    def contexts(self, record):
        return tuple(CallContext(layer, record=record) for layer in self.layers)

    def forward(self, contexts, xs, training):
        layer, pool = self.layers
        ctx_layer, ctx_pool = contexts
        if not ctx_layer.record:
            hidden = self.first.forward((ctx_layer,), xs, training)
            return self.pool.forward((ctx_pool,), list(hidden), training)
        if self.direct:
            x = xs[0]
            n = x.shape[0]
            y = ctx_pool.buffers.get("y", n, pool.pooled_image)
            argmax = ctx_pool.buffers.get("argmax", n, pool.pooled_image, dtype=np.intc)
            layer.forward_max_pool(ctx_layer, x, pool.pool_window, y, argmax)  # bias, ReLU too
            ctx_pool.argmax, ctx_pool.y = argmax, y
            return (y.reshape((n,) + pool.output_sample_shape),)
        y = pool.forward(ctx_pool, layer.forward_linear(ctx_layer, xs[0]), training)
        rows = y.reshape(-1, y.shape[-1])
        layer.activation.forward_bias(rows, getattr(layer, "_bias_array", None), rows)
        return (y,)

    def backward(self, contexts, dys):
        layer, pool = self.layers
        ctx_layer, ctx_pool = contexts
        if self.direct:
            dy = dys[0]
            dy = np.ascontiguousarray(dy).reshape((dy.shape[0],) + pool.pooled_image)
            layer.backward_max_pool(ctx_layer, dy, ctx_pool.argmax, ctx_pool.y,
                                    pool.pool_window)
            return (None,)
        dz = pool.backward_through_relu(ctx_pool, dys[0])
        return (layer.backward_preactivation(ctx_layer, dz, self.need_input_grads[0]),)


def relu_then_max_pool(plan):
    producers = _producers(plan)
    steps = []
    for step in plan.steps:
        first = producers.get(step.inputs[0]) if isinstance(step, LayerStep) else None
        if (first is not None and steps and steps[-1] is first
                and getattr(step.layer, "pools_max_after_relu", False)
                and not _channels_first(step.layer) and not _channels_first(first.layer)
                and isinstance(first, LayerStep) and _ends_in_plain_relu(first.layer)
                and _only_reader(plan, first.outputs[0])
                and first.training is None and step.training is None):
            direct = (not plan.slot_needs_grad[first.inputs[0]]
                      and getattr(first.layer, "can_pool_directly", None) is not None
                      and getattr(step.layer, "pool_window", None) is not None
                and first.layer.can_pool_directly(step.layer))
            steps[-1] = ReluMaxPoolStep(first, step, direct)
        else:
            steps.append(step)
    plan.steps = steps


# ---- activation_into_layer ---------------------------------------------------------------

class FusedActivationStep:
    """A layer, then an activation layer reading only its output, run as the layer with
    that activation (``ctx.activation``): Dense or a convolution without activation
    (bias and activation in one pass over the output, the derivative and the bias gradient
    in one pass back), BatchNormalization then ReLU, Add then ReLU (a residual block's
    ``relu(x + y)``). The kernels compute the activation, and its derivative, as the
    activation layer's own do: the bits are those of the two steps."""

    training = None   # (a call with a training argument is never fused)

    def __init__(self, first, activation):
        self.first, self.activation_step = first, activation
        self.layers = (first.layer,)
        self.inputs, self.outputs = first.inputs, activation.outputs
        self.trainable = first.trainable
        self.need_input_grads = first.need_input_grads
        self.runs_backward = True
        self.preactivation = False   # set by head_with_loss

    def contexts(self, record):
        ctx = CallContext(self.first.layer, record=record)
        ctx.activation = self.activation_step.layer.activation
        return (ctx,)

    def forward(self, contexts, xs, training):
        return self.first.forward(contexts, xs, training)

    def backward(self, contexts, dys):
        layer, need = self.first.layer, self.need_input_grads
        if self.preactivation:
            return (layer.backward_preactivation(contexts[0], dys[0], need[0]),)
        if self.first.multi_input:
            return layer.backward(contexts[0], dys[0], need)
        return (layer.backward(contexts[0], dys[0], need[0]),)


def activation_into_layer(plan):
    producers = _producers(plan)
    steps = []
    for step in plan.steps:
        first = producers.get(step.inputs[0]) if isinstance(step, LayerStep) else None
        if (first is not None and steps and steps[-1] is first and isinstance(first, LayerStep)
                and getattr(step.layer, "is_activation_layer", False)
                and step.layer.activity_regularizer is None
                and getattr(first.layer, "can_fuse_activation", None) is not None
                and first.layer.can_fuse_activation(step.layer.activation)
                and first.layer.activity_regularizer is None
                and _only_reader(plan, first.outputs[0])
                and first.training is None and step.training is None):
            steps[-1] = FusedActivationStep(first, step)
        else:
            steps.append(step)
    plan.steps = steps


# ---- batch_norm_into_layer (inference only) ----------------------------------------------

class FoldedBatchNormStep:
    """A Dense or convolution without activation, then a BatchNormalization in inference
    mode reading only its output (and the ReLU fused after it, if any), run as the layer
    alone with the normalization folded into its weights, as onnxruntime does:
    ``kernel * s`` and ``(bias - moving_mean) * s + beta``, with
    ``s = gamma / sqrt(moving_variance + epsilon)``, computed in float64 per output
    channel. One pass over the output less, and the same results up to rounding (the
    bits do not depend on the thread count or the batch: each output's sum runs as the
    layer's own).

    The folded weights are computed at the first pass, and again at the first pass after
    any weight was written (``WeightWrites``: training, ``set_weights``, loading, an
    optimizer's update, ``assign``), so they never lag the layers' weights and moving
    statistics. Inference only: training plans keep the two steps.
    """

    training = None
    trainable = False
    runs_backward = False
    preactivation = False

    def __init__(self, first, norm, activation, outputs=None):
        self.first, self.norm, self.activation = first, norm, activation
        self.layers = (first.layer,)
        self.inputs = first.inputs
        self.outputs = norm.outputs if outputs is None else outputs
        self.need_input_grads = [False]
        self.pool = None   # a max pooling after the ReLU, pooled first (see with_pool)
        self._folded = None   # (WeightWrites.count when made, the layer with folded weights)

    def with_pool(self, pool):
        """This step followed by ``pool`` (the max pooling reading its ReLU output, a
        LayerStep), as one: the pooling takes the maximum of each window of the linear
        part, and the bias and the ReLU apply to the maxima, as in ``ReluMaxPoolStep``
        (the same bits: both are monotonic)."""
        fused = FoldedBatchNormStep(self.first, self.norm, self.activation, pool.outputs)
        fused.pool = pool
        fused.layers = (self.first.layer, pool.layer)
        return fused

    def contexts(self, record):
        ctx = CallContext(self.first.layer, record=False)
        ctx.activation = self.activation
        if self.pool is None:
            return (ctx,)
        return ctx, CallContext(self.pool.layer, record=False)

    def folded_layer(self):
        """The layer, with the normalization folded into its weights as they are now."""
        return self._current()[1]

    def _current(self):
        """(count, folded layer, its direct convolution or None), as the weights are now."""
        count = WeightWrites.count   # (read before reading the weights)
        folded = self._folded
        if folded is None or folded[0] != count:
            layer = _fold_batch_norm(self.first.layer, self.norm.layer)
            folded = self._folded = (count, layer, _direct_convolution(layer,
                                                                       self.activation))
        return folded

    def forward(self, contexts, xs, training):
        _, layer, direct = self._current()
        x = xs[0]
        pool = self.pool
        if direct is not None and x.shape[1:] == direct[0] and x.flags.c_contiguous:
            # The calls the convolution's forward makes in inference, without the Python
            # around them (a one-sample prediction counts microseconds).
            sample, image, kernel, bias, activation, chunk, geo = direct
            n = x.shape[0]
            z = np.empty((n * geo.out_image[0] * geo.out_image[1], kernel.shape[1]),
                         kernel.dtype)
            _convolution.conv_train_forward(x.reshape((n,) + image), kernel, z, None, chunk,
                                            geo.pointwise, padded=None, direct=None
                                            if geo.direct else False, narrow=True,
                                            **geo.window)
            if pool is None:
                activation.forward_bias(z, bias, z)
                return (z.reshape((n,) + geo.output_sample),)
            z = z.reshape((n,) + geo.output_sample)
        elif pool is None:
            return (layer.forward(contexts[0], x, False),)
        else:
            z = layer.forward_linear(contexts[0], x)
        y = pool.layer.forward(contexts[1], z, False)
        rows = y.reshape(-1, y.shape[-1])
        (contexts[0].activation or layer.activation).forward_bias(rows, layer._bias_array,
                                                                   rows)
        return (y,)

    def runner(self, sample_shape):
        """``run(x)``: :meth:`forward` on inputs of samples of ``sample_shape`` (what
        ``Plan.run_chain`` calls): the same kernel calls on fresh arrays, their arguments
        gathered once per folding of the weights (positional: a compiled function's
        keyword arguments cost a microsecond to parse)."""
        pool = self.pool
        pool_layer = None if pool is None else pool.layer
        sample_shape = tuple(sample_shape)
        made = [(None, None)]   # (the _current() tuple, its arguments), one assignment

        def arguments(current):
            direct = current[2]
            if direct is None or direct[0] != sample_shape:
                return None
            _, image, kernel, bias, activation, chunk, geo = direct
            crop, pooling = None, None
            if pool is not None and _plain_max_pooling(pool_layer):
                crop = _pooled_part(current[1], geo, pool_layer)
                if crop is not None:
                    crop, geo = crop
                    image, chunk = geo.image, current[1]._chunk_samples(geo, False)
                pool_image, pooled, pool_window, pooled_sample = pool_layer._geo(
                    geo.output_sample)
                pooling = (pool_image, pooled, np.dtype(pool_layer.dtype),
                           (pool_window["pool_size"], pool_window["strides"],
                            pool_window["pads"]), pooled_sample)
            window = geo.window
            conv = (chunk, geo.pointwise, window["kernel_size"], window["strides"],
                    window["dilation"], window["pads"], window["out_hw"], None,
                    None if geo.direct else False, True)
            return (image, kernel, bias, activation, conv,
                    geo.out_image[0] * geo.out_image[1], geo.output_sample, pooling, crop)

        def run(x):
            current = self._current()
            found = made[0]
            if found[0] is not current:
                found = made[0] = (current, arguments(current))
            args = found[1]
            if args is None or not x.flags.c_contiguous:
                return self.forward(self.contexts(False), [x], False)[0]
            image, kernel, bias, activation, conv, rows, output_sample, pooling, crop = args
            n = x.shape[0]
            if crop is not None:
                x = np.ascontiguousarray(x[:, :crop[0], :crop[1]])
            z = np.empty((n * rows, kernel.shape[1]), kernel.dtype)
            _convolution.conv_train_forward(x.reshape((n,) + image), kernel, z, None, *conv)
            if pool is None:
                activation.forward_bias(z, bias, z)
                return z.reshape((n,) + output_sample)
            if pooling is None:
                y = pool_layer.forward(CallContext(pool_layer, False),
                                       z.reshape((n,) + output_sample), False)
            else:
                # The pooling layer's forward.
                pool_image, pooled, dtype, pool_args, pooled_sample = pooling
                y = np.empty((n,) + pooled, dtype)
                _pooling.max_pool_forward(z.reshape((n,) + pool_image), y,
                                          np.empty(y.shape, np.intc), *pool_args)
                y = y.reshape((n,) + pooled_sample)
            rows = y.reshape(-1, y.shape[-1])
            activation.forward_bias(rows, bias, rows)
            return y

        return run

    def backward(self, contexts, dys):
        raise RuntimeError("A folded batch normalization runs in inference only.")


def _pooled_part(layer, geo, pool):
    """Where a 'valid' max pooling ``pool`` leaves the last rows or columns of the
    convolution ``layer``'s output (of geometry ``geo``) out (an 11x11 output pooled by
    2x2 windows: the 11th row and column), the input rows and columns that the pooled
    part reads, and that part's geometry: ``((rows, columns), geometry)``; else None.
    Each output value is one sum of its own, made in the same order whatever the image
    size, so the part has the bits of the whole output's first rows and columns."""
    from minidl.layers.convolutional import Conv2D
    window = geo.window
    pool_image, pooled, pool_window, _ = pool._geo(geo.output_sample)
    if (type(layer) is not Conv2D or layer.groups != 1 or not geo.direct
            or any(window["pads"]) or any(pool_window["pads"])):
        return None
    used = tuple((p - 1) * s + size for p, s, size in zip(
        pooled[:2], pool_window["strides"], pool_window["pool_size"]))
    if used == tuple(geo.out_image) or any(u > o for u, o in zip(used, geo.out_image)):
        return None   # (the whole output; or windows past its end: 'same' padding)
    crop = tuple((u - 1) * s + (k - 1) * d + 1 for u, s, k, d in zip(
        used, window["strides"], window["kernel_size"], window["dilation"]))
    part = layer._geo(crop)
    if (not part.direct or part.pointwise != geo.pointwise or tuple(part.out_image) != used
            or pool._geo(part.output_sample)[1] != pooled):
        return None
    return crop, part


def _plain_max_pooling(layer):
    """Whether ``layer`` is minidl's own MaxPooling1D or MaxPooling2D on channels_last data
    (its forward: ``_pooling.max_pool_forward`` on its geometry)."""
    from minidl.layers.pooling import MaxPooling1D, MaxPooling2D
    return type(layer) in (MaxPooling1D, MaxPooling2D) and not _channels_first(layer)


def _fold_batch_norm(layer, norm):
    """A shallow copy of ``layer`` (Dense or a convolution) computing ``norm(layer(x))``
    with ``norm``'s moving statistics."""
    kernel = layer._kernel_array
    scale = (norm._gamma.astype(np.float64)
             / np.sqrt(norm._moving_variance.astype(np.float64) + norm.epsilon))
    bias = -norm._moving_mean.astype(np.float64)
    if layer._bias_array is not None:
        bias = bias + layer._bias_array
    folded = object.__new__(type(layer))
    folded.__dict__.update(layer.__dict__)
    folded._kernel_array = (kernel * scale).astype(kernel.dtype)   # (filters last)
    folded._bias_array = (bias * scale + norm._beta).astype(kernel.dtype)
    return folded


def _pool_after_folded(plan, steps, private=False):
    """A folded convolution with a ReLU, then the max pooling reading its output (the last
    two of ``steps``), as one step (``FoldedBatchNormStep.with_pool``). ``private``: that
    output was inside a fused step of the plan, so nothing else reads it."""
    folded, pool = steps[-2], steps[-1]
    activation = folded.activation
    if (_built_in(folded.first.layer) and folded.pool is None
            and activation is not None and activation.kernel_params()[0] == "relu"
            and getattr(activation, "name", None) == "relu"
            and getattr(pool.layer, "pools_max_after_relu", False)
            and not _channels_first(pool.layer) and pool.training is None
            and pool.layer.activity_regularizer is None
            and (private or _only_reader(plan, folded.outputs[0]))):
        steps[-2:] = [folded.with_pool(pool)]


def _direct_convolution(layer, activation):
    """For a folded convolution of one group on inputs of one known shape that runs
    without a patch matrix (the direct kernels, or a pointwise kernel), what its inference
    forward needs: (sample shape, the sample as an image, kernel matrix, bias, activation,
    samples per chunk, geometry); else None."""
    sample = layer.built_input_shape
    if (not _built_in(layer) or layer.groups != 1 or sample is None
            or None in sample):
        return None
    geo = layer._geo(tuple(sample[:-1]))
    if not (geo.direct or geo.pointwise):
        return None
    return (tuple(sample), geo.image, layer._kernel_matrix(layer._kernel_array),
            layer._bias_array, activation or layer.activation,
            layer._chunk_samples(geo, False), geo)


def _folds_into(plan, first, norm):
    """Whether ``norm``'s BatchNormalization folds into ``first``'s layer in inference."""
    from minidl.layers.normalization import BatchNormalization
    if not (isinstance(first, LayerStep) and isinstance(norm, LayerStep)):
        return False
    layer, bn = first.layer, norm.layer
    return (type(bn) is BatchNormalization and _built_in(layer, with_dense=True)
            and first.training is None and norm.training is not True
            and getattr(layer.activation, "name", None) == "linear"
            and not _channels_first(layer) and layer.dtype == bn.dtype
            and layer.activity_regularizer is None and bn.activity_regularizer is None
            and bn.built_input_shape is not None
            and bn._axis == len(bn.built_input_shape)   # the channels (features) axis
            and _only_reader(plan, first.outputs[0]))


class ConvMaxPoolInferenceStep:
    """Inference of a convolution with few taps ending in a ReLU (``can_pool_directly``),
    optionally a BatchNormalization after it, then a max pooling: the pooled maxima come
    from csrc/conv_pool.c without forming the convolution's output, and the normalization
    runs on the pooled output (a quarter of the values, for 2x2 windows). The same bits as
    the three layers one after the other: the bias, the ReLU and the normalization of each
    channel are monotonic functions of the convolution's value (each rounded operation
    is), so the maximum of the normalized values is the normalized value of the largest
    convolution value where the channel's scale ``gamma`` is positive, of the smallest
    where it is negative; the smallest come from the kernel run on the negated filters
    (negation is exact).
    """

    training = None
    trainable = False
    runs_backward = False
    preactivation = False

    def __init__(self, conv, norm, pool):
        self.conv, self.norm, self.pool = conv, norm, pool
        self.layers = (conv.layer,) if norm is None else (conv.layer, norm.layer)
        self.inputs, self.outputs = conv.inputs, pool.outputs
        self.need_input_grads = [False]
        self._signed = None   # (WeightWrites.count, kernel, bias, signs or None)

    def contexts(self, record):
        return tuple(CallContext(layer, record=False) for layer in self.layers)

    def _signed_weights(self):
        """The kernel matrix and bias with the filters of negative ``gamma`` negated, and
        the signs (None where every filter keeps its sign)."""
        count = WeightWrites.count   # (read before reading the weights)
        signed = self._signed
        if signed is None or signed[0] != count:
            layer = self.conv.layer
            kernel = layer._kernel_matrix(layer._kernel_array)
            bias = layer._bias_array
            if bias is None:
                bias = np.zeros(layer.filters, kernel.dtype)
            negative = None if self.norm is None else self.norm.layer._gamma < 0
            if negative is None or not negative.any():
                signed = (count, kernel, bias, None)
            else:
                signs = np.where(negative, -1, 1).astype(kernel.dtype)
                signed = (count, np.ascontiguousarray(kernel * signs), bias * signs, signs)
            self._signed = signed
        return signed[1:]

    def forward(self, contexts, xs, training):
        layer, pool = self.conv.layer, self.pool.layer
        kernel, bias, signs = self._signed_weights()
        x = np.ascontiguousarray(xs[0]).reshape((xs[0].shape[0],) + layer._image)
        n = x.shape[0]
        y = np.empty((n,) + pool.pooled_image, kernel.dtype)
        argmax = np.empty(y.shape, np.intc)
        _conv_pool.conv_max_pool_forward(x, kernel, y, argmax, pool_size=pool.pool_window,
                                         bias=bias, relu=signs is None, **layer._window)
        if signs is not None:
            # max(-(z + b)) = -min(z + b): back to min(z + b), then the layer's ReLU kernel.
            rows = y.reshape(-1, y.shape[-1])
            np.multiply(rows, signs, out=rows)
            layer.activation.forward(rows, rows)
        y = y.reshape((n,) + pool.output_sample_shape)
        if self.norm is not None:
            y = self.norm.layer.forward(contexts[1], y, False)
        return (y,)

    def runner(self, sample_shape):
        """``run(x)``: :meth:`forward` (what ``Plan.run_chain`` calls), the same kernel
        calls on fresh arrays, with the normalization's called directly."""
        layer, pool = self.conv.layer, self.pool.layer
        image, pooled, pooled_sample = layer._image, pool.pooled_image, pool.output_sample_shape
        window = layer._window
        # (positional: a compiled function's keyword arguments cost a microsecond to parse)
        window = (window["kernel_size"], window["strides"], window["dilation"],
                  window["pads"], window["out_hw"], pool.pool_window)
        norm = None if self.norm is None else self.norm.layer
        per_sample = pooled[0] * pooled[1]
        tiled = [(None, None)]   # (signs, repeated for every pixel of a sample), one assignment

        def run(x):
            kernel, bias, signs = self._signed_weights()
            n = x.shape[0]
            x = np.ascontiguousarray(x).reshape((n,) + image)
            y = np.empty((n,) + pooled, kernel.dtype)
            _conv_pool.conv_max_pool_forward(x, kernel, y, np.empty(y.shape, np.intc),
                                             *window, bias, signs is None)
            if signs is not None:
                # As forward's rows * signs, the signs repeated over each sample's pixels:
                # numpy multiplies that in one pass instead of one short row at a time.
                found = tiled[0]
                if found[0] is not signs:
                    found = tiled[0] = (signs, np.tile(signs, per_sample))
                samples = y.reshape(n, -1)
                np.multiply(samples, found[1], out=samples)
                layer.activation.forward(samples, samples)
            y = y.reshape((n,) + pooled_sample)
            if norm is None:
                return y
            # BatchNormalization.forward in inference, without a ReLU after it, in place
            # (y is this call's own).
            _normalization.batch_norm_inference(
                y, norm._axis, norm._gamma, norm._beta, norm._moving_mean,
                norm._moving_variance, y, norm.epsilon, norm._owner, False, None)
            return y

        return run

    def backward(self, contexts, dys):
        raise RuntimeError("This fused step runs in inference only.")


def _built_in(layer, with_dense=False):
    """Whether ``layer`` is minidl's own Conv1D or Conv2D (or Dense, ``with_dense``), not a
    subclass, whose computation the inference steps may reproduce from its weights."""
    from minidl.layers.convolutional import Conv1D, Conv2D
    from minidl.layers.core import Dense
    return type(layer) in ((Conv1D, Conv2D, Dense) if with_dense else (Conv1D, Conv2D))


def _pools_directly(plan, conv, pool):
    """Whether ``conv`` (a convolution ending in a ReLU) and ``pool`` (the max pooling
    reading its output, or its normalization's) run as one in inference."""
    if not (isinstance(conv, LayerStep) and isinstance(pool, LayerStep)):
        return False
    return (_built_in(conv.layer) and getattr(pool.layer, "pools_max_after_relu", False)
            and getattr(pool.layer, "pool_window", None) is not None
            and getattr(conv.layer, "can_pool_directly", None) is not None
            and not _channels_first(conv.layer) and not _channels_first(pool.layer)
            and _ends_in_plain_relu(conv.layer) and conv.layer.activation.name == "relu"
            and conv.training is None and pool.training is None
            and pool.layer.activity_regularizer is None
            and conv.layer.can_pool_directly(pool.layer))


def _normalizes_channels(plan, norm):
    """Whether ``norm`` is a BatchNormalization of the channels (last axis) in inference,
    its input read by it alone."""
    from minidl.layers.normalization import BatchNormalization
    if not isinstance(norm, LayerStep):
        return False
    bn = norm.layer
    return (type(bn) is BatchNormalization and norm.training is not True
            and bn.activity_regularizer is None and bn.built_input_shape is not None
            and bn._axis == len(bn.built_input_shape)
            and _only_reader(plan, norm.inputs[0]))


def _conv_norm_pool(plan, conv, norm, pool):
    """Whether the steps are a convolution ending in a ReLU, a BatchNormalization and a
    max pooling that run as one in inference (each reading the one before alone)."""
    return (isinstance(conv, LayerStep) and _normalizes_channels(plan, norm)
            and norm.inputs == conv.outputs and pool.inputs == norm.outputs
            and _only_reader(plan, norm.outputs[0]) and _pools_directly(plan, conv, pool))


def inference_steps(plan):
    """``plan.steps`` for inference, the plan's own steps (which training runs) left as
    they are: a convolution of few taps with a ReLU, then max pooling (a BatchNormalization
    between them or not), as one :class:`ConvMaxPoolInferenceStep`; each Dense or
    convolution followed by a BatchNormalization that folds into it (``_folds_into``) as
    one :class:`FoldedBatchNormStep`, with the ReLU after it, if any."""
    producers = _producers(plan)
    _count_readers(plan)
    steps = []
    for step in plan.steps:
        norm, activation = step, None
        if isinstance(step, FusedActivationStep):
            norm, activation = step.first, step.activation_step.layer.activation
        first = producers.get(norm.inputs[0]) if isinstance(norm, LayerStep) else None
        folded = steps[-1] if steps and isinstance(steps[-1], FoldedBatchNormStep) else None
        if isinstance(step, ReluMaxPoolStep) and _pools_directly(plan, step.first, step.pool):
            steps.append(ConvMaxPoolInferenceStep(step.first, None, step.pool))
        elif (isinstance(step, LayerStep) and len(steps) > 1
              and _conv_norm_pool(plan, steps[-2], steps[-1], step)):
            steps[-2:] = [ConvMaxPoolInferenceStep(steps[-2], steps[-1], step)]
        elif first is not None and steps and steps[-1] is first and _folds_into(plan, first, norm):
            steps[-1] = FoldedBatchNormStep(first, norm, activation, outputs=step.outputs)
        elif (folded is not None and folded.activation is None
              and isinstance(step, ReluMaxPoolStep) and step.first.inputs == folded.outputs
              and getattr(step.first.layer, "is_activation_layer", False)
              and _only_reader(plan, folded.outputs[0])):
            # BatchNormalization, Activation('relu'), max pooling: the ReLU joins the folded
            # layer's bias pass, and the pooling runs on its own.
            steps[-1] = FoldedBatchNormStep(folded.first, folded.norm,
                                            step.first.layer.activation,
                                            outputs=step.first.outputs)
            steps.append(step.pool)
            _pool_after_folded(plan, steps, private=True)
        elif isinstance(step, LayerStep) and folded is not None and step.inputs == folded.outputs:
            steps.append(step)
            _pool_after_folded(plan, steps)
        else:
            steps.append(step)
    return steps


# ---- head_with_loss ----------------------------------------------------------------------

def head_with_loss(plan):
    """Mark each output whose softmax (sigmoid) the loss fuses with: the loss then returns
    the gradient of the pre-activation, and the step's backward starts there. Sets
    ``plan.fused_heads``: per output, whether it is fused."""
    plan.fused_heads = [False] * len(plan.output_slots)
    if plan.losses is None:
        return
    producers = _producers(plan)
    for i, (slot, loss) in enumerate(zip(plan.output_slots, plan.losses)):
        step = producers.get(slot)
        fused_with = getattr(loss, "fused_with", None)
        if step is None or fused_with is None or plan.consumers[slot]:
            continue
        if isinstance(step, FusedActivationStep):
            if (not hasattr(step.first.layer, "backward_preactivation")
                    or _channels_first(step.first.layer)):
                continue
            activation = step.activation_step.layer.activation
        elif (isinstance(step, LayerStep) and hasattr(step.layer, "backward_preactivation")
              and not _channels_first(step.layer)):
            activation = getattr(step.layer, "activation", None)
        else:
            continue
        if getattr(activation, "name", None) == fused_with and step.training is not False:
            step.preactivation = True
            plan.fused_heads[i] = True


# ---- gradients_needed --------------------------------------------------------------------

def gradients_needed(plan):
    """Which tensors need a gradient (those depending on a trainable weight), so which steps
    run backward and which inputs they return a gradient for: nothing before the first
    trainable layer runs backward, and that layer skips its input gradient."""
    needs = [False] * plan.slot_count
    for step in plan.steps:
        wants = step.trainable or any(needs[s] for s in step.inputs)
        step.need_input_grads = [needs[s] for s in step.inputs]
        step.runs_backward = wants
        for slot in step.outputs:
            needs[slot] = wants
    plan.slot_needs_grad = needs


RULES = [gradients_needed, relu_then_max_pool, activation_into_layer, head_with_loss,
         gradients_needed]


def apply(plan):
    """Apply every rule of ``RULES`` to ``plan``, in order. (gradients_needed runs first
    too: relu_then_max_pool pools directly only where no input gradient is needed.)"""
    for rule in RULES:
        _count_readers(plan)
        rule(plan)
    _count_readers(plan)


# ---- helpers -----------------------------------------------------------------------------

def _count_readers(plan):
    readers = [0] * plan.slot_count
    for step in plan.steps:
        for slot in step.inputs:
            readers[slot] += 1
    plan.consumers = readers


def _producers(plan):
    return {slot: step for step in plan.steps for slot in step.outputs}


def _only_reader(plan, slot):
    """The slot is read by exactly one step and is not a model output."""
    return plan.consumers[slot] == 1 and slot not in plan.output_slots
