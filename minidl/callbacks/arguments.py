"""Checks of callback arguments that several callbacks take: the paths they write to
(ModelCheckpoint's filepath, TensorBoard's log_dir, BackupAndRestore's backup_dir) and their
True/False switches. Both raise ValueError naming the callback and the argument."""
import os


def check_path(owner, name, value, directory=False):
    """``value`` as a str path; ValueError naming ``name`` unless it is a non-empty str or
    os.PathLike (bytes are refused), or, for a ``directory``, when it is an existing file.

    Args:
        owner: the callback's class name, for messages.
        name: the argument's name.
        value: the argument.
        directory: the path names a directory, created later if missing.
    """
    try:
        path = os.fspath(value)
    except TypeError:
        path = None
    if not isinstance(path, str) or not path:
        kind = " of a directory" if directory else ""
        raise ValueError(f"{owner}: {name} must be a non-empty path (a str or os.PathLike)"
                         f"{kind}; received {name}={value!r}.")
    if directory and os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{owner}: {name} must be a directory (or not exist yet); received "
                         f"{name}={path!r}, which is a file.")
    return path


def check_flag(owner, name, value):
    """``value`` if it is True or False; ValueError naming ``name`` otherwise."""
    if not isinstance(value, bool):
        raise ValueError(f"{owner}: {name} must be True or False; received {name}={value!r}.")
    return value
