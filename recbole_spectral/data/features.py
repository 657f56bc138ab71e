"""Reading per-modality item feature files and their item sidecars (shared by the mmrec converter and
the multimodal Dataset). Files are memory-mapped and never unpickled; every problem is one line naming
the file and what was expected.
"""
import os

import numpy as np

from recbole_spectral.errors import DataError

_NUMERIC_KINDS = "biuf"


def feature_file(data_path, dataset, modality):
    return os.path.join(data_path, f"{dataset}.{modality}.npy")


def sidecar_file(data_path, dataset, modality):
    """The sidecar naming the item token of each feature row: per-modality if present, else shared."""
    own = os.path.join(data_path, f"{dataset}.{modality}.items.txt")
    return own if os.path.isfile(own) else os.path.join(data_path, f"{dataset}.feature_items.txt")


def read_sidecar(path):
    """Item tokens, one per line (trailing blank lines ignored); one-line DataError on bad content."""
    if not os.path.isfile(path):
        raise DataError(f"missing item sidecar {path}: expected one item token per feature row")
    with open(path, encoding="utf-8") as handle:
        tokens = [line.strip() for line in handle.read().splitlines()]
    while tokens and not tokens[-1]:
        tokens.pop()
    for line, token in enumerate(tokens, 1):
        if not token:
            raise DataError(f"{path} line {line}: empty item token (expected one token per feature row)")
    if len(set(tokens)) != len(tokens):
        seen = set()
        for line, token in enumerate(tokens, 1):
            if token in seen:
                raise DataError(f"{path} line {line}: item token '{token}' repeated (expected each item once)")
            seen.add(token)
    return tokens


def load_feature_matrix(path):
    """A 2-d finite numeric matrix from ``path`` (memory-mapped, never unpickled); DataError otherwise."""
    if not os.path.isfile(path):
        raise DataError(f"missing feature file {path}")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        if any(hint in str(err) for hint in ("allow_pickle", "Object arrays", "Python objects")):
            raise DataError(f"{path} holds an object/pickled array: expected a 2-d float array") from err
        raise DataError(f"{path} is not a readable .npy array: {err}") from err
    except OSError as err:
        raise DataError(f"{path} is not a readable .npy file: {err}") from err
    if not isinstance(array, np.ndarray):
        raise DataError(f"{path} is not a single .npy array: expected a 2-d float array")
    if array.dtype.kind not in _NUMERIC_KINDS:
        raise DataError(f"{path} has dtype {array.dtype}: expected a 2-d float array")
    if array.ndim != 2:
        raise DataError(f"{path} has shape {array.shape}: expected a 2-d array (items x dim)")
    return array


def iter_row_chunks(array, path, chunk_rows=2048):
    """(start, rows) chunks of the validated memory-map ``array`` of ``path``, read with plain file reads.

    Reading through the file (not the map) keeps the source's pages out of the process's resident set,
    so peak memory is the aligned float32 matrix plus one chunk.
    """
    if not array.flags.c_contiguous or not isinstance(array, np.memmap):
        for start in range(0, array.shape[0], chunk_rows):
            yield start, np.asarray(array[start:start + chunk_rows])
        return
    row_items = int(np.prod(array.shape[1:]))
    with open(path, "rb") as handle:
        handle.seek(array.offset)
        for start in range(0, array.shape[0], chunk_rows):
            count = min(chunk_rows, array.shape[0] - start)
            rows = np.fromfile(handle, dtype=array.dtype, count=count * row_items)
            if rows.size != count * row_items:
                raise DataError(f"{path} is truncated: expected {array.shape[0]} rows of {row_items} values")
            yield start, rows.reshape(count, *array.shape[1:])


def first_non_finite_row(rows):
    """Index of the first row of ``rows`` holding NaN/inf, or None."""
    if rows.dtype.kind != "f":
        return None
    finite = np.isfinite(rows)
    if finite.all():
        return None
    return int(np.flatnonzero(~finite.all(axis=1))[0])


def check_finite(array, path, tokens=None):
    """Raise DataError naming the first row holding NaN/inf (read in chunks: no full-size mask)."""
    for start, rows in iter_row_chunks(array, path):
        bad = first_non_finite_row(rows)
        if bad is not None:
            row = start + bad
            item = f" (item '{tokens[row]}')" if tokens is not None else ""
            raise DataError(f"{path} row {row}{item} holds NaN or inf: expected finite values")
