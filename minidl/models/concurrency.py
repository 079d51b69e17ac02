"""How calls on one model from several Python threads are kept apart.

The kernels release the GIL, so two threads really do run a model at once. The rule that
keeps every result equal to that of the same calls made one after another:

- Inference (``predict``, ``model(x)``, ``predict_on_batch``) reads the weights and writes
  nothing that belongs to the model or its layers (its buffers are its own). Any number
  of inference calls run side by side, each holding the model's lock *shared* for its
  whole duration, so that all its batches see the same weights.
- A training step (forward, backward, optimizer update, moving statistics) holds the lock
  *exclusively*: it waits for running inference calls to end and keeps new ones waiting,
  so an inference call sees the weights between two steps, never halfway through an
  update, and cannot disturb what the step keeps for its backward pass.
- Calls that use the model's running metrics or optimizer (``fit``, ``evaluate``,
  ``train_on_batch``, ``test_on_batch``) run one at a time (the *session* lock); a second
  one from another thread waits for the first to end. A callback may call them again from
  the same thread (the session lock is reentrant).

A waiting training step has priority over new inference calls, so a stream of ``predict``
calls from one thread cannot stall ``fit`` in another.
"""
import functools
import threading
from threading import get_ident

from minidl.autodiff.tensor import WeightWrites


class ModelLock:
    """A readers-writer lock with writer priority, reentrant for the thread that holds it,
    and the session lock beside it.

    ``with lock.shared:`` for inference, ``with lock.exclusive:`` for a training step,
    ``with lock.session:`` around a call that uses the metrics or the optimizer.
    Inference nested in a training step of the same thread (a callback, a layer calling
    the model) passes through; a training step inside inference of the same thread raises
    RuntimeError instead of waiting for itself forever.
    """

    def __init__(self):
        # The fast path enters the plain lock (C code); the condition, on the same lock, is
        # only for waiting. Inference on one sample takes a few microseconds.
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._readers = 0            # inference calls running, nested ones counted once
        self._reading = {}           # thread ident -> depth of its nested inference calls
        self._writer = None          # ident of the thread in a training step, or None
        self._writer_depth = 0
        self._writers_waiting = 0
        self._sleepers = 0           # threads in _cond.wait(): only then is a notify needed
        self.session = threading.RLock()  # fit / evaluate / *_on_batch, one at a time
        self.shared = _Shared(self)
        self.exclusive = _Exclusive(self)

    def __getstate__(self):   # a pickled or deep-copied model gets fresh locks
        return {"fresh": True}   # (a false state would skip __setstate__)

    def __setstate__(self, state):
        self.__init__()


def _sleep(lock):
    """Wait on the lock's condition (its mutex held), counted so that releases notify only
    when a thread waits."""
    lock._sleepers += 1
    try:
        lock._cond.wait()
    finally:
        lock._sleepers -= 1


class _Shared:
    __slots__ = ("_lock",)

    def __init__(self, lock):
        self._lock = lock

    def __enter__(self):
        lock = self._lock
        me = get_ident()
        with lock._mutex:
            depth = lock._reading.get(me, 0)
            lock._reading[me] = depth + 1
            if depth or lock._writer == me:
                return   # nested: already counted, or inside our own training step
            # A waiting training step goes first (so a stream of predicts cannot stall it).
            while lock._writer is not None or lock._writers_waiting:
                _sleep(lock)
            lock._readers += 1

    def __exit__(self, *exc):
        lock = self._lock
        me = get_ident()
        with lock._mutex:
            depth = lock._reading.pop(me) - 1
            if depth:
                lock._reading[me] = depth
                return
            if lock._writer == me:
                return
            lock._readers -= 1
            if lock._readers == 0 and lock._writers_waiting:   # (a waiting writer sleeps)
                lock._cond.notify_all()


class _Exclusive:
    __slots__ = ("_lock",)

    def __init__(self, lock):
        self._lock = lock

    def __enter__(self):
        lock = self._lock
        me = get_ident()
        with lock._mutex:
            if lock._writer == me:
                lock._writer_depth += 1
                return
            if me in lock._reading:
                raise RuntimeError("A model cannot train from inside its own inference call "
                                   "(predict or model(x), e.g. from a predict callback) in "
                                   "the same thread: the training step would wait for that "
                                   "call to end. Train after it returns.")
            lock._writers_waiting += 1
            try:
                while lock._writer is not None or lock._readers:
                    _sleep(lock)
            finally:
                lock._writers_waiting -= 1
            lock._writer, lock._writer_depth = me, 1

    def __exit__(self, *exc):
        lock = self._lock
        with lock._mutex:
            lock._writer_depth -= 1
            if lock._writer_depth == 0:
                WeightWrites.written()   # (after the step's or the load's writes)
                lock._writer = None
                if lock._sleepers:   # (a training step alone: nobody to wake, each step)
                    lock._cond.notify_all()


def one_at_a_time(method):
    """Run a model method under the model's session lock (see the module docstring)."""
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._lock.session:
            return method(self, *args, **kwargs)
    return locked
