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


_NPY_MAGIC = b"\x93NUMPY"
_KNOWN_STARTS = (  # what a file that is not a .npy array often is
    (b"PK\x03\x04", "a zip archive, e.g. an .npz or a torch file"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x80", "a Python pickle"),
    (b"\x89HDF", "an HDF5 file"),
)
_DTYPE_KINDS = {"U": "text", "S": "bytes", "c": "complex numbers", "M": "dates", "m": "time spans",
                "V": "structured records", "O": "Python objects"}


def _not_npy_reason(head):
    if not head:
        return "it is empty"
    for magic, what in _KNOWN_STARTS:
        if head.startswith(magic):
            return f"it is {what}, starts with {magic!r}"
    return f"starts with {head[:16]!r}"


def _read_npy_header(handle):
    """(shape, fortran_order, dtype) of the .npy file open at its start (after the magic check)."""
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(handle)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(handle)
    return np.lib.format._read_array_header(handle, version)  # 3.0 (utf-8 field names): no public reader


def load_feature_matrix(path):
    """A 2-d finite numeric matrix from ``path`` (memory-mapped, never unpickled); DataError otherwise,
    saying what the file really is: not a .npy file at all, an object/pickled array, truncated, of a
    non-numeric dtype or of the wrong shape."""
    if not os.path.isfile(path):
        raise DataError(f"missing feature file {path}")
    expected = "expected a 2-d float array written by numpy.save"
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
            if not head.startswith(_NPY_MAGIC):
                raise DataError(f"{path} is not a .npy file ({_not_npy_reason(head)}): {expected}")
            handle.seek(0)
            try:
                shape, _, dtype = _read_npy_header(handle)
            except (ValueError, SyntaxError, EOFError) as err:
                reason = (str(err).splitlines() or [type(err).__name__])[0]
                raise DataError(f"{path} is a .npy file with an unreadable header ({reason}): {expected}") from err
            offset = handle.tell()
    except OSError as err:
        raise DataError(f"{path} cannot be read: {err.strerror or err}") from err
    if dtype.hasobject:
        raise DataError(f"{path} holds an object/pickled array (dtype {dtype}): {expected}")
    data_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    present = os.path.getsize(path) - offset
    if present < data_bytes:
        raise DataError(f"{path} is truncated: its header says shape {shape} of {dtype} ({data_bytes} bytes) "
                        f"but it holds {present} bytes of data")
    if dtype.kind not in _NUMERIC_KINDS:
        kind = _DTYPE_KINDS.get(dtype.kind, "not numbers")
        raise DataError(f"{path} has dtype {dtype} ({kind}): {expected}")
    if len(shape) != 2:
        raise DataError(f"{path} has shape {shape}: expected a 2-d array (items x dim)")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DataError(f"{path} is not a readable .npy array: {(str(err).splitlines() or [''])[0]}") from err
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
