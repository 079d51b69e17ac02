"""Keras file formats: ``.keras`` archives, ``.weights.h5`` and legacy ``.h5`` files."""
