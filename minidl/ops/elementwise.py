"""Elementwise ops: arithmetic, unary math, comparisons, ``where`` and ``clip``.

Each op computes with numpy on the operands' arrays (broadcasting as numpy does) and keeps,
right after, a ``backward(g, needs)`` closure: the gradient of each operand, summed back over
the axes numpy broadcast (``unbroadcast``). ``record`` keeps the closure only while a tape
records and an operand needs a gradient; otherwise an op costs its numpy call plus about a
microsecond.

Dtypes follow Keras 3 (its JAX-like promotion) where numpy's differ:

- Python numbers are weak: a float32 tensor plus 1.5 is float32, an int8 tensor plus 3 int8;
- an integer or bool tensor with a float tensor gives that float's dtype (int32 with float32
  is float32; numpy says float64);
- integers with a Python float, true division of integers, and float math on integers
  (``sqrt``, ``exp``, ``log``, ``sin``, ...) give floatx, float32 (numpy: float64, or
  float16 for int8);
- Python numbers alone: ints give int32, floats float32.

Unlike Keras on the JAX and torch backends, which narrow 64-bit results to 32 bits, float64
stays float64 (as Keras on TensorFlow): code that asks for float64 gets it.

Gradients at the edges, as TensorFlow: ``abs`` and ``sign`` have gradient 0 at 0;
``maximum``/``minimum`` give a tie to ``x1``; ``clip`` passes the gradient where
``x_min <= x <= x_max``; ``floor``, ``ceil``, ``round`` and ``floor_divide`` pass none (their
backward gives None: a source reached only through them gets None, or zeros with
``unconnected_gradients='zero'``). Comparisons and logical ops have no backward at all: a
gradient asked for only through them is an error naming the op.
"""
import math

import numpy as np

from minidl.autodiff.tensor import (FLOATX, Tensor, _UFUNC_OPS, gradient_buffer, record,
                                    to_array, unbroadcast, value_of)

__all__ = ["abs", "absolute", "add", "ceil", "clip", "cos", "divide", "divide_no_nan",
           "equal", "erf", "exp", "expm1", "floor", "floor_divide", "greater",
           "greater_equal", "less", "less_equal", "log", "log1p", "logical_and",
           "logical_not", "logical_or", "logical_xor", "maximum", "minimum", "mod",
           "multiply", "negative", "not_equal", "power", "reciprocal", "round", "sign", "sin",
           "sqrt", "square", "subtract", "true_divide", "where"]

_BOOL = np.dtype(np.bool_)
_INT32 = np.dtype(np.int32)
_INT64 = np.dtype(np.int64)
# Operand dtypes with which an int64 result is Keras' too (int64 itself; uint32 with a
# signed integer). Any other int64 result is numpy widening Python ints or bools.
_WIDE_INTS = (np.dtype(np.int64), np.dtype(np.uint32))


# ---- dtype rules ----

def _keras_dtype(out, a, b):
    """``out`` (numpy's result for operands ``a`` and ``b`` as numpy took them) in Keras'
    result dtype, where numpy's promotion differs (see the module docstring)."""
    dt = out.dtype
    da = getattr(a, "dtype", None)
    db = getattr(b, "dtype", None)
    if dt is da or dt is db:
        # numpy kept an operand's dtype: float32 with float32 or with a Python number, ...
        return out
    kind = dt.kind
    if kind == "f":
        fa = da if da is not None and da.kind == "f" else None
        fb = db if db is not None and db.kind == "f" else None
        if fa is not None and fb is not None:
            return out   # float with float: numpy and Keras agree
        target = fa or fb or FLOATX
    elif dt == _INT64:
        if (da is not None and da in _WIDE_INTS) or (db is not None and db in _WIDE_INTS):
            return out
        target = _INT32
    else:
        return out
    return out if dt == target else out.astype(target)


def _operand(x):
    """The array of an op's operand: Python numbers converted as Keras does (floats to
    float32, ints to int32). (The reductions, numpy_extra and math_ops use it too.)"""
    if isinstance(x, Tensor):
        return x.value
    if isinstance(x, np.ndarray):
        return x
    return to_array(x)


def _float_operand(x):
    """The array of a float-valued op's operand: integers and bools as floatx (numpy would
    compute them in float64, or float16 for 8-bit ones)."""
    a = _operand(x)
    if a.dtype.kind not in "fc":
        a = a.astype(FLOATX)
    return a


def _broadcast_error(name, shapes):
    return ValueError(f"ops.{name}: operands of shapes "
                      f"{' and '.join(str(s) for s in shapes)} cannot be broadcast together "
                      f"(numpy's rules: aligned from the last axis, sizes must be equal or 1).")


def _binary(name, fn, x1, x2):
    """``fn`` on the operands' values: returns (a, b, out) with ``out`` in Keras' dtype; a
    shape mismatch is a ValueError naming the op and both shapes."""
    a = value_of(x1)
    b = value_of(x2)
    try:
        out = fn(a, b)
    except ValueError as error:
        if "broadcast" not in str(error):
            raise
        raise _broadcast_error(name, (np.shape(a), np.shape(b))) from None
    return a, b, _keras_dtype(out, a, b)


# ---- arithmetic ----

def add(x1, x2):
    """Add arguments element-wise.

    Args:
        x1: first input tensor.
        x2: second input tensor (broadcast against ``x1``).

    Returns:
        The tensor ``x1 + x2``.
    """
    if isinstance(x1, Tensor) and isinstance(x2, Tensor):
        a, b = x1.value, x2.value
        # Fast paths for two tensors of one dtype (numpy's result dtype is then Keras'):
        # equal shapes (timeit, 32x64 float32: 1.27 -> 0.99 us), and a bias added to a
        # batch of rows, whose backward is one reduction, into the plan's gradient array
        # when there is one.
        if a.dtype is b.dtype:
            if a.shape == b.shape:
                return record("add", np.add(a, b), (x1, x2), _both_get_g)
            if a.shape[1:] == b.shape:
                def bias_backward(g, needs):
                    # The bias's gradient straight into the array the backward pass may
                    # hold for it (a plan's weight gradient), else a new one.
                    return (g if needs[0] else None,
                            _add_reduce(g, 0, out=gradient_buffer(x2)) if needs[1] else None)
                return record("add", np.add(a, b), (x1, x2), bias_backward)
    a, b, out = _binary("add", np.add, x1, x2)

    def backward(g, needs):
        return (unbroadcast(g, _shape(a)) if needs[0] else None,
                unbroadcast(g, _shape(b)) if needs[1] else None)
    return record("add", out, (x1, x2), backward)


_add_reduce = np.add.reduce


def _both_get_g(g, needs):
    # The backward pass of a sum of two operands of the output's shape.
    return (g if needs[0] else None, g if needs[1] else None)


def _shape(v):
    # np.shape without its dispatch for the usual ndarray (0.3 us less per call).
    return v.shape if type(v) is np.ndarray else np.shape(v)


def _named(op, name, doc):
    """``op`` as the public function ``name`` with docstring ``doc`` (for ops that a factory
    makes)."""
    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    return op


def _binary_op(name, fn, d1, d2, doc):
    """The op ``name(x1, x2)``: ``fn`` on the operands' values (``_binary``), recorded with
    the backward giving ``x1`` the gradient ``d1(g, a, b, out)`` and ``x2`` ``d2(g, a, b,
    out)``, each computed only when needed and summed back over the axes numpy broadcast.
    (``add`` is written out above: its dispatch is tuned on its own.)"""
    def op(x1, x2):
        # (a, b, out) stay one tuple until backward runs: one closure cell, not three.
        forward = _binary(name, fn, x1, x2)

        def backward(g, needs):
            a, b, out = forward
            return (unbroadcast(d1(g, a, b, out), np.shape(a)) if needs[0] else None,
                    unbroadcast(d2(g, a, b, out), np.shape(b)) if needs[1] else None)
        return record(name, forward[2], (x1, x2), backward)
    return _named(op, name, doc)


def _binary_doc(summary, returns, x1="first input tensor.", x2="second input tensor"):
    return (f"{summary}\n\n    Args:\n        x1: {x1}\n        x2: {x2} (broadcast against "
            f"``x1``).\n\n    Returns:\n        {returns}\n    ")


subtract = _binary_op(
    "subtract", np.subtract, lambda g, a, b, out: g, lambda g, a, b, out: -g,
    _binary_doc("Subtract arguments element-wise.", "The tensor ``x1 - x2``."))

multiply = _binary_op(
    "multiply", np.multiply, lambda g, a, b, out: g * b, lambda g, a, b, out: g * a,
    _binary_doc("Multiply arguments element-wise.", "The tensor ``x1 * x2``."))

divide = _binary_op(
    "divide", np.true_divide, lambda g, a, b, out: g / b, lambda g, a, b, out: -g * out / b,
    _binary_doc("Divide arguments element-wise (true division: integers give floatx).",
                "The tensor ``x1 / x2``.", "numerator.", "denominator"))

true_divide = divide


def divide_no_nan(x1, x2):
    """Safe element-wise division: 0 where the denominator is 0.

    Args:
        x1: numerator.
        x2: denominator (broadcast against ``x1``).

    Returns:
        The tensor ``x1 / x2``, with 0 wherever ``x2 == 0`` (and a gradient of 0 there).
    """
    a, b = value_of(x1), value_of(x2)
    if isinstance(b, (int, float)):
        zero = b == 0
        safe_b = 1 if zero else b
    else:
        zero = np.equal(b, 0)
        safe_b = np.where(zero, 1, b) if zero.any() else b
    try:
        q = _keras_dtype(np.true_divide(a, safe_b), a, b)
    except ValueError as error:
        if "broadcast" not in str(error):
            raise
        raise _broadcast_error("divide_no_nan", (np.shape(a), np.shape(b))) from None
    out = np.where(zero, 0, q) if np.any(zero) else q

    def backward(g, needs):
        g = np.where(zero, 0, g)
        return (unbroadcast(g / safe_b, np.shape(a)) if needs[0] else None,
                unbroadcast(-g * q / safe_b, np.shape(b)) if needs[1] else None)
    return record("divide_no_nan", out, (x1, x2), backward)


def power(x1, x2):
    """First tensor elements raised to powers from the second, element-wise.

    Args:
        x1: the bases.
        x2: the exponents (broadcast against ``x1``).

    Returns:
        The tensor ``x1 ** x2``. Gradients: for the base ``x2 * x1 ** (x2 - 1)``, 0 where
        ``x2 == 0``; for the exponent ``x1 ** x2 * log(x1)``, 0 where ``x1 <= 0`` (as
        TensorFlow).
    """
    a, b, out = _binary("power", np.power, x1, x2)

    def backward(g, needs):
        da = db = None
        if needs[0]:
            # (b - 1 in Python for a Python b: numpy would make it a strong int64 scalar,
            # and float32 ** int64 is float64)
            exponent = b - 1 if isinstance(b, (int, float)) else np.subtract(b, 1)
            with np.errstate(divide="ignore", invalid="ignore"):
                slope = np.multiply(b, np.power(a, exponent))
            if np.any(np.equal(b, 0)):
                # d/da a**0 is 0, also at a == 0 where b * a**(b-1) is 0 * inf.
                slope = np.where(np.equal(b, 0), 0, slope)
            da = unbroadcast(g * slope, np.shape(a))
        if needs[1]:
            if isinstance(a, (int, float)):
                log_a = math.log(a) if a > 0 else 0.0
            else:
                positive = a > 0
                log_a = np.log(np.where(positive, a, 1))
                log_a = np.where(positive, log_a, 0)
            db = unbroadcast(g * out * log_a, np.shape(b))
        return da, db
    return record("power", out, (x1, x2), backward)


def floor_divide(x1, x2):
    """Floor division element-wise (``x1 // x2``); it passes no gradient.

    Args:
        x1: numerator.
        x2: denominator (broadcast against ``x1``).

    Returns:
        The tensor ``floor(x1 / x2)``.
    """
    out = _binary("floor_divide", np.floor_divide, x1, x2)[2]
    return record("floor_divide", out, (x1, x2), lambda g, needs: (None, None))


mod = _binary_op(
    "mod", np.mod, lambda g, a, b, out: g, lambda g, a, b, out: -g * np.floor_divide(a, b),
    _binary_doc("Remainder of division element-wise, with the sign of the divisor (as numpy).",
                "The tensor ``x1 % x2``. Gradients: 1 for ``x1``, ``-floor(x1 / x2)`` for "
                "``x2``.", "numerator.", "divisor"))

# (Each operand's gradient makes its own comparison: both are needed only when both operands
# are tensors that need a gradient.)
maximum = _binary_op(
    "maximum", np.maximum, lambda g, a, b, out: np.where(np.greater_equal(a, b), g, 0),
    lambda g, a, b, out: np.where(np.greater_equal(a, b), 0, g),
    _binary_doc("Element-wise maximum of ``x1`` and ``x2``.",
                """The larger of the two at each position. The gradient goes to ``x1`` where
        ``x1 >= x2`` (a tie to the first operand, as TensorFlow), else to ``x2``."""))

minimum = _binary_op(
    "minimum", np.minimum, lambda g, a, b, out: np.where(np.less_equal(a, b), g, 0),
    lambda g, a, b, out: np.where(np.less_equal(a, b), 0, g),
    _binary_doc("Element-wise minimum of ``x1`` and ``x2``.",
                """The smaller of the two at each position. The gradient goes to ``x1`` where
        ``x1 <= x2`` (a tie to the first operand), else to ``x2``."""))


# ---- unary ----

def _numeric_operand(x):
    """The array of an operand that arithmetic takes as numbers: bools as int32 (Keras)."""
    a = _operand(x)
    if a.dtype.kind == "b":
        a = a.astype(_INT32)
    return a


def _unary_op(name, fn, derivative, doc, operand=_float_operand):
    """The op ``name(x)``: ``y = fn(a)`` with ``a = operand(x)`` (by default integers as
    floatx), recorded with the backward whose gradient is ``derivative(g, a, y)``."""
    def op(x):
        a = operand(x)
        y = fn(a)
        return record(name, y, (x,), lambda g, needs: (derivative(g, a, y),))
    return _named(op, name, doc)


def _no_gradient(g, needs):
    """The backward of the unary ops that pass no gradient (floor, ceil, round)."""
    return (None,)


def _unary_op_on_g(name, fn, backward, doc, operand=_float_operand):
    """The op ``name(x)``, ``fn(operand(x))``, for a backward that reads only the incoming
    gradient: ``backward`` itself is recorded, with no closure to make at each call."""
    def op(x):
        return record(name, fn(operand(x)), (x,), backward)
    return _named(op, name, doc)


def _unary_doc(summary, returns, x="input tensor."):
    return f"{summary}\n\n    Args:\n        x: {x}\n\n    Returns:\n        {returns}\n    "


negative = _unary_op_on_g(
    "negative", np.negative, lambda g, needs: (-g,),
    _unary_doc("Numerical negative, element-wise.", "The tensor ``-x``."), _operand)

abs = _unary_op(
    "abs", np.absolute, lambda g, a, y: g * np.sign(a),
    _unary_doc("Absolute value, element-wise.",
               "The tensor ``|x|``; its gradient is ``sign(x)`` (0 at 0)."), _operand)

absolute = abs

square = _unary_op(
    "square", np.square, lambda g, a, y: g * (2 * a),
    _unary_doc("Square, element-wise (bools are squared as int32, as Keras).",
               "The tensor ``x * x``."), _numeric_operand)

sqrt = _unary_op(
    "sqrt", np.sqrt, lambda g, a, y: g / (2 * y),
    _unary_doc("Non-negative square root, element-wise (integers give floatx).",
               "The tensor ``sqrt(x)``; its gradient ``1 / (2 sqrt(x))`` is inf at 0."))

exp = _unary_op(
    "exp", np.exp, lambda g, a, y: g * y,
    _unary_doc("Exponential, element-wise (integers give floatx).", "The tensor ``e ** x``."))

expm1 = _unary_op(
    "expm1", np.expm1, lambda g, a, y: g * (y + 1),
    _unary_doc("``exp(x) - 1``, element-wise, accurate near 0 (integers give floatx).",
               "The tensor ``exp(x) - 1``."))

log = _unary_op(
    "log", np.log, lambda g, a, y: g / a,
    _unary_doc("Natural logarithm, element-wise (integers give floatx).",
               "The tensor ``log(x)``."))

log1p = _unary_op(
    "log1p", np.log1p, lambda g, a, y: g / (1 + a),
    _unary_doc("``log(1 + x)``, element-wise, accurate near 0 (integers give floatx).",
               "The tensor ``log(1 + x)``."))

reciprocal = _unary_op(
    "reciprocal", np.reciprocal, lambda g, a, y: -g * y * y,
    _unary_doc("Reciprocal, element-wise (integers give floatx).", "The tensor ``1 / x``."))

sign = _unary_op_on_g(
    "sign", np.sign, lambda g, needs: (np.zeros_like(g),),
    _unary_doc("Sign, element-wise: -1, 0 or 1 (the input's dtype).",
               "The tensor ``sign(x)``; its gradient is 0 (as TensorFlow)."), _operand)

sin = _unary_op(
    "sin", np.sin, lambda g, a, y: g * np.cos(a),
    _unary_doc("Trigonometric sine, element-wise (integers give floatx).",
               "The tensor ``sin(x)``.", "input tensor, in radians."))

cos = _unary_op(
    "cos", np.cos, lambda g, a, y: -g * np.sin(a),
    _unary_doc("Trigonometric cosine, element-wise (integers give floatx).",
               "The tensor ``cos(x)``.", "input tensor, in radians."))


_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)
_erf_kernel = None


def _erf_values(a):
    """libm's erf over an array: scipy's ufunc when installed (compiled), else
    ``math.erf`` per element (exact as well, but about 50 ns an element)."""
    global _erf_kernel
    if _erf_kernel is None:
        try:
            from scipy.special import erf as kernel
        except ImportError:   # scipy is optional
            python_erf = np.frompyfunc(math.erf, 1, 1)

            def kernel(v):
                return python_erf(v)
        _erf_kernel = kernel
    return np.asarray(_erf_kernel(a), dtype=a.dtype)


erf = _unary_op(
    "erf", _erf_values, lambda g, a, y: g * (_TWO_OVER_SQRT_PI * np.exp(-(a * a))),
    _unary_doc("""The Gauss error function, element-wise (integers give floatx).

    For GELU prefer ``minidl.activations.gelu``, a compiled kernel.""",
               "The tensor ``erf(x)``; its gradient is ``2 / sqrt(pi) * exp(-x ** 2)``."))

floor = _unary_op_on_g(
    "floor", np.floor, _no_gradient,
    _unary_doc("Floor, element-wise (integers give floatx, as Keras); it passes no gradient.",
               "The largest integer values not above ``x``."))

ceil = _unary_op_on_g(
    "ceil", np.ceil, _no_gradient,
    _unary_doc("Ceiling, element-wise (integers give floatx, as Keras); it passes no "
               "gradient.", "The smallest integer values not below ``x``."))


def round(x, decimals=0):
    """Round half to even, element-wise (the input's dtype); it passes no gradient.

    Args:
        x: input tensor.
        decimals: number of decimal places to round to (negative: left of the point).

    Returns:
        ``x`` rounded (``round(2.5) == 2``, as numpy and TensorFlow).
    """
    a = _operand(x)
    if not isinstance(decimals, (int, np.integer)) or isinstance(decimals, bool):
        raise TypeError(f"ops.round: decimals must be an int; received "
                        f"decimals={decimals!r}.")
    return record("round", np.round(a, int(decimals)), (x,), _no_gradient)


def clip(x, x_min, x_max):
    """Clip (limit) the values of a tensor.

    Args:
        x: input tensor.
        x_min: minimum value (a number or a tensor broadcast against ``x``).
        x_max: maximum value.

    Returns:
        ``x`` limited to ``[x_min, x_max]``, in ``x``'s dtype (bools as int32, as Keras).
        The gradient flows to ``x`` where ``x_min <= x <= x_max``, to ``x_min`` where
        ``x < x_min`` and to ``x_max`` where the result is ``x_max`` otherwise (as
        TensorFlow).
    """
    a = _numeric_operand(x)
    lo, hi = value_of(x_min), value_of(x_max)
    try:
        out = a.clip(lo, hi)   # (the method: np.clip's wrapper costs about 1 us more)
    except ValueError as error:
        if "broadcast" not in str(error):
            raise
        raise _broadcast_error("clip", (a.shape, np.shape(lo), np.shape(hi))) from None
    if out.dtype != a.dtype:
        out = out.astype(a.dtype)

    def backward(g, needs):
        inside = np.greater_equal(a, lo) & np.less_equal(a, hi)
        g_lo = g_hi = None
        if needs[1] or needs[2]:
            # As out = minimum(maximum(x, lo), hi): hi wins wherever max(x, lo) > hi.
            above = np.greater(np.maximum(a, lo), hi)
            if needs[1]:
                g_lo = unbroadcast(np.where(np.less(a, lo) & ~above, g, 0), np.shape(lo))
            if needs[2]:
                g_hi = unbroadcast(np.where(above, g, 0), np.shape(hi))
        g_x = unbroadcast(np.where(inside, g, 0), a.shape) if needs[0] else None
        return g_x, g_lo, g_hi
    return record("clip", out, (x, x_min, x_max), backward)


def where(condition, x1=None, x2=None):
    """Elements chosen from ``x1`` or ``x2`` by ``condition``.

    Args:
        condition: where True, take ``x1``, else ``x2`` (cast to bool).
        x1: values where ``condition`` holds.
        x2: values where it does not. The three broadcast together.

    Returns:
        The selected tensor, in the Keras result dtype of ``x1`` and ``x2``. With neither
        ``x1`` nor ``x2``: a tuple of int32 index tensors, one per axis, of the positions
        where ``condition`` holds (as ``nonzero``). The condition gets no gradient.
    """
    c = value_of(condition)
    if getattr(c, "dtype", None) is not _BOOL:
        c = np.asarray(c, dtype=bool)
    if x1 is None and x2 is None:
        return tuple(record("where", i.astype(_INT32), (), None) for i in np.nonzero(c))
    if x1 is None or x2 is None:
        raise ValueError(f"ops.where: x1 and x2 must both be given, or neither; received "
                         f"x1={'None' if x1 is None else 'a value'} and "
                         f"x2={'None' if x2 is None else 'a value'}.")
    a, b = value_of(x1), value_of(x2)
    try:
        out = np.where(c, a, b)
    except ValueError as error:
        if "broadcast" not in str(error):
            raise
        raise _broadcast_error("where", (c.shape, np.shape(a), np.shape(b))) from None
    out = _keras_dtype(out, a, b)

    def backward(g, needs):
        return (None,
                unbroadcast(np.where(c, g, 0), np.shape(a)) if needs[1] else None,
                unbroadcast(np.where(c, 0, g), np.shape(b)) if needs[2] else None)
    return record("where", out, (condition, x1, x2), backward)


# ---- comparisons and logic (bool results, no gradient) ----

def _compare(name, fn, doc):
    def op(x1, x2):
        a = value_of(x1)
        b = value_of(x2)
        try:
            out = fn(a, b)
        except ValueError as error:
            if "broadcast" not in str(error):
                raise
            raise _broadcast_error(name, (np.shape(a), np.shape(b))) from None
        return record(name, out, (x1, x2), None)
    return _named(op, name, _binary_doc(f"{doc}, element-wise.",
                                        "A bool tensor. It has no gradient."))


equal = _compare("equal", np.equal, "``x1 == x2``")
not_equal = _compare("not_equal", np.not_equal, "``x1 != x2``")
less = _compare("less", np.less, "``x1 < x2``")
less_equal = _compare("less_equal", np.less_equal, "``x1 <= x2``")
greater = _compare("greater", np.greater, "``x1 > x2``")
greater_equal = _compare("greater_equal", np.greater_equal, "``x1 >= x2``")
logical_and = _compare("logical_and", np.logical_and, "Logical AND")
logical_or = _compare("logical_or", np.logical_or, "Logical OR")
logical_xor = _compare("logical_xor", np.logical_xor, "Logical XOR")


def logical_not(x):
    """Logical NOT, element-wise.

    Args:
        x: input tensor.

    Returns:
        A bool tensor. It has no gradient.
    """
    return record("logical_not", np.logical_not(value_of(x)), (x,), None)


# numpy ufuncs called on tensors (``np.floor(t)``) run these ops (Tensor.__array_ufunc__);
# minidl.ops binds the arithmetic ones, here are the others this module defines.
_UFUNC_OPS.update({
    np.floor: floor, np.ceil: ceil, np.rint: round, np.sin: sin, np.cos: cos,
    np.reciprocal: reciprocal, np.logical_and: logical_and, np.logical_or: logical_or,
    np.logical_xor: logical_xor, np.logical_not: logical_not,
})
