"""Linear algebra: ``matmul`` on minidl's GEMM, ``dot``, ``tensordot``, ``outer``, ``einsum``,
``transpose``.

Float32/float64 products that reduce to one 2-D product run on the compiled GEMM
(``_core._backend.gemm``), whose transposed operands cost nothing: the backward pass of
``y = a @ b`` computes ``da = g @ b.T`` and ``db = a.T @ g`` without materialising a
transpose. A batched left operand times a 2-D right one, ``(..., n, k) @ (k, m)`` (a Dense
layer written by hand), is folded into one ``(... * n, k) @ (k, m)`` GEMM. Two-operand
``einsum`` contractions are rearranged into a (batched) matrix product the same way.
"""
import functools
import math
import string
from collections import Counter

import numpy as np

from minidl._core._backend import gemm
from minidl.autodiff.tensor import Tensor, gradient_buffer, record, unbroadcast, value_of

__all__ = ["dot", "einsum", "matmul", "outer", "tensordot", "transpose"]

_GEMM_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _gemm_ready(a, b):
    """Whether the GEMM takes ``a`` and ``b`` as they are: same float dtype, plain arrays."""
    return (type(a) is np.ndarray and type(b) is np.ndarray and a.dtype == b.dtype
            and a.dtype in _GEMM_DTYPES)


def _mm(a, b, trans_a=False, trans_b=False):
    """``op(a) @ op(b)`` for 2-D arrays (GEMM for matching float dtypes; numpy else) and
    numpy's batched ``matmul`` for higher ranks (no transposes there)."""
    if a.ndim == 2 and b.ndim == 2 and _gemm_ready(a, b):
        return gemm(a, b, trans_a=trans_a, trans_b=trans_b)
    return np.matmul(a.T if trans_a else a, b.T if trans_b else b)


def _as_dtype(g, dtype):
    # The gradient engine hands float gradients in the output's dtype; a float64 gradient
    # seeded by the caller must not push the GEMM off its float32 path.
    return g if g.dtype == dtype or dtype.kind != "f" else g.astype(dtype)


def _fix_dtype(out, operands):
    """Keras' promotion: integers with float32 give float32 (numpy gives float64)."""
    if out.dtype == np.float64 and not any(np.asarray(x).dtype == np.float64
                                           for x in operands):
        return out.astype(np.float32)
    return out


# ---- matmul, dot, tensordot, outer ------------------------------------------------------

def matmul(x1, x2):
    """Matrix product of two tensors.

    numpy's rules: the last two axes are the matrices, leading axes broadcast as batch
    axes, a 1-D first (second) operand is a row (column) vector whose axis is removed from
    the result. Float products of a 2-D right operand with a 2-D or batched left operand run
    on minidl's GEMM as one 2-D product.

    Args:
        x1: first tensor, rank >= 1.
        x2: second tensor, rank >= 1.

    Returns:
        The product, a tensor.
    """
    return _matmul("matmul", x1, x2)


def _matmul(name, x1, x2):
    if isinstance(x1, Tensor) and isinstance(x2, Tensor):
        # Two tensors (a user layer's x @ kernel): value_of's and _gemm_ready's answers
        # without their calls (timeit, 32x64 @ 64x64 float32: 3.2 -> 2.7 us, of which the
        # GEMM 2.3); each operand's gradient straight into the array the backward pass may
        # hold for it (a plan's weight gradient: gradient_buffer), else a new one.
        a, b = x1.value, x2.value
        if a.ndim == 2 and b.ndim == 2 and a.dtype is b.dtype and \
                (a.dtype is _GEMM_DTYPES[0] or a.dtype is _GEMM_DTYPES[1]) and \
                a.shape[1] == b.shape[0]:
            out = gemm(a, b)

            def backward(g, needs):
                g = np.ascontiguousarray(g)
                return (gemm(g, b, trans_b=True, out=gradient_buffer(x1)) if needs[0] else None,
                        gemm(a, g, trans_a=True, out=gradient_buffer(x2)) if needs[1] else None)
            return record(name, out, (x1, x2), backward)
    else:
        a, b = value_of(x1), value_of(x2)
    if (_gemm_ready(a, b) and b.ndim == 2 and a.ndim >= 2 and a.shape[-1] == b.shape[0]):
        # (..., n, k) @ (k, m) is one (prod(...) * n, k) @ (k, m) GEMM; the reshape is free
        # for a contiguous `a`.
        k = b.shape[0]
        rows = math.prod(a.shape[:-1])
        a2 = a.reshape(rows, k)
        out = gemm(a2, b).reshape(a.shape[:-1] + (b.shape[1],))

        def backward(g, needs):
            g2 = _as_dtype(g, a.dtype).reshape(rows, b.shape[1])
            return (gemm(g2, b, trans_b=True).reshape(a.shape) if needs[0] else None,
                    gemm(a2, g2, trans_a=True) if needs[1] else None)
        return record(name, out, (x1, x2), backward)

    a, b = np.asarray(a), np.asarray(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"ops.{name} takes tensors of rank >= 1; received shapes {a.shape} "
                         f"and {b.shape}. Use ops.multiply for scalars.")
    k_a, k_b = a.shape[-1], b.shape[0] if b.ndim == 1 else b.shape[-2]
    if k_a != k_b:
        raise ValueError(f"ops.{name}: shapes {a.shape} and {b.shape} do not fit: the last "
                         f"axis of x1 ({k_a}) must equal the "
                         f"{'only' if b.ndim == 1 else 'second-to-last'} axis of x2 ({k_b}).")
    try:
        out = _fix_dtype(np.matmul(a, b), (a, b))
    except ValueError:
        raise ValueError(f"ops.{name}: the batch axes of shapes {a.shape} and {b.shape} "
                         f"({a.shape[:-2]} and {b.shape[:-2]}) cannot be broadcast together "
                         f"(numpy's broadcasting rules).") from None

    def backward(g, needs):
        # Restore the axes a 1-D operand lost, so that both gradients are batched matrix
        # products, then sum over the batch axes an operand was broadcast along.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if a.ndim == 1 and b.ndim == 1:
            g2 = g.reshape(1, 1)          # the inner product's 0-d gradient
        elif a.ndim == 1:
            g2 = np.expand_dims(g, -2)
        elif b.ndim == 1:
            g2 = np.expand_dims(g, -1)
        else:
            g2 = g
        da = db = None
        if needs[0]:
            da = unbroadcast(np.matmul(g2, np.swapaxes(b2, -1, -2)), a2.shape)
            da = da.reshape(a.shape)
        if needs[1]:
            db = unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), g2), b2.shape)
            db = db.reshape(b.shape)
        return da, db
    return record(name, out, (x1, x2), backward)


def dot(x1, x2):
    """Dot product of two tensors, as ``numpy.dot``.

    - Both 1-D: the inner product.
    - Both 2-D: the matrix product.
    - Either 0-D: the elementwise product.
    - ``x1`` N-D and ``x2`` 1-D: a sum product over the last axis of ``x1``.
    - ``x1`` N-D and ``x2`` M-D (M >= 2): a sum product over the last axis of ``x1`` and the
      second-to-last axis of ``x2`` (every batch of ``x1`` with every batch of ``x2``, unlike
      ``matmul``).

    Args:
        x1: first tensor.
        x2: second tensor.

    Returns:
        The product, a tensor.
    """
    a, b = value_of(x1), value_of(x2)
    if np.ndim(a) == 0 or np.ndim(b) == 0:
        from minidl.ops.elementwise import multiply
        return multiply(x1, x2)
    if np.ndim(b) <= 2:
        return _matmul("dot", x1, x2)   # numpy's dot and matmul agree here
    return _tensordot("dot", x1, x2, ([np.ndim(a) - 1], [np.ndim(b) - 2]))


def tensordot(x1, x2, axes=2):
    """Sum of products of ``x1`` and ``x2`` over the given axes, as ``numpy.tensordot``.

    Args:
        x1: first tensor.
        x2: second tensor.
        axes: an int ``n``: the last ``n`` axes of ``x1`` with the first ``n`` of ``x2``; or
            a pair ``(axes_1, axes_2)`` of ints or equally long sequences of ints.

    Returns:
        A tensor with the remaining axes of ``x1`` followed by the remaining axes of ``x2``.
    """
    return _tensordot("tensordot", x1, x2, axes)


def _tensordot(name, x1, x2, axes):
    a, b = np.asarray(value_of(x1)), np.asarray(value_of(x2))
    if isinstance(axes, (int, np.integer)):
        n = int(axes)
        if n < 0 or n > min(a.ndim, b.ndim):
            raise ValueError(f"ops.{name}: axes={n} must be between 0 and the smaller rank; "
                             f"received shapes {a.shape} and {b.shape}.")
        a_axes, b_axes = list(range(a.ndim - n, a.ndim)), list(range(n))
    else:
        try:
            a_axes, b_axes = axes
        except (TypeError, ValueError):
            raise ValueError(f"ops.{name}: axes must be an int or a pair of axis lists; "
                             f"received axes={axes!r}.") from None
        a_axes = [a_axes] if isinstance(a_axes, (int, np.integer)) else list(a_axes)
        b_axes = [b_axes] if isinstance(b_axes, (int, np.integer)) else list(b_axes)
        if len(a_axes) != len(b_axes):
            raise ValueError(f"ops.{name}: axes must pair as many axes of x1 as of x2; "
                             f"received axes={axes!r}.")
        for ax, nd, which in ((a_axes, a.ndim, "x1"), (b_axes, b.ndim, "x2")):
            if any(not -nd <= int(i) < nd for i in ax) or \
                    len({int(i) % nd for i in ax}) != len(ax):
                raise ValueError(f"ops.{name}: axes {ax} of {which} are out of range or "
                                 f"repeated for a tensor of rank {nd}; received axes={axes!r}.")
        a_axes = [int(i) % a.ndim for i in a_axes]
        b_axes = [int(i) % b.ndim for i in b_axes]
    if [a.shape[i] for i in a_axes] != [b.shape[i] for i in b_axes]:
        raise ValueError(f"ops.{name}: shapes {a.shape} and {b.shape} do not fit: axes "
                         f"{a_axes} of x1 have sizes {[a.shape[i] for i in a_axes]}, axes "
                         f"{b_axes} of x2 have sizes {[b.shape[i] for i in b_axes]}.")
    a_free = [i for i in range(a.ndim) if i not in a_axes]
    b_free = [i for i in range(b.ndim) if i not in b_axes]
    m = math.prod(a.shape[i] for i in a_free)
    n = math.prod(b.shape[i] for i in b_free)
    k = math.prod(a.shape[i] for i in a_axes)
    # As numpy does it: one (m, k) @ (k, n) product, here on the GEMM for floats.
    a_perm, b_perm = a_free + a_axes, b_axes + b_free
    a2 = a.transpose(a_perm).reshape(m, k)
    b2 = b.transpose(b_perm).reshape(k, n)
    out_shape = tuple(a.shape[i] for i in a_free) + tuple(b.shape[i] for i in b_free)
    out = _fix_dtype(_mm(a2, b2), (a, b)).reshape(out_shape)

    def backward(g, needs):
        g2 = _as_dtype(g, out.dtype).reshape(m, n)
        da = db = None
        if needs[0]:
            da = _mm(g2, b2, trans_b=True).reshape([a.shape[i] for i in a_perm])
            da = da.transpose(np.argsort(a_perm))
        if needs[1]:
            db = _mm(a2, g2, trans_a=True).reshape([b.shape[i] for i in b_perm])
            db = db.transpose(np.argsort(b_perm))
        return da, db
    return record(name, out, (x1, x2), backward)


def outer(x1, x2):
    """Outer product of two tensors (flattened first, as ``numpy.outer``).

    Args:
        x1: first tensor, flattened to length ``m``.
        x2: second tensor, flattened to length ``n``.

    Returns:
        A tensor of shape ``(m, n)``.
    """
    a, b = np.asarray(value_of(x1)), np.asarray(value_of(x2))
    a1, b1 = a.reshape(-1), b.reshape(-1)
    out = _fix_dtype(np.outer(a1, b1), (a, b))

    def backward(g, needs):
        return (np.dot(g, b1).reshape(a.shape) if needs[0] else None,
                np.dot(a1, g).reshape(b.shape) if needs[1] else None)
    return record("outer", out, (x1, x2), backward)


# ---- einsum -------------------------------------------------------------------------------

def einsum(subscripts, *operands):
    """Einstein summation over the operands, as ``numpy.einsum``.

    Supports numpy's subscripts: explicit (``'bij,bjk->bik'``) and implicit (``'ij,jk'``)
    output, ``...`` for leading broadcast axes, indices repeated within an operand
    (diagonals, ``'ii->'``), indices summed away, and size-1 axes broadcast against the
    same index elsewhere. Two-operand contractions run as one (batched) matrix product.

    Args:
        subscripts: the subscripts string, letters ``a-z``/``A-Z``, ``,`` between
            operands, optional ``->`` and output letters.
        *operands: the tensors, one per comma-separated term.

    Returns:
        The result, a tensor.
    """
    if not isinstance(subscripts, str):
        raise TypeError(f"ops.einsum takes the subscripts string first; received "
                        f"{type(subscripts).__name__}.")
    if not operands:
        raise ValueError(f"ops.einsum: subscripts '{subscripts}' given without operands.")
    arrays = [np.asarray(value_of(x)) for x in operands]
    terms, out_term, sizes = _parse_einsum(subscripts, tuple(a.shape for a in arrays))
    prepared = [_einsum_operand(t, a, sizes) for t, a in zip(terms, arrays)]
    letters = [p[0] for p in prepared]
    views = [p[1] for p in prepared]
    out = _fix_dtype(np.asarray(_contract(list(zip(letters, views)), out_term)), arrays)

    def backward(g, needs):
        grads = []
        for i, need in enumerate(needs):
            if not need:
                grads.append(None)
                continue
            # d out / d operand i: g contracted with every other operand onto operand i's
            # indices; the ones it summed away alone are broadcast back.
            others = [(letters[j], views[j]) for j in range(len(views)) if j != i]
            available = set(out_term).union(*(t for t, _ in others))
            own = letters[i]
            target = "".join(c for c in own if c in available)
            r = np.asarray(_contract([(out_term, g)] + others, target))
            if target != own:
                r = r.reshape([sizes[c] if c in target else 1 for c in own])
                r = np.broadcast_to(r, [sizes[c] for c in own])
            grads.append(_einsum_operand_grad(terms[i], arrays[i].shape, r, sizes))
        return tuple(grads)
    return record("einsum", out, tuple(operands), backward)


@functools.lru_cache(maxsize=512)
def _parse_einsum(subscripts, shapes):
    """Explicit subscripts (ellipses replaced by unused letters) and each index's size.
    Cached: a training step calls einsum with the same subscripts and shapes each time.
    (The caller must not modify the returned dict.)"""
    spec = subscripts.replace(" ", "")
    if spec.count("->") > 1:
        raise ValueError(f"ops.einsum: subscripts '{subscripts}' have more than one '->'.")
    inputs, arrow, out = spec.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"ops.einsum: subscripts '{subscripts}' name {len(terms)} "
                         f"operand(s); received {len(shapes)}.")
    for term in terms + ([out] if arrow else []):
        if term.count("...") > 1 or \
                any(c not in string.ascii_letters for c in term.replace("...", "")):
            raise ValueError(f"ops.einsum: invalid term '{term}' in subscripts "
                             f"'{subscripts}': use letters a-z, A-Z and at most one '...'.")
    ellipsis_ndim = 0
    for i, (term, shape) in enumerate(zip(terms, shapes)):
        named = len(term.replace("...", ""))
        if len(shape) < named or ("..." not in term and len(shape) != named):
            raise ValueError(f"ops.einsum: operand {i} has shape {shape} ({len(shape)} axes); "
                             f"its subscripts '{term}' name {named} axes.")
        if "..." in term:
            ellipsis_ndim = max(ellipsis_ndim, len(shape) - named)
    used = set(spec)
    spare = [c for c in string.ascii_letters if c not in used]
    if ellipsis_ndim > len(spare):
        raise ValueError(f"ops.einsum: too many axes under '...' in '{subscripts}'.")
    ell = "".join(spare[:ellipsis_ndim])
    explicit = []
    for term, shape in zip(terms, shapes):
        if "..." in term:
            n = len(shape) - len(term.replace("...", ""))
            term = term.replace("...", ell[ellipsis_ndim - n:])   # right-aligned, as numpy
        explicit.append(term)
    if arrow:
        if "..." in out:
            out = out.replace("...", ell)
        elif ellipsis_ndim:
            raise ValueError(f"ops.einsum: subscripts '{subscripts}' broadcast axes under "
                             f"'...' but the output has no '...' to keep them.")
        repeated = [c for c, n in Counter(out).items() if n > 1]
        missing = [c for c in out if c not in "".join(explicit)]
        if repeated or missing:
            raise ValueError(f"ops.einsum: output '{out}' of '{subscripts}' repeats "
                             f"{repeated} or names indices no operand has: {missing}.")
    else:
        # numpy's implicit output: the broadcast axes, then the indices that occur once,
        # in alphabetical (ASCII) order.
        counts = Counter("".join(terms).replace(".", ""))
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1))
    sizes, where = {}, {}
    for i, (term, shape) in enumerate(zip(explicit, shapes)):
        for c, n in zip(term, shape):
            if n != 1 and sizes.get(c, 1) not in (1, n):
                raise ValueError(f"ops.einsum: index '{c}' of '{subscripts}' has size "
                                 f"{sizes[c]} in operand {where[c]} and {n} in operand {i} "
                                 f"(shapes {shapes[where[c]]} and {shape}).")
            if n != 1 or c not in sizes:
                sizes[c], where[c] = n, i
    return tuple(explicit), out, sizes


def _unique(term):
    return "".join(dict.fromkeys(term))


def _einsum_operand(term, a, sizes):
    """``a`` broadcast to its indices' full sizes and reduced to one axis per index (a
    diagonal view where an index repeats); no copies. Returns (unique letters, view)."""
    full = tuple(sizes[c] for c in term)
    if a.shape != full:
        a = np.broadcast_to(a, full)
    own = _unique(term)
    if own == term:
        return own, a
    return own, _diagonal_view(a, term, own)


def _diagonal_view(a, term, own):
    strides = [sum(a.strides[i] for i, c in enumerate(term) if c == u) for u in own]
    shape = [a.shape[term.index(u)] for u in own]
    return np.lib.stride_tricks.as_strided(a, shape, strides,
                                           writeable=a.flags.writeable)


def _einsum_operand_grad(term, shape, r, sizes):
    """The gradient ``r`` (one axis per unique index) back in the operand's layout:
    scattered onto the diagonal where an index repeats, summed where it was broadcast."""
    own = _unique(term)
    full = tuple(sizes[c] for c in term)
    if own != term:
        grad = np.zeros(full, r.dtype)
        _diagonal_view(grad, term, own)[...] = r
        r = grad
    if tuple(shape) != full:
        r = unbroadcast(r, tuple(shape))
    return r


def _contract(pairs, out):
    """Einsum of ``pairs`` of (unique letters, array) onto ``out``."""
    if len(pairs) == 1:
        term, a = pairs[0]
        return np.einsum(f"{term}->{out}", a)
    if len(pairs) == 2:
        return _contract2(*pairs[0], *pairs[1], out)
    spec = ",".join(t for t, _ in pairs) + "->" + out
    return np.einsum(spec, *(a for _, a in pairs), optimize="greedy")


def _contract2(sa, a, sb, b, out):
    """Two-operand einsum as a (batched) matrix product (see :func:`_plan2`)."""
    plan = _plan2(sa, a.shape, sb, b.shape, out)
    if plan[0] is not None:
        spec, drop_a, drop_b = plan
        if drop_a:
            a = a.sum(axis=drop_a)
        if drop_b:
            b = b.sum(axis=drop_b)
        return np.einsum(spec, a, b)
    _, drop_a, drop_b, perm_a, shape_a, perm_b, shape_b, shape_r, perm_r = plan
    if drop_a:
        a = a.sum(axis=drop_a)
    if drop_b:
        b = b.sum(axis=drop_b)
    r = _mm(a.transpose(perm_a).reshape(shape_a), b.transpose(perm_b).reshape(shape_b))
    return r.reshape(shape_r).transpose(perm_r)


@functools.lru_cache(maxsize=1024)
def _plan2(sa, shape_a, sb, shape_b, out):
    """How :func:`_contract2` computes: indices of both operands and the output are batch
    axes, those of both but not the output are contracted (``k``), the others are the rows
    (``m``, from ``a``) and columns (``n``, from ``b``) of the product; indices of one
    operand only that the output lacks are summed first. Sizes agree (the operands come
    broadcast). Cached, as the parse: the same contraction runs every step."""
    drop_a = tuple(i for i, c in enumerate(sa) if c not in sb and c not in out)
    drop_b = tuple(i for i, c in enumerate(sb) if c not in sa and c not in out)
    size = dict(zip(sa, shape_a))
    size.update(zip(sb, shape_b))
    sa = "".join(c for c in sa if c in sb or c in out)
    sb = "".join(c for c in sb if c in sa or c in out)
    batch = [c for c in sa if c in sb and c in out]
    k_idx = [c for c in sa if c in sb and c not in out]
    m_idx = [c for c in sa if c not in sb]
    n_idx = [c for c in sb if c not in sa]
    if not k_idx or not (m_idx or n_idx):
        # No contraction (an outer or elementwise product) or a batched inner product:
        # numpy's own einsum loop beats a product of 1-wide matrices.
        return f"{sa},{sb}->{out}", drop_a, drop_b
    bs = [size[c] for c in batch]
    m = math.prod(size[c] for c in m_idx)
    n = math.prod(size[c] for c in n_idx)
    k = math.prod(size[c] for c in k_idx)
    have = batch + m_idx + n_idx
    return (None, drop_a, drop_b,
            tuple(sa.index(c) for c in batch + m_idx + k_idx), tuple(bs + [m, k]),
            tuple(sb.index(c) for c in batch + k_idx + n_idx), tuple(bs + [k, n]),
            tuple(bs + [size[c] for c in m_idx + n_idx]), tuple(have.index(c) for c in out))


# ---- transpose ----------------------------------------------------------------------------

def transpose(x, axes=None):
    """Permutes the axes of a tensor.

    Args:
        x: the tensor.
        axes: a permutation of ``range(x.ndim)`` (negative axes allowed); None reverses the
            axes.

    Returns:
        ``x`` with its axes permuted (a view, no copy).
    """
    a = np.asarray(value_of(x))
    inverse = None
    if axes is not None:
        axes = tuple(int(i) for i in axes)
        if len(axes) != a.ndim or any(not -a.ndim <= i < a.ndim for i in axes) or \
                len({i % a.ndim for i in axes}) != a.ndim:
            raise ValueError(f"ops.transpose: axes={axes} is not a permutation of the "
                             f"{a.ndim} axes of a tensor of shape {a.shape}.")
        axes = tuple(i % a.ndim for i in axes)
        inverse = tuple(np.argsort(axes))
    out = np.transpose(a, axes)
    return record("transpose", out, (x,), lambda g, needs: (np.transpose(g, inverse),))
