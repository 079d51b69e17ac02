"""Plain-numpy recurrent layers (SimpleRNN, LSTM, GRU), one time step at a time: the
trusted side of the recurrent kernel tests, and the layers' path for what the compiled
kernel does not fuse (other activations, GRU with reset_after=False).

Semantics are Keras 3's (keras/src/layers/rnn/*.py and backend rnn):
    LSTM (gates i, f, c, o): z = x W + h U + b; c' = f c + i g; h' = o act(c')
    GRU  (gates z, r, h): reset_after=True: hh = act(x W_h + b_x + r (h U_h + b_h));
         reset_after=False: hh = act(x W_h + (r h) U_h + b); h' = z h + (1 - z) hh
    SimpleRNN: h' = act(x W + h U + b)
A masked step keeps the states and outputs the previous output (zeros before the first
unmasked step), or zeros with ``zero_output_for_mask``; go_backwards walks time from the
end and returns the outputs in that (step) order.

Activations are (f, df) pairs: ``f(z)`` and ``df(z, y)`` = f'(z) given y = f(z).
"""
import numpy as np


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


TANH = (np.tanh, lambda z, y: 1 - y * y)
SIGMOID = (_sigmoid, lambda z, y: y * (1 - y))


def rnn_forward(cell, x, kernel, recurrent_kernel, bias, h0, c0=None, mask=None, rmask=None,
                go_backwards=False, activation=TANH, recurrent_activation=SIGMOID,
                zero_output_for_mask=False, reset_after=True):
    """Run a recurrent layer over the batch ``x`` (N, T, F).

    Args:
        cell: 'simple_rnn', 'lstm' or 'gru'.
        kernel, recurrent_kernel, bias: Keras layouts ((F, kU), (U, kU), (kU,) or, for GRU
            with reset_after, (2, kU)); bias may be None.
        h0, c0: initial states (N, U) (c0 for LSTM only).
        mask: None or bool (N, T). rmask: None or (N, U) recurrent dropout multipliers.
    Returns:
        (outputs (N, T, U) in step order, last output (N, U), final h, final c or None,
        cache for :func:`rnn_backward`).
    """
    n, steps, _ = x.shape
    units = recurrent_kernel.shape[0]
    f, _ = activation
    rf, _ = recurrent_activation
    b_in = b_rec = 0.0
    if bias is not None:
        b_in, b_rec = (bias[0], bias[1]) if bias.ndim == 2 else (bias, 0.0)
    h, c = h0.copy(), (None if c0 is None else c0.copy())
    outputs = np.zeros((n, steps, units), x.dtype)
    prev_out = np.zeros((n, units), x.dtype)
    records = []
    for s in range(steps):
        t = steps - 1 - s if go_backwards else s
        xt = x[:, t]
        hin = h if rmask is None else h * rmask
        rec = {"t": t, "h": h, "c": c, "hin": hin}
        if cell == "lstm":
            z = xt @ kernel + hin @ recurrent_kernel + b_in
            zi, zf, zc, zo = np.split(z, 4, axis=1)
            i, fg, g, o = rf(zi), rf(zf), f(zc), rf(zo)
            c_new = fg * c + i * g
            ac = f(c_new)
            h_new = o * ac
            rec.update(z=(zi, zf, zc, zo), gates=(i, fg, g, o), c_new=c_new, ac=ac)
        elif cell == "gru":
            xz = xt @ kernel + b_in
            xz_z, xz_r, xz_h = np.split(xz, 3, axis=1)
            u_zr = recurrent_kernel[:, :2 * units]
            u_h = recurrent_kernel[:, 2 * units:]
            b_zr = b_rec[:2 * units] if np.ndim(b_rec) else 0.0
            b_h = b_rec[2 * units:] if np.ndim(b_rec) else 0.0
            rzr = hin @ u_zr + b_zr
            pre_z, pre_r = xz_z + rzr[:, :units], xz_r + rzr[:, units:]
            zg, r = rf(pre_z), rf(pre_r)
            if reset_after:
                rh = hin @ u_h + b_h
                pre_h = xz_h + r * rh
            else:
                rh = None
                pre_h = xz_h + (r * hin) @ u_h
            hh = f(pre_h)
            h_new = zg * h + (1 - zg) * hh
            rec.update(pre=(pre_z, pre_r, pre_h), gates=(zg, r, hh), rh=rh)
            c_new = None
        else:
            z = xt @ kernel + hin @ recurrent_kernel + b_in
            h_new = f(z)
            rec.update(z=z, y=h_new)
            c_new = None
        on = np.ones((n, 1), bool) if mask is None else mask[:, t:t + 1]
        rec["on"] = on
        h = np.where(on, h_new, h)
        if c is not None:
            c = np.where(on, c_new, c)
        out = np.where(on, h_new, 0.0 if zero_output_for_mask else prev_out)
        outputs[:, s] = out
        prev_out = out
        records.append(rec)
    cache = dict(cell=cell, x=x, kernel=kernel, recurrent_kernel=recurrent_kernel,
                 bias=bias, rmask=rmask, records=records, activation=activation,
                 recurrent_activation=recurrent_activation, reset_after=reset_after,
                 zero_output_for_mask=zero_output_for_mask, lstm=c0 is not None)
    return outputs, prev_out.copy(), h, c, cache


def rnn_backward(cache, d_outputs=None, d_last=None, dh=None, dc=None):
    """Gradients of a :func:`rnn_forward` call.

    Args:
        d_outputs: None or (N, T, U), the gradient of the outputs (step order).
        d_last: None or (N, U), the gradient of the last output.
        dh, dc: None or (N, U), gradients of the final states.
    Returns:
        (dx, d_kernel, d_recurrent_kernel, d_bias (None without bias), dh0, dc0 (None for
        cells without c)).
    """
    cell, x = cache["cell"], cache["x"]
    kernel, recurrent_kernel, bias = cache["kernel"], cache["recurrent_kernel"], cache["bias"]
    rmask, records = cache["rmask"], cache["records"]
    _, df = cache["activation"]
    _, rdf = cache["recurrent_activation"]
    n, steps, _ = x.shape
    units = recurrent_kernel.shape[0]
    dx = np.zeros_like(x)
    dW = np.zeros_like(kernel)
    dU = np.zeros_like(recurrent_kernel)
    db_in = np.zeros(kernel.shape[1], x.dtype)
    db_rec = np.zeros(kernel.shape[1], x.dtype)
    dh = np.zeros((n, units), x.dtype) if dh is None else dh.copy()
    dc = (np.zeros((n, units), x.dtype) if dc is None else dc.copy()) if cache["lstm"] else None
    carry = np.zeros((n, units), x.dtype)
    for s in range(steps - 1, -1, -1):
        rec = records[s]
        t, on = rec["t"], rec["on"]
        gy = np.zeros((n, units), x.dtype)
        if d_outputs is not None:
            gy = gy + d_outputs[:, s]
        if d_last is not None and s == steps - 1:
            gy = gy + d_last
        # A masked row: its output gradient flows to the previous output (none with
        # zero_output_for_mask); its states pass through.
        masked_carry = np.zeros_like(carry) if cache["zero_output_for_mask"] else carry + gy
        dH = np.where(on, dh + gy + carry, 0.0)
        carry = np.where(on, 0.0, masked_carry)
        xt = x[:, t]
        if cell == "lstm":
            i, fg, g, o = rec["gates"]
            zi, zf, zc, zo = rec["z"]
            ac = rec["ac"]
            dct = np.where(on, dc, 0.0) + dH * o * df(rec["c_new"], ac)
            dz = np.concatenate([dct * g * rdf(zi, i), dct * rec["c"] * rdf(zf, fg),
                                 dct * i * df(zc, g), dH * ac * rdf(zo, o)], axis=1)
            dc = np.where(on, dct * fg, dc)
            dhin = dz @ recurrent_kernel.T
            dh_direct = 0.0
            dU += rec["hin"].T @ dz
            dxz, db_part = dz, dz
        elif cell == "gru":
            zg, r, hh = rec["gates"]
            pre_z, pre_r, pre_h = rec["pre"]
            u_zr = recurrent_kernel[:, :2 * units]
            u_h = recurrent_kernel[:, 2 * units:]
            hin = rec["hin"]
            dpre_h = dH * (1 - zg) * df(pre_h, hh)
            dpre_z = dH * (rec["h"] - hh) * rdf(pre_z, zg)
            if cache["reset_after"]:
                dpre_r = dpre_h * rec["rh"] * rdf(pre_r, r)
                drh = dpre_h * r
                dhin = np.concatenate([dpre_z, dpre_r], axis=1) @ u_zr.T + drh @ u_h.T
                dU[:, :2 * units] += hin.T @ np.concatenate([dpre_z, dpre_r], axis=1)
                dU[:, 2 * units:] += hin.T @ drh
                db_rec += np.concatenate([dpre_z, dpre_r, drh], axis=1).sum(axis=0)
            else:
                drh_in = dpre_h @ u_h.T           # gradient of r * hin
                dpre_r = drh_in * hin * rdf(pre_r, r)
                dhin = np.concatenate([dpre_z, dpre_r], axis=1) @ u_zr.T + drh_in * r
                dU[:, :2 * units] += hin.T @ np.concatenate([dpre_z, dpre_r], axis=1)
                dU[:, 2 * units:] += (r * hin).T @ dpre_h
            dh_direct = dH * zg
            dxz = np.concatenate([dpre_z, dpre_r, dpre_h], axis=1)
            db_part = dxz
        else:
            dz = dH * df(rec["z"], rec["y"])
            dhin = dz @ recurrent_kernel.T
            dh_direct = 0.0
            dU += rec["hin"].T @ dz
            dxz, db_part = dz, dz
        if rmask is not None:
            dhin = dhin * rmask
        dh = np.where(on, dh_direct + dhin, dh)
        dW += xt.T @ dxz
        db_in += db_part.sum(axis=0)
        dx[:, t] = dxz @ kernel.T
    if bias is None:
        db = None
    elif bias.ndim == 2:
        db = np.stack([db_in, db_rec])
    else:
        db = db_in
    return dx, dW, dU, db, dh, dc
