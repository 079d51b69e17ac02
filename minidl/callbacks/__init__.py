"""Callbacks: hooks into fit/evaluate/predict, as in ``keras.callbacks``.

    model.fit(x, y, validation_split=0.1, callbacks=[
        EarlyStopping(patience=3, restore_best_weights=True),
        ReduceLROnPlateau(factor=0.5, patience=2),
        CSVLogger("training.csv"),
    ])
"""
from minidl.callbacks.backup_and_restore import BackupAndRestore
from minidl.callbacks.callback import Callback, CallbackList, History, ProgbarLogger
from minidl.callbacks.csv_logger import CSVLogger
from minidl.callbacks.lambda_callback import LambdaCallback
from minidl.callbacks.model_checkpoint import ModelCheckpoint
from minidl.callbacks.monitor import (EarlyStopping, LearningRateScheduler, ReduceLROnPlateau,
                                      TerminateOnNaN)
from minidl.callbacks.tensorboard import TensorBoard
from minidl.utils.progbar import Progbar

__all__ = ["BackupAndRestore", "Callback", "CallbackList", "CSVLogger", "EarlyStopping",
           "History", "LambdaCallback", "LearningRateScheduler", "ModelCheckpoint", "Progbar",
           "ProgbarLogger", "ReduceLROnPlateau", "TensorBoard", "TerminateOnNaN"]
