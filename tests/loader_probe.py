"""The probe of issue 11: loads every case of the hostile corpus (tests/loader_corpus.py) and
says how each one ends.

The runner loads the cases in a worker process, one after another, with a time bound per case
(a case not done in time is a hang: the worker is killed and a new one goes on from the next
case), a memory bound per case (the peak of tracemalloc, which numpy reports its arrays to)
and an address-space limit on the worker (RLIMIT_AS) so that a runaway allocation fails
instead of taking the machine. Each case ends as one of OUTCOMES:

    clean error        InvalidModelFileError, FileNotFoundError or IsADirectoryError, for a
                       file that is not valid
    correct load       loaded, and the model (config, weights, optimizer state) is the one the
                       file holds
    crash              any other exception (AttributeError, KeyError, MemoryError, ...), or
                       the worker died (a segfault)
    hang               not done within the time bound
    wrong result       loaded a file that is not valid (e.g. trainable "no" read as True), or
                       a model that differs from the file, or refused a valid file
    over memory bound  ended cleanly, but only after allocating more than the memory bound
                       (or it hit the address-space limit and the MemoryError was turned into
                       a clean error)

Run as a script, it builds the whole corpus with the minidl it imports, runs it against the
minidl at --minidl (default: the one it imports) and prints the counts per family:

    python tests/loader_probe.py                      # this tree
    python tests/loader_probe.py --minidl /tmp/base   # another checkout, built in place
"""
import argparse
import dataclasses
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time

from loader_corpus import FAMILIES, Case, build_corpus

OUTCOMES = ("clean error", "correct load", "crash", "hang", "wrong result", "over memory bound")
# Seconds per case. The slowest valid case (20,000 layers) loads in about 1 s; the bound
# leaves room for a busy shared machine and still catches the quadratic loading it guards
# against (minutes at that size).
TIME_BOUND = 15.0
MEMORY_BOUND = 256 * 2 ** 20      # tracemalloc peak per case
ADDRESS_SPACE = 2 * 2 ** 30       # RLIMIT_AS of the worker


# ---- the worker: loads cases and classifies them ----

def _same_model(model, reference, arrays):
    """Why ``model`` differs from the reference, or None when it is the same."""
    import numpy as np
    from minidl import optimizers
    if json.loads(model.to_json()) != reference["model"]:
        return "its config differs from the file's"
    weights = model.get_weights()
    expected = [arrays[f"w{i}"] for i in range(sum(k.startswith("w") for k in arrays))]
    if len(weights) != len(expected) or any(
            a.shape != b.shape or a.dtype != b.dtype or not np.array_equal(a, b)
            for a, b in zip(weights, expected)):
        return "its weights differ from the file's"
    if reference["optimizer"] is not None:
        if not model.compiled or optimizers.serialize(model.optimizer) != reference["optimizer"]:
            return "its optimizer differs from the file's"
        if model.optimizer.iterations != int(arrays["iterations"]):
            return "its optimizer step count differs from the file's"
        slots = model.optimizer.get_slot_arrays()
        if any(not np.array_equal(s, arrays[f"s{i}"]) for i, s in enumerate(slots)):
            return "its optimizer slots differ from the file's"
    return None


def _fresh_model(reference):
    """A model of the reference's architecture (compiled with its optimizer, when it has
    one, and built, as fit leaves it)."""
    import minidl
    model = minidl.models.model_from_json(json.dumps(reference["model"]))
    if reference["optimizer"] is not None:
        model.compile(optimizer=minidl.optimizers.get(reference["optimizer"]),
                      loss="sparse_categorical_crossentropy")
    return model


def _load(case, reference):
    """Load ``case`` with its loader; the model, and the epoch a backup resumes from."""
    import minidl
    if case.loader == "model":
        return minidl.models.load_model(case.path), None
    model = _fresh_model(reference)
    if case.loader == "weights":
        model.load_weights(case.path)
        return model, None
    from minidl.callbacks import BackupAndRestore
    callback = BackupAndRestore(os.path.dirname(case.path))
    callback.set_model(model)
    callback.on_train_begin()
    return model, getattr(model, "_initial_epoch", None)


def _has_memory_error(error):
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, MemoryError):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def classify(case, refs):
    """(outcome, detail) of loading ``case`` in this process."""
    import numpy as np
    import tracemalloc
    from minidl.saving import InvalidModelFileError
    with open(os.path.join(refs, f"{case.reference}.json")) as f:
        reference = json.load(f)
    with np.load(os.path.join(refs, f"{case.reference}.npz")) as saved:
        arrays = {k: saved[k] for k in saved.files}
    # Measured from what is traced now: numpy traces a failed allocation too (at address 0,
    # never untraced), so an earlier case's attempt can stay in the count.
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    try:
        model, epoch = _load(case, reference)
    except (InvalidModelFileError, FileNotFoundError, IsADirectoryError) as error:
        peak = tracemalloc.get_traced_memory()[1] - before
        detail = f"{type(error).__name__}: {error}"[:300]
        if _has_memory_error(error):
            return "over memory bound", "MemoryError turned into " + detail
        if peak > MEMORY_BOUND:
            return "over memory bound", f"peak {peak >> 20} MiB; {detail}"
        if case.expect == "valid":
            return "wrong result", "refused a valid file: " + detail
        return "clean error", detail
    except BaseException as error:   # noqa: B902 - every other way of failing is a crash
        if isinstance(error, KeyboardInterrupt):
            raise
        return "crash", f"{type(error).__name__}: {error}"[:300]
    peak = tracemalloc.get_traced_memory()[1] - before
    if peak > MEMORY_BOUND:
        return "over memory bound", f"peak {peak >> 20} MiB while loading"
    if case.expect == "invalid":
        return "wrong result", "loaded a file that is not valid"
    difference = _same_model(model, reference, arrays)
    if difference is None and case.loader == "backup" and epoch != reference["epoch"]:
        difference = f"resumed at epoch {epoch}, the file says {reference['epoch']}"
    if difference and case.expect == "unchecked":
        # No checksum covers the changed byte: the file holds another valid model (a weight
        # or a name changed), and that is what was loaded.
        return "correct load", f"the model the changed file holds ({difference})"
    return ("wrong result", difference) if difference else ("correct load", "")


def worker(manifest, start):
    """Load the cases of ``manifest`` from index ``start``, printing one JSON line when a
    case starts and one with its outcome."""
    import resource
    import tracemalloc
    import warnings
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    import minidl
    minidl.set_num_threads(1)
    warnings.simplefilter("ignore")
    with open(manifest) as f:
        spec = json.load(f)
    cases = [Case(**c) for c in spec["cases"]]
    tracemalloc.start()
    for i in range(start, len(cases)):
        print(json.dumps({"start": i}), flush=True)
        outcome, detail = classify(cases[i], spec["refs"])
        print(json.dumps({"result": i, "outcome": outcome, "detail": detail}), flush=True)


# ---- the runner ----

class _Lines:
    """Lines from a pipe, waiting at most a given time for each (select on the raw fd:
    a buffered reader could hold a line select does not see)."""

    def __init__(self, stream):
        self.fd = stream.fileno()
        self.buffer = b""

    def next(self, timeout):
        """The next line; None at the end of the stream; TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line


def run(cases, directory, minidl_root=None, time_bound=TIME_BOUND):
    """Run ``cases`` (written under ``directory`` by build_corpus) in worker processes;
    returns {case id: (outcome, detail)}.

    Args:
        minidl_root: the directory holding the minidl package to test (put first on the
            workers' PYTHONPATH); default: the one this process imports.
        time_bound: seconds a case may take before it counts as a hang.
    """
    if minidl_root is None:
        import minidl
        minidl_root = os.path.dirname(os.path.dirname(os.path.abspath(minidl.__file__)))
    manifest = os.path.join(directory, "manifest.json")
    with open(manifest, "w") as f:
        json.dump({"refs": os.path.join(directory, "refs"),
                   "cases": [dataclasses.asdict(c) for c in cases]}, f)
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([minidl_root, here]),
               PYTHONDONTWRITEBYTECODE="1")
    results, start = {}, 0
    while start < len(cases):
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker",
                                     manifest, str(start)], stdout=subprocess.PIPE,
                                    stderr=errors, env=env, cwd=directory)
            lines, current = _Lines(proc.stdout), None
            try:
                while True:
                    try:
                        # Starting a worker (imports) is not part of a case's time.
                        line = lines.next(time_bound if current is not None else 120)
                    except TimeoutError:
                        if current is None:
                            raise RuntimeError("a loader worker did not start") from None
                        results[cases[current].id] = ("hang", f"over {time_bound} s")
                        start = current + 1
                        break
                    if line is None:
                        code = proc.wait()
                        errors.seek(0)
                        tail = errors.read().decode(errors="replace").strip()[-300:]
                        if current is None:
                            if start < len(cases):
                                raise RuntimeError(f"a loader worker failed: {tail}")
                            break
                        name = (signal.Signals(-code).name if code < 0 else f"exit {code}")
                        results[cases[current].id] = ("crash", f"worker died ({name}): {tail}")
                        start = current + 1
                        break
                    message = json.loads(line)
                    if "start" in message:
                        current = message["start"]
                    else:
                        results[cases[message["result"]].id] = (message["outcome"],
                                                                 message["detail"])
                        current, start = None, message["result"] + 1
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                proc.stdout.close()
    return results


def table(cases, results):
    """The counts per family and outcome, as text."""
    rows = [("family", "tried") + OUTCOMES]
    totals = [0] * (len(OUTCOMES) + 1)
    for family in FAMILIES:
        ids = [c.id for c in cases if c.family == family]
        counts = [len(ids)] + [sum(results[i][0] == o for i in ids) for o in OUTCOMES]
        totals = [a + b for a, b in zip(totals, counts)]
        rows.append((family,) + tuple(map(str, counts)))
    rows.append(("total",) + tuple(map(str, totals)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |"
                     for row in rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minidl", help="directory holding the minidl package to probe")
    parser.add_argument("--sample", action="store_true", help="the test suite's sample only")
    parser.add_argument("--dir", help="where to write the corpus (default: a temporary one)")
    parser.add_argument("--show", type=int, default=40,
                        help="list this many cases that did not end well")
    parser.add_argument("--results", help="also write every case's outcome to this JSON file")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker[0], int(args.worker[1]))
    directory = args.dir or tempfile.mkdtemp(prefix="minidl-corpus-")
    began = time.monotonic()
    cases = build_corpus(directory, sample=args.sample)
    built = time.monotonic()
    results = run(cases, directory, args.minidl)
    print(f"{len(cases)} cases, built in {built - began:.1f} s, run in "
          f"{time.monotonic() - built:.1f} s, against {args.minidl or 'this tree'}")
    print(table(cases, results))
    if args.results:
        with open(args.results, "w") as f:
            json.dump({c.id: [c.family, *results[c.id]] for c in cases}, f, indent=1)
    bad = [(c, results[c.id]) for c in cases
           if results[c.id][0] not in ("clean error", "correct load")]
    for case, (outcome, detail) in bad[:args.show]:
        print(f"  {outcome:17} {case.id}: {detail}")
    if len(bad) > args.show:
        print(f"  ... and {len(bad) - args.show} more")


if __name__ == "__main__":
    main()
