"""User-facing errors: one line that names the file or key and what was expected."""


class SpectralError(Exception):
    """An error caused by the user's input (model/dataset names, data files, config values).

    The CLI prints ``str(error)`` as a single line and exits non-zero, without a traceback.
    """


class ConfigError(SpectralError):
    """A config key holds a value of the wrong type or outside its allowed range."""


class DataError(SpectralError):
    """A data file is missing, malformed or inconsistent with the dataset's properties."""


class CheckpointError(SpectralError):
    """A checkpoint file is missing, truncated, not a plugin checkpoint, or of another model/dataset."""


def one_line(err):
    """``Type: first line of the message`` — how a failed run or trial is recorded."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")
