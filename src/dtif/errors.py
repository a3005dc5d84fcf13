"""Errors raised by dtif. Each names the problem and the fix."""

from __future__ import annotations


class DtifError(Exception):
    """Base class of every error that dtif raises on purpose."""


class UnsupportedOpsError(DtifError):
    """The model holds operations that cannot be converted to a spiking network."""


class ConversionError(DtifError):
    """A conversion pass found a pattern that it cannot apply (e.g. a BN that cannot be folded)."""


class CalibrationError(DtifError):
    """Calibration data is missing, empty, of the wrong shape, or not finite."""


class InputError(DtifError, ValueError):
    """An argument or a tensor given to dtif is invalid (shape, dtype, NaN/Inf, range)."""


class DatasetError(DtifError):
    """A dataset file is missing or corrupt."""


class CheckpointError(DtifError):
    """A checkpoint is missing, corrupt, unsafe, or does not match its architecture."""


class OutputError(DtifError):
    """An output file cannot be written (directory missing or not writable, disk full).

    Writes are atomic: when this is raised, the file that was there before is unchanged.
    """
