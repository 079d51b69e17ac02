"""The bad-input probe of issue 11: runs API calls a careless user (or an attacker) makes and
says how each one ends; the loader's own probe is tests/loader_probe.py.

Each case is a few lines of Python run in a worker process, with a time bound (a case not
done in time is a hang: the worker is killed and a new one goes on with the next case).
Each ends as one of OUTCOMES:

    clean error    the call raised ValueError, TypeError or RuntimeError (what minidl's public
                   entry points raise for bad input), when an error was expected
    correct        no error was expected, and the result checks out
    crash          another exception (AttributeError, IndexError, ZeroDivisionError, ...), or
                   the worker died (a segfault, or libgomp ending the process)
    hang           not done within the time bound
    wrong result   an error was expected and none came (the input was accepted), or the
                   result is not the one the call must give (e.g. training changed by a
                   predict in another thread)

    python tests/input_probe.py                      # this tree
    python tests/input_probe.py --minidl /tmp/base   # another checkout, built in place
"""
import argparse
import json
import os
import subprocess
import sys
import time

OUTCOMES = ("clean error", "correct", "crash", "hang", "wrong result")
TIME_BOUND = 20.0
ERROR, OK, EITHER = "error", "ok", "either"   # EITHER: a right result or a clean refusal

# Run before every case: a small model and data.
PRELUDE = """
import threading
import numpy as np
import minidl
from minidl.layers import (BatchNormalization, Conv2D, Dense, Dropout, Flatten, Input,
                           MaxPooling2D)
from minidl.models import Sequential
rng = np.random.default_rng(0)
x = rng.standard_normal((64, 8)).astype(np.float32)
y = rng.integers(0, 3, 64)

def model(seed=1, extra=()):
    minidl.utils.set_random_seed(seed)
    m = Sequential([Input((8,)), Dense(16, activation="relu"), *extra,
                    Dense(3, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy")
    return m

def misaligned(shape, dtype=np.float32):
    a = np.empty(int(np.prod(shape)) * np.dtype(dtype).itemsize + 1, np.uint8)
    out = np.frombuffer(a.data, dtype=dtype, count=int(np.prod(shape)), offset=1)
    out = out.reshape(shape)
    out[...] = rng.standard_normal(shape)
    return out
"""


def _cases():
    """(family, name, code, expectation): ERROR (a clean error must come), OK (the code
    must run; it may assert what a right result is)."""
    cases = []

    def add(family, name, code, expect):
        cases.append((family, name, code, expect))

    # ---- threads ----
    for n in ("65536", "10 ** 6", "2 ** 31", "-(10 ** 6)", "0", "2.5", "True", "'4'", "None",
              "float('nan')"):
        add("threads", f"set_num_threads({n}) then a GEMM",
            f"minidl.set_num_threads({n})\n"
            "a = np.ones((512, 512), np.float32); minidl.ops.gemm(a, a)", ERROR)
    add("threads", "set_num_threads(4 * processors + 1)",
        "import os\nminidl.set_num_threads(4 * os.cpu_count() + 1)", ERROR)
    for value in ("65536", "100000", "abc", "-3"):
        add("threads", f"OMP_NUM_THREADS={value} then a GEMM in a new process",
            "import subprocess, sys, os\n"
            f"env = dict(os.environ, OMP_NUM_THREADS='{value}')\n"
            "r = subprocess.run([sys.executable, '-c', 'import numpy as np, minidl; "
            "a = np.ones((512, 512), np.float32); minidl.ops.gemm(a, a); print(\"ok\")'], "
            "env=env, capture_output=True, text=True, timeout=60)\n"
            "assert r.returncode == 0 and 'ok' in r.stdout, (r.returncode, r.stderr[-300:])",
            OK)

    # ---- arrays whose data is not aligned to their element size ----
    add("alignment", "gemm with a misaligned a",
        "a = misaligned((64, 32)); b = np.ones((32, 16), np.float32)\n"
        "np.testing.assert_allclose(minidl.ops.gemm(a, b), a @ b, rtol=1e-5)", OK)
    add("alignment", "gemm with a misaligned b",
        "b = misaligned((32, 16)); a = np.ones((64, 32), np.float32)\n"
        "np.testing.assert_allclose(minidl.ops.gemm(a, b), a @ b, rtol=1e-5)", OK)
    add("alignment", "gemm into a misaligned out",
        "a = np.ones((8, 8), np.float32); minidl.ops.gemm(a, a, misaligned((8, 8)))", ERROR)
    add("alignment", "predict on misaligned x",
        "m = model(); xm = misaligned((64, 8)); xm[...] = x\n"
        "np.testing.assert_array_equal(m.predict(xm, verbose=0), m.predict(x, verbose=0))", OK)
    add("alignment", "model(x) on misaligned x",
        "m = model(); xm = misaligned((5, 8)); xm[...] = x[:5]\n"
        "np.testing.assert_array_equal(m(xm), m(x[:5]))", OK)
    add("alignment", "fit on misaligned x",
        "a, b = model(), model(); xm = misaligned((64, 8)); xm[...] = x\n"
        "a.fit(x, y, verbose=0); b.fit(xm, y, verbose=0)\n"
        "assert all(np.array_equal(p, q) for p, q in zip(a.get_weights(), b.get_weights()))",
        OK)
    add("alignment", "a loss on misaligned predictions",
        "p = misaligned((10, 3)); p[...] = np.abs(p) + 0.1\n"
        "loss = minidl.losses.MeanSquaredError()\n"
        "assert np.isclose(loss(np.zeros((10, 3), np.float32), p), np.mean(p.astype(np.float64) ** 2), rtol=1e-5)",
        EITHER)
    add("alignment", "an activation on a misaligned array",
        "a = misaligned((10, 7))\n"
        "np.testing.assert_allclose(minidl.activations.relu(a), np.maximum(a, 0))", EITHER)
    add("alignment", "a Dense layer called on a misaligned array",
        "layer = Dense(4); a = misaligned((6, 5))\n"
        "np.testing.assert_allclose(layer(a), layer(np.ascontiguousarray(a.copy())), rtol=1e-6)",
        OK)

    # ---- zero-size and degenerate shapes ----
    for call in ("m.fit(z, yz, verbose=0)", "m.predict(z, verbose=0)", "m(z)",
                 "m.evaluate(z, yz, verbose=0)", "m.train_on_batch(z, yz)",
                 "Dense(3)(z)", "m.build((None, 0))"):
        add("zero-size", f"an (n, 0) input to an unbuilt model: {call}",
            "m = Sequential([Dense(3, activation='softmax')])\n"
            "m.compile('adam', 'sparse_categorical_crossentropy')\n"
            f"z = np.zeros((4, 0), np.float32); yz = np.zeros(4, int)\n{call}", ERROR)
    add("zero-size", "fit on an empty x", "model().fit(x[:0], y[:0], verbose=0)", ERROR)
    add("zero-size", "Input((0,))", "Input((0,))", ERROR)
    add("zero-size", "Dense(0)", "Dense(0)", ERROR)
    add("zero-size", "Conv2D(0, 3)", "Conv2D(0, 3)", ERROR)
    add("zero-size", "a 3x3 convolution on 2x2 images",
        "m = Sequential([Input((2, 2, 1)), Conv2D(4, 3)])", ERROR)

    # ---- calls from several threads ----
    add("threads-calls", "predict from a second thread during fit (BatchNormalization)",
        "def run(spam):\n"
        "    m = model(extra=[BatchNormalization(), Dropout(0.3)])\n"
        "    stop = threading.Event()\n"
        "    def loop():\n"
        "        while not stop.is_set():\n"
        "            m.predict(x[:7], verbose=0)\n"
        "    t = threading.Thread(target=loop)\n"
        "    if spam: t.start()\n"
        "    h = m.fit(x, y, epochs=3, batch_size=8, verbose=0, shuffle=False)\n"
        "    stop.set()\n"
        "    if spam: t.join()\n"
        "    return m.get_weights(), h.history\n"
        "w0, h0 = run(False)\n"
        "for trial in range(5):\n"
        "    w, h = run(True)\n"
        "    assert h == h0 and all(np.array_equal(a, b) for a, b in zip(w, w0)), trial",
        OK)
    add("threads-calls", "concurrent predicts equal sequential ones",
        "m = model(extra=[BatchNormalization()])\n"
        "ref = m.predict(x, batch_size=5, verbose=0)\n"
        "out = []\n"
        "ts = [threading.Thread(target=lambda: out.append(m.predict(x, batch_size=5, verbose=0))) for _ in range(4)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "assert all(np.array_equal(o, ref) for o in out)", OK)
    add("threads-calls", "two models fit at once reproduce their sequential runs",
        "def pair(concurrent):\n"
        "    minidl.utils.set_random_seed(5)\n"
        "    a, b = model(1, [Dropout(0.5)]), model(2, [Dropout(0.5)])\n"
        "    minidl.utils.set_random_seed(5)\n"
        "    fits = [lambda: a.fit(x, y, epochs=2, batch_size=8, verbose=0),\n"
        "            lambda: b.fit(x[::-1], y[::-1], epochs=2, batch_size=8, verbose=0)]\n"
        "    if concurrent:\n"
        "        ts = [threading.Thread(target=f) for f in fits]\n"
        "        [t.start() for t in ts]; [t.join() for t in ts]\n"
        "    else:\n"
        "        [f() for f in fits]\n"
        "    return a.get_weights() + b.get_weights()\n"
        "ref = pair(False)\n"
        "for trial in range(3):\n"
        "    assert all(np.array_equal(p, q) for p, q in zip(pair(True), ref)), trial", OK)
    add("threads-calls", "load_weights beside predict",
        "import tempfile, os\n"
        "m = model(); first = m.get_weights(); second = [w * 0.5 for w in first]\n"
        "m.set_weights(second); p = os.path.join(tempfile.mkdtemp(), 'w.minidl'); m.save_weights(p)\n"
        "m.set_weights(first); e1 = m.predict(x, verbose=0)\n"
        "m.set_weights(second); e2 = m.predict(x, verbose=0)\n"
        "stop = threading.Event(); seen = []\n"
        "def loop():\n"
        "    while not stop.is_set(): seen.append(m.predict(x, batch_size=4, verbose=0))\n"
        "t = threading.Thread(target=loop); t.start()\n"
        "for _ in range(20): m.set_weights(first); m.load_weights(p)\n"
        "stop.set(); t.join()\n"
        "assert all(np.array_equal(s, e1) or np.array_equal(s, e2) for s in seen)", OK)

    # ---- layer and model arguments ----
    for args in ("units=-1", "units=2.5", "units=True", "units='3'", "units=None",
                 "8, activation='nope'", "8, kernel_initializer='nope'",
                 "8, kernel_regularizer='nope'", "8, trainable='no'", "8, dtype='int8'",
                 "8, name=''", "8, name=3", "8, use_bias='yes'"):
        add("arguments", f"Dense({args})", f"Dense({args})", ERROR)
    for args in ("4, 0", "4, (3, 3, 3)", "4, 3, strides=0", "4, 3, padding='full'",
                 "4, 3, dilation_rate=-1", "4, 3, groups=2", "4, 3, data_format='nchw'"):
        add("arguments", f"Conv2D({args})", f"Conv2D({args})", ERROR)
    for args in ("1.5", "-0.1", "'a'", "0.5, noise_shape='x'", "0.5, seed=-1",
                 "0.5, seed=2.5"):
        add("arguments", f"Dropout({args})", f"Dropout({args})", ERROR)
    for args in ("momentum=2", "epsilon=0", "axis='c'", "center='no'"):
        add("arguments", f"BatchNormalization({args})", f"BatchNormalization({args})", ERROR)
    for call in ("m.fit(x, y, batch_size=0, verbose=0)", "m.fit(x, y, batch_size=-1, verbose=0)",
                 "m.fit(x, y, epochs=-1, verbose=0)", "m.fit(x, y, verbose=5)",
                 "m.fit(x, y, validation_split=1.5, verbose=0)",
                 "m.fit(x, y[:10], verbose=0)", "m.fit(x, y + 10, verbose=0)",
                 "m.fit(x, y.astype(float) + 0.5, verbose=0)",
                 "m.fit(x * np.nan, y, verbose=0)", "m.fit(x.astype(str), y, verbose=0)",
                 "m.fit(x, y, class_weight={0: 1}, verbose=0)",
                 "m.fit(x, y, sample_weight=np.ones(3), verbose=0)",
                 "m.fit(x, y, validation_data=(x,), verbose=0)",
                 "m.fit(x[:, :5], y, verbose=0)", "m.predict(x[:, None], verbose=0)",
                 "m.evaluate(x, None, verbose=0)", "m.fit(x, y, steps_per_epoch=0, verbose=0)",
                 "m.fit(x, y, validation_freq=0, verbose=0)", "m.predict(x, batch_size=0)",
                 "m.fit(x, y, initial_epoch=-2, verbose=0)", "m.fit(None, y, verbose=0)"):
        add("fit-arguments", call, f"m = model()\n{call}", ERROR)
    for call in ("Sequential().fit(x, y, verbose=0)", "Sequential([Dense(3)]).fit(x, y)",
                 "model().compile(optimizer='nope')", "model().compile(loss='nope')",
                 "model().compile(metrics='accuracy')",
                 "Sequential([Input((8,)), Dense(3)]).set_weights([np.ones(1)])",
                 "Sequential([Input((8,)), Dense(3)]).set_weights([np.ones((8, 3)), np.ones(2)])",
                 "Sequential([Input((8,)), Dense(3)]).set_weights([np.full((8, 3), np.nan), np.ones(3)])",
                 "Sequential([Dense(3), 'relu'])", "Sequential([Input((8,)), Input((8,))])"):
        add("model-arguments", call, call, ERROR)

    # ---- ops ----
    for call in ("minidl.ops.gemm(np.ones((3, 4), np.float32), np.ones((5, 2), np.float32))",
                 "minidl.ops.gemm(np.ones((3, 4), np.float32), np.ones((4, 2)))",
                 "minidl.ops.gemm(np.ones((3, 4), np.int32), np.ones((4, 2), np.int32))",
                 "minidl.ops.gemm(np.ones(3, np.float32), np.ones(3, np.float32))",
                 "minidl.ops.gemm(np.ones((3, 4), np.float32), np.ones((4, 2), np.float32), "
                 "np.ones((2, 2), np.float32))",
                 "minidl.ops.gemm(np.ones((3, 4), np.float32), np.ones((4, 2), np.float32), "
                 "np.ones((3, 2), np.float32), alpha='a')",
                 "minidl.ops.gemm('a', 'b')"):
        add("ops", call, call, ERROR)
    add("ops", "gemm into a view with negative strides",
        "a, b = rng.random((3, 4)).astype(np.float32), rng.random((4, 2)).astype(np.float32)\n"
        "out = np.zeros((3, 2), np.float32)[::-1]\n"
        "minidl.ops.gemm(a, b, out)\n"
        "np.testing.assert_allclose(out, a @ b, rtol=1e-6)", OK)
    return cases


# ---- the worker ----

def _worker():
    """Runs the cases whose JSON lines come on stdin; one JSON result line per case."""
    prelude = compile(PRELUDE, "<prelude>", "exec")
    for line in sys.stdin:
        family, name, code, expect = json.loads(line)
        scope = {}
        try:
            exec(prelude, scope)
            exec(compile(code, f"<{name}>", "exec"), scope)
        except (ValueError, TypeError, RuntimeError) as error:
            outcome = "clean error" if expect in (ERROR, EITHER) else "wrong result"
            detail = f"{type(error).__name__}: {error}"
        except AssertionError as error:
            outcome, detail = "wrong result", f"AssertionError: {error}"
        except BaseException as error:   # noqa: BLE001 - what the probe is for
            outcome, detail = "crash", f"{type(error).__name__}: {error}"
        else:
            outcome = "correct" if expect in (OK, EITHER) else "wrong result"
            detail = "no error" if expect == ERROR else ""
        print(json.dumps([outcome, detail[:300]]), flush=True)


def run(minidl_root, cases):
    """Each case's (outcome, detail), with a fresh worker after a crash or a hang."""
    env = dict(os.environ, PYTHONPATH=minidl_root, OMP_NUM_THREADS="2")
    results, i, worker = [], 0, None
    while i < len(cases):
        if worker is None:
            worker = subprocess.Popen([sys.executable, __file__, "--worker"], env=env,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True, cwd="/")
        worker.stdin.write(json.dumps(cases[i]) + "\n")
        worker.stdin.flush()
        line = _read_line(worker, TIME_BOUND)
        if line is None:
            outcome = ("hang", "no result within the time bound") if worker.poll() is None \
                else ("crash", f"the worker died (status {worker.returncode})")
            worker.kill()
            worker.wait()
            worker = None
            results.append(outcome)
        else:
            results.append(tuple(json.loads(line)))
        i += 1
    if worker is not None:
        worker.stdin.close()
        worker.wait()
    return results


def _read_line(process, timeout):
    import select
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], deadline - time.monotonic())
        if ready:
            line = process.stdout.readline()
            return line or None
        if process.poll() is not None:
            return None
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minidl", default=os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), help="the checkout to probe (built in place)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--verbose", action="store_true", help="print every case")
    args = parser.parse_args(argv)
    if args.worker:
        _worker()
        return
    cases = _cases()
    results = run(args.minidl, cases)
    counts = {}
    for (family, name, _, _), (outcome, detail) in zip(cases, results):
        counts.setdefault(family, dict.fromkeys(OUTCOMES, 0))[outcome] += 1
        if args.verbose or outcome not in ("clean error", "correct"):
            print(f"{outcome:>13}  {family}: {name}  {detail}")
    print(f"\n{'family':<16}{'tried':>6}" + "".join(f"{o:>14}" for o in OUTCOMES))
    total = dict.fromkeys(OUTCOMES, 0)
    for family, row in counts.items():
        print(f"{family:<16}{sum(row.values()):>6}" + "".join(f"{row[o]:>14}" for o in OUTCOMES))
        for o in OUTCOMES:
            total[o] += row[o]
    print(f"{'total':<16}{sum(total.values()):>6}" + "".join(f"{total[o]:>14}"
                                                            for o in OUTCOMES))


if __name__ == "__main__":
    main()
