"""BackupAndRestore: back up the training state at the end of every epoch and, when a fit
was interrupted, resume it where the backup left off, as ``keras.callbacks.BackupAndRestore``.

The backup is a whole model file (:func:`minidl.saving.model_io.save_backup`): weights,
optimizer step count and slots, the global random generator and those of seeded layers, and
the epoch to resume from. It is written atomically, so a crash while writing it leaves the
previous backup whole, and restoring it gives the state of the uninterrupted run at that
epoch: the resumed fit ends with the same weights, bit for bit. With ``double_checkpoint``
the backup before it is kept too, for when the latest one is later found damaged.
"""
import numbers
import os
import warnings

from minidl.callbacks.arguments import check_flag, check_path
from minidl.callbacks.callback import Callback

_BACKUP_NAME = "latest.minidl"
_PREVIOUS_NAME = "previous.minidl"


class BackupAndRestore(Callback):
    """Back up the training state at the end of each epoch, and restore it when ``fit``
    starts again after an interruption.

    At the start of ``fit``, if ``backup_dir`` holds a backup, the model's weights, the
    optimizer's state (step count, slots and learning rate) and the random generators
    (batch shuffling, dropout) are set from it, and training continues with the epoch after
    the last one backed up (``initial_epoch`` is then ignored). At the end of every epoch
    the backup is replaced, atomically. When ``fit`` ends normally (early stopping
    included) the backup is deleted; when it ends with an exception (a crash, an interrupt,
    a callback raising) the backup stays, and the same ``fit`` call, in this or a new
    process, resumes it: its final weights equal those of a run that was never interrupted,
    bit for bit.

    The model must be the one that was backed up: same layers, same weight shapes, same
    optimizer class; and ``fit`` should get the same arguments (data, batch size, shuffle,
    ...), or the resumed run, though it continues, is no longer the uninterrupted one. Not
    backed up, as in Keras: the state of other callbacks (EarlyStopping's patience count,
    ReduceLROnPlateau's best value). With ``steps_per_epoch`` shorter than a pass over the
    data, an epoch may end inside a pass, and the resumed fit starts a new pass (fit warns
    when that happens).

    Args:
        backup_dir: path of the directory holding the backup (the file
            ``backup_dir/latest.minidl``); created at the first backup. Use a directory per
            training job: two fits sharing one would restore each other's backups.
        save_freq: 'epoch', the only value: back up at the end of every epoch. (Keras also
            takes an int, to back up every that many batches; that is refused here, see
            Raises.)
        double_checkpoint: keep the two latest backups, the current one and the one before
            it (``backup_dir/previous.minidl``), as Keras does: when the current backup
            cannot be read (a damaged file) or is missing, ``fit`` resumes from the
            previous one, with a warning, one epoch earlier. Costs twice the disk space.
            Defaults to False.
        delete_checkpoint: delete the backup when ``fit`` ends normally. Defaults to True.
            Only the backup files are deleted (and ``backup_dir`` when that leaves it
            empty), never other files in the directory.

    Raises:
        ValueError: an empty or non-path ``backup_dir``, or one that is an existing file;
            a ``save_freq`` other than 'epoch'; a ``double_checkpoint`` or
            ``delete_checkpoint`` that is not a bool.
            An int ``save_freq`` is refused because a mid-epoch backup cannot be resumed
            exactly: fit would need the position in the epoch's shuffled batch order and
            the epoch's running metrics, which it does not back up, so the resumed run
            would silently differ from the uninterrupted one.

    Example:
        >>> class Interrupt(Callback):
        ...     def on_epoch_begin(self, epoch, logs=None):
        ...         if epoch == 4:
        ...             raise RuntimeError("Interrupting!")
        >>> backup = BackupAndRestore(backup_dir="/tmp/backup")
        >>> try:
        ...     model.fit(x, y, epochs=10, callbacks=[backup, Interrupt()], verbose=0)
        ... except RuntimeError:
        ...     pass
        >>> history = model.fit(x, y, epochs=10, callbacks=[backup], verbose=0)
        >>> len(history.history["loss"])   # epochs 5 to 10
        6
    """

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False,
                 delete_checkpoint=True):
        super().__init__()
        self.backup_dir = check_path("BackupAndRestore", "backup_dir", backup_dir,
                                     directory=True)
        self.save_freq = _check_save_freq(save_freq)
        self.double_checkpoint = check_flag("BackupAndRestore", "double_checkpoint",
                                            double_checkpoint)
        self.delete_checkpoint = check_flag("BackupAndRestore", "delete_checkpoint",
                                            delete_checkpoint)
        self.backup_path = os.path.join(self.backup_dir, _BACKUP_NAME)
        self.previous_backup_path = os.path.join(self.backup_dir, _PREVIOUS_NAME)

    def on_train_begin(self, logs=None):
        latest = os.path.lexists(self.backup_path)
        previous = self.double_checkpoint and os.path.lexists(self.previous_backup_path)
        if not (latest or previous):
            return
        # (minidl.saving loads on first use, not with `import minidl`.)
        from minidl.saving.format import InvalidModelFileError
        from minidl.saving.model_io import restore_backup
        try:
            if not latest:
                raise FileNotFoundError(f"{self.backup_path} is missing")
            epoch = restore_backup(self.model, self.backup_path)
        except (InvalidModelFileError, FileNotFoundError) as error:
            if not previous:
                # Starting over instead would silently throw away the interrupted run's work.
                raise InvalidModelFileError(
                    f"{error} BackupAndRestore found this backup of an interrupted fit and "
                    f"cannot resume from it; repair it, or delete it to train from the "
                    f"start.") from None
            warnings.warn(f"BackupAndRestore cannot resume from the latest backup ({error}); "
                          f"resuming from the one before it, {self.previous_backup_path}.",
                          stacklevel=2)
            try:
                epoch = restore_backup(self.model, self.previous_backup_path)
            except InvalidModelFileError as previous_error:
                raise InvalidModelFileError(
                    f"{previous_error} BackupAndRestore cannot resume from either backup of "
                    f"the interrupted fit (the latest: {error}); repair one, or delete both "
                    f"to train from the start.") from None
            # The good backup becomes the latest again, so that the next epoch's rename
            # keeps it rather than the damaged one.
            os.replace(self.previous_backup_path, self.backup_path)
        self.model._initial_epoch = epoch   # read by fit right after on_train_begin

    def on_epoch_end(self, epoch, logs=None):
        from minidl.distributed.comm import is_writer
        from minidl.saving.model_io import save_backup
        if not is_writer():   # data-parallel training: rank 0 alone writes, all ranks read
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint and os.path.lexists(self.backup_path):
            # A rename, atomic: at any moment one of the two files holds a whole backup.
            os.replace(self.backup_path, self.previous_backup_path)
        save_backup(self.model, self.backup_path, epoch + 1)

    def on_train_end(self, logs=None):
        from minidl.distributed.comm import is_writer
        if not self.delete_checkpoint or not is_writer():
            return
        from minidl.saving.format import remove_stale_temporaries
        for path in (self.backup_path, self.previous_backup_path) if self.double_checkpoint \
                else (self.backup_path,):
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
            # Temporaries of backups killed before their rename (see
            # saving.format.atomic_write) are ours too; nothing else in the directory is
            # touched.
            remove_stale_temporaries(path)
        try:
            os.rmdir(self.backup_dir)
        except OSError:   # not empty (the user's files), or already gone
            pass


def _check_save_freq(save_freq):
    if isinstance(save_freq, str) and save_freq == "epoch":
        return save_freq
    if isinstance(save_freq, numbers.Integral) and not isinstance(save_freq, bool):
        raise ValueError(f"BackupAndRestore: save_freq must be 'epoch'; received "
                         f"save_freq={save_freq!r}. Backing up every that many batches is not "
                         f"supported: a backup taken inside an epoch cannot be resumed "
                         f"exactly, as fit does not back up the position in the epoch's "
                         f"shuffled batch order nor the epoch's running metrics.")
    raise ValueError(f"BackupAndRestore: save_freq must be 'epoch'; received "
                     f"save_freq={save_freq!r}.")
