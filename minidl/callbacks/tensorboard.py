"""TensorBoard: a fit's logs as TensorBoard event files, as ``keras.callbacks.TensorBoard``.

What is written, and where (the tags and steps of Keras 3):

    log_dir/train/       epoch_<name> (every epoch's training logs, with epoch_learning_rate,
                         at step = epoch index), batch_<name> (with update_freq, at step = the
                         batch count of the fit), <layer>/<weight>/histogram and .../image
                         (with histogram_freq), the model's architecture ('keras', step 0)
    log_dir/validation/  epoch_<name> (the 'val_' logs without the prefix), and
                         evaluation_<name>_vs_iterations at every end of validation or
                         evaluate (step = optimizer.iterations)

The records are made and framed with the tensorboardX package (the ``minidl[tensorboard]``
extra), imported when the callback is made so that a missing package fails before training
does. They are written at the frequencies asked for only: by default nothing happens per
batch (the callback then overrides no batch hook, so fit builds no batch logs for it), and a
scalar costs about 14 us to write.
"""
import itertools
import json
import numbers
import os
import socket
import struct
import time
import warnings

import numpy as np

from minidl.callbacks.arguments import check_flag, check_path
from minidl.callbacks.callback import Callback

_HISTOGRAM_BINS = 30   # tf.summary.histogram's default bucket count, which Keras uses
_file_numbers = itertools.count()


class TensorBoard(Callback):
    """Write logs for TensorBoard: scalars of every epoch (and batch), weight histograms and
    images, and the model's architecture.

    Run ``tensorboard --logdir=path_to_your_logs`` to see them.

    Training logs go to ``log_dir/train``, validation logs to ``log_dir/validation``, under
    the names Keras uses: ``epoch_loss``, ``epoch_accuracy``, ... at step = epoch index (the
    validation writer's ``epoch_loss`` is the epoch's 'val_loss'), plus
    ``epoch_learning_rate``. Each end of validation and each ``evaluate`` called with the
    callback also writes ``evaluation_loss_vs_iterations``, ... in the validation writer, at
    step ``model.optimizer.iterations``. Logs that are not scalars (a per-class metric) are
    not written. The event files are flushed at every epoch end, and closed when ``fit`` (or
    ``evaluate``) ends.

    Args:
        log_dir: the directory to write to (created when first written to). Do not share it
            with other callbacks or runs you want to tell apart. Defaults to 'logs'.
        histogram_freq: write a histogram of every weight every this many epochs (at epoch
            indices 0, N, 2N, ...; as Keras, tagged ``<layer>/<weight>/histogram``, e.g.
            ``dense/kernel/histogram``, with 30 equal-width buckets). 0 writes none.
            Defaults to 0.
        write_graph: write the model's architecture (its ``to_json``) as the summary
            TensorBoard's Graphs tab draws as a conceptual graph (tag 'keras', step 0), as
            Keras does for Sequential and functional models. A subclassed model has no such
            graph, and nothing is written for it (Keras neither). minidl has no op graph to
            write (Keras 3 writes one only for TensorFlow's compiled train function).
            Defaults to True.
        write_images: with ``histogram_freq``, also write each weight as an image (tag
            ``<layer>/<weight>/image``), shaped as Keras does: a bias is a column of pixels; a
            2-D kernel is one image, transposed when it has more rows than columns; a kernel
            of three axes after dropping the axes of size 1 (a Conv2D kernel with one input
            channel) gives one image per filter, tiled 8 to a row. Kernels with more axes are
            not written. Unlike Keras, which clips the weights to [0, 1], each image is scaled
            so that its lowest weight is black and its highest white: clipping shows most
            weights as black. Needs Pillow (``pip install minidl[image]``). Defaults to False.
        write_steps_per_second: also write the training speed, in steps per second:
            ``epoch_steps_per_second`` every epoch and, with ``update_freq``,
            ``batch_steps_per_second`` (of the batch just run). Defaults to False.
        update_freq: 'epoch', 'batch' or an int N: with an int, the running loss and metrics
            (the logs callbacks get after each batch) are also written every N batches as
            ``batch_<name>``, at step = the number of batches since the fit began (N, 2N,
            ...). 'batch' means 1. Writing often slows training. Defaults to 'epoch'.
        profile_batch: which batches Keras would profile: 0 (none), an int, a pair
            ``(start, stop)`` with ``0 <= start <= stop``, or the string 'start,stop'. It is
            checked as Keras does, but minidl has no profiler, so a profile is never
            written: any value other than 0 gives a warning (Keras 3 refuses a non-zero
            value on its numpy and torch backends). Defaults to 0.
        embeddings_freq: how often (in epochs) Keras visualises the weights of Embedding
            layers: an int >= 0. minidl has no Embedding layer, so nothing is written; a
            non-zero value gives a warning when training begins. Defaults to 0.
        embeddings_metadata: None, a file name for all Embedding layers, or a dict mapping
            Embedding layer names to file names. As in Keras, with ``embeddings_freq`` a
            dict naming layers that are not Embedding layers is an error (here: any name).

    Raises:
        ImportError: tensorboardX is not installed (or, with ``write_images``, Pillow).
        ValueError: an argument of the wrong type or out of range, named in the message.

    Example:
        >>> tensorboard = TensorBoard(log_dir="./logs", histogram_freq=1)
        >>> model.fit(x, y, epochs=10, validation_split=0.1, callbacks=[tensorboard])
    """

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0,
                 embeddings_freq=0, embeddings_metadata=None):
        super().__init__()
        self.log_dir = check_path("TensorBoard", "log_dir", log_dir, directory=True)
        self.histogram_freq = _check_count("histogram_freq", histogram_freq)
        self.write_graph = check_flag("TensorBoard", "write_graph", write_graph)
        self.write_images = check_flag("TensorBoard", "write_images", write_images)
        self.write_steps_per_second = check_flag("TensorBoard", "write_steps_per_second",
                                                  write_steps_per_second)
        self.update_freq = _check_update_freq(update_freq)
        self.profile_batch = profile_batch
        self._start_batch, self._stop_batch = _check_profile_batch(profile_batch)
        self.embeddings_freq = _check_count("embeddings_freq", embeddings_freq)
        self.embeddings_metadata = _check_embeddings_metadata(embeddings_metadata)
        if self._stop_batch > 0:
            warnings.warn(f"TensorBoard: minidl has no profiler, so profile_batch="
                          f"{profile_batch!r} writes no profile (pass profile_batch=0 to "
                          f"silence this).", stacklevel=2)
        self._tensorboardx = _import_tensorboardx()
        if self.write_images:
            _import_pillow()
        self._train_dir = os.path.join(self.log_dir, "train")
        self._val_dir = os.path.join(self.log_dir, "validation")
        self._writers = {}
        self._global_train_batch = 0
        self._batch_start_time = 0.0
        self._epoch_start_time = 0.0
        self._epoch_start_iterations = 0
        if self.update_freq != "epoch":
            # Batch hooks only when batch summaries are asked for: a callback list skips the
            # hooks no callback overrides, and fit then builds no batch logs.
            self.on_train_batch_begin = self._count_batch
            self.on_train_batch_end = self._write_batch_logs

    # ---- writers ----

    def _writer(self, which):
        """The event file of 'train' or 'validation', made when first needed, so that a fit
        without validation leaves no empty validation directory."""
        writer = self._writers.get(which)
        if writer is None:
            from minidl.distributed.comm import is_writer
            directory = self._train_dir if which == "train" else self._val_dir
            # Data-parallel training (minidl.distributed): rank 0 alone writes event files.
            writer = self._writers[which] = (_EventFile(directory) if is_writer()
                                             else _NoEventFile())
        return writer

    def _write_scalars(self, which, prefix, logs, step):
        summary = self._tensorboardx.summary
        writer = self._writer(which)
        for name, value in logs.items():
            value = _scalar_or_none(value)
            if value is not None:
                writer.add_summary(summary.scalar(prefix + name, value), step)

    def _flush_writers(self):
        for writer in self._writers.values():
            writer.flush()

    def _close_writers(self):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    # ---- hooks ----

    def on_train_begin(self, logs=None):
        self._close_writers()   # (left open by a fit that raised)
        self._global_train_batch = 0
        if self.write_graph:
            self._write_model_architecture()
        if self.embeddings_freq:
            self._check_embeddings()

    def on_epoch_begin(self, epoch, logs=None):
        if self.write_steps_per_second:
            self._epoch_start_iterations = self._iterations() or 0
            self._epoch_start_time = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        train_logs = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val_logs = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        learning_rate = getattr(getattr(self.model, "optimizer", None), "learning_rate", None)
        if learning_rate is not None:
            train_logs["learning_rate"] = float(learning_rate)
        iterations = self._iterations()
        if self.write_steps_per_second and iterations is not None:
            elapsed = time.perf_counter() - self._epoch_start_time
            train_logs["steps_per_second"] = ((iterations - self._epoch_start_iterations)
                                              / max(elapsed, 1e-9))
        if train_logs:
            self._write_scalars("train", "epoch_", train_logs, epoch)
        if val_logs:
            self._write_scalars("validation", "epoch_", val_logs, epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._write_weights(epoch)
        self._flush_writers()

    def on_train_end(self, logs=None):
        self._close_writers()

    def on_test_end(self, logs=None):
        in_fit = getattr(self.model, "_in_fit", False)
        iterations = self._iterations()
        if iterations is not None and logs:
            # fit's validation passes its logs with the 'val_' prefix (Keras passes them
            # without); the tag is Keras', evaluation_loss_vs_iterations, either way.
            names = {(k[4:] if in_fit and k.startswith("val_") else k): v
                     for k, v in logs.items()}
            self._write_scalars("validation", "", {f"evaluation_{name}_vs_iterations": value
                                                   for name, value in names.items()},
                                iterations)
        if in_fit:
            self._flush_writers()
        else:   # the end of evaluate: no on_train_end follows to close the files
            self._close_writers()

    def _count_batch(self, batch, logs=None):
        self._global_train_batch += 1
        if self.write_steps_per_second:
            self._batch_start_time = time.perf_counter()

    def _write_batch_logs(self, batch, logs=None):
        step = self._global_train_batch
        if step % self.update_freq:
            return
        logs = dict(logs or {})
        if self.write_steps_per_second:
            elapsed = time.perf_counter() - self._batch_start_time
            logs["steps_per_second"] = 1.0 / max(elapsed, 1e-9)
        self._write_scalars("train", "batch_", logs, step)

    # ---- what is written ----

    def _iterations(self):
        return getattr(getattr(self.model, "optimizer", None), "iterations", None)

    def _write_weights(self, epoch):
        summary = self._tensorboardx.summary
        writer = self._writer("train")
        for layer in self.model.layers:
            for weight in layer.weights:
                name = _weight_path(layer, weight).replace(":", "_")
                values = np.asarray(weight, dtype=np.float64)
                if values.size == 0:
                    continue
                if not np.all(np.isfinite(values)):
                    warnings.warn(f"TensorBoard: weight '{name}' holds NaN or inf at epoch "
                                  f"{epoch}; its histogram and image are not written.",
                                  RuntimeWarning, stacklevel=3)
                    continue
                writer.add_summary(summary.histogram(f"{name}/histogram", values,
                                                     bins=_HISTOGRAM_BINS), epoch)
                if self.write_images:
                    image = weight_image(values)
                    if image is not None:
                        writer.add_summary(summary.image(f"{name}/image", image,
                                                         dataformats="NHWC"), epoch)

    def _write_model_architecture(self):
        """The summary TensorBoard's graph plugin draws as a Keras conceptual graph: the
        model's JSON in a string tensor whose plugin is 'graph_keras_model' (what Keras'
        ``keras_model_summary`` writes)."""
        try:
            architecture = self.model.to_json()
            class_name = json.loads(architecture).get("class_name")
        except Exception as error:   # a model that cannot be serialised must not stop fit
            warnings.warn(f"TensorBoard: the model failed to serialize as JSON, so its graph "
                          f"is not written ({type(error).__name__}: {error}).", stacklevel=3)
            return
        if class_name not in ("Sequential", "Functional"):
            return
        from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata
        from tensorboardX.proto.tensor_pb2 import TensorProto
        from tensorboardX.proto.tensor_shape_pb2 import TensorShapeProto
        from tensorboardX.proto.types_pb2 import DT_STRING
        metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(
            plugin_name="graph_keras_model", content=b"1"))
        tensor = TensorProto(dtype=DT_STRING, tensor_shape=TensorShapeProto(),
                             string_val=[architecture.encode("utf-8")])
        self._writer("train").add_summary(
            Summary(value=[Summary.Value(tag="keras", metadata=metadata, tensor=tensor)]), 0)

    def _check_embeddings(self):
        if isinstance(self.embeddings_metadata, dict) and self.embeddings_metadata:
            raise ValueError(f"Unrecognized `Embedding` layer names passed to "
                             f"`TensorBoard` `embeddings_metadata` argument: "
                             f"{sorted(self.embeddings_metadata)} (minidl has no Embedding "
                             f"layer).")
        warnings.warn(f"TensorBoard: minidl has no Embedding layer, so embeddings_freq="
                      f"{self.embeddings_freq} writes nothing.", stacklevel=3)


class _NoEventFile:
    """The event file of a rank other than 0 in data-parallel training: writes nothing."""

    def add_summary(self, summary, step):
        pass

    def flush(self):
        pass

    def close(self):
        pass


class _EventFile:
    """One event file (TFRecord framing of Event records), written from the calling thread.

    tensorboardX's own writers hand every record to a thread through a multiprocessing
    queue (a pickle per record), their ``flush`` does not wait for that thread, so a
    flushed epoch could still be missing from the file, and it calls fsync, which costs a
    tenth of a second on some disks. Here a record is written at once (about 14 us for a
    scalar, measured) and a flush hands the file to the operating system, where any reader
    sees it.
    """

    def __init__(self, directory):
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.record_writer import masked_crc32c
        self._event, self._crc = Event, masked_crc32c
        os.makedirs(directory, exist_ok=True)
        # TensorBoard's name for an event file is 'events.out.tfevents.<seconds>.<host>'; the
        # suffix, unique to the process and the file, keeps a second file made in the same
        # directory within the same second (fit, then evaluate) from replacing the first.
        name = (f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}."
                f"{os.getpid()}.{next(_file_numbers)}.minidl")
        self._file = open(os.path.join(directory, name), "wb")
        self._write(self._event(wall_time=time.time(), file_version="brain.Event:2"))

    def add_summary(self, summary, step):
        self._write(self._event(wall_time=time.time(), step=int(step), summary=summary))

    def _write(self, event):
        data = event.SerializeToString()
        header = struct.pack("<Q", len(data))
        self._file.write(b"".join((header, struct.pack("<I", self._crc(header)), data,
                                   struct.pack("<I", self._crc(data)))))

    def flush(self):
        self._file.flush()

    def close(self):
        self._file.close()


def weight_image(weight):
    """A weight as a batch of grey images ``(n, height, width, 1)`` in uint8, shaped as Keras'
    TensorBoard callback shapes it, or None when it has more than three axes once its axes
    of size 1 are dropped.

    A vector is one image of one column; a matrix is one image with at most as many rows
    as columns (transposed otherwise); a 3-axis array ``(h, w, n)`` (channels last) is n
    images of ``h x w``. Each image set is scaled so that the lowest value is 0 and the
    highest 255 (all 0 when the weight is constant).
    """
    values = np.squeeze(np.asarray(weight, dtype=np.float64))
    if values.ndim == 0:
        values = values.reshape(1)
    if values.ndim == 1:
        images = values.reshape(1, -1, 1)
    elif values.ndim == 2:
        images = (values.T if values.shape[0] > values.shape[1] else values)[np.newaxis]
    elif values.ndim == 3:
        images = np.transpose(values, (2, 0, 1))
    else:
        return None
    low, high = float(images.min()), float(images.max())
    scale = 255.0 / (high - low) if high > low else 0.0
    pixels = np.rint((images - low) * scale).astype(np.uint8)
    return pixels[..., np.newaxis]


def _weight_path(layer, weight):
    path = getattr(weight, "path", None)
    return path if path else f"{layer.name}/{getattr(weight, 'name', 'variable')}"


def _scalar_or_none(value):
    """``value`` as a float, or None when it is not one number (numpy scalars count)."""
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "biuf":
        return float(value)
    return None


def _import_tensorboardx():
    try:
        import tensorboardX
        import tensorboardX.summary   # noqa: F401  (a submodule the callback uses)
    except ImportError as error:
        raise ImportError("The TensorBoard callback writes its event files with the "
                          "tensorboardX package, which is not installed. Install it with "
                          "`pip install minidl[tensorboard]`.") from error
    return tensorboardX


def _import_pillow():
    try:
        import PIL  # noqa: F401
    except ImportError as error:
        raise ImportError("TensorBoard(write_images=True) encodes the weight images as PNG "
                          "with Pillow, which is not installed. Install it with "
                          "`pip install minidl[image]`, or pass write_images=False.") from error


def _check_count(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"TensorBoard: {name} must be an int >= 0 (a number of epochs; 0 "
                         f"turns it off); received {name}={value!r}.")
    return int(value)


def _check_update_freq(update_freq):
    if isinstance(update_freq, str) and update_freq in ("epoch", "batch"):
        return 1 if update_freq == "batch" else update_freq
    if (isinstance(update_freq, numbers.Integral) and not isinstance(update_freq, bool)
            and update_freq >= 1):
        return int(update_freq)
    raise ValueError(f"TensorBoard: update_freq must be 'epoch', 'batch' or an int >= 1 (write "
                     f"the batch logs every that many batches); received "
                     f"update_freq={update_freq!r}.")


def _check_profile_batch(profile_batch):
    """``(start, stop)`` of Keras' profile_batch rules; ValueError otherwise."""
    error = ValueError(f"TensorBoard: profile_batch must be a non-negative integer or a pair "
                       f"(start, stop) of non-negative integers with start <= stop (a range of "
                       f"batches to profile), or the string 'start,stop'; received "
                       f"profile_batch={profile_batch!r}.")
    value = profile_batch
    if isinstance(value, str):
        try:
            value = [int(part) for part in value.split(",")]
        except ValueError:
            raise error from None
        value = value[0] if len(value) == 1 else value
    if isinstance(value, bool):
        raise error
    if isinstance(value, numbers.Integral):
        start = stop = int(value)
    elif (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)):
        start, stop = int(value[0]), int(value[1])
    else:
        raise error
    if start < 0 or stop < start:
        raise error
    return start, stop


def _check_embeddings_metadata(metadata):
    if metadata is None or isinstance(metadata, (str, os.PathLike)):
        return metadata
    if isinstance(metadata, dict) and all(isinstance(k, str) for k in metadata):
        return dict(metadata)
    raise ValueError(f"TensorBoard: embeddings_metadata must be None, a file name, or a dict "
                     f"mapping Embedding layer names to file names; received "
                     f"embeddings_metadata={metadata!r}.")
