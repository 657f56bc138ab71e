"""Item-item modality kNN graphs (MMRec / FREEDOM style), built blockwise and cached on disk.

For item features X (n x d) of one modality:

    x̂_i = x_i / ||x_i||                                   (cosine; an all-zero row stays zero)
    A_ij = 1  if j is among the k most cosine-similar items of i (i itself included, as in FREEDOM)
    Â = D^{-1/2} A D^{-1/2},   D = diag(row sums of A)     (FREEDOM's compute_normalized_laplacian)

A row of X that is all zero (RecBole's padding row 0, items filled with zeros) is isolated: it gets no
neighbours and is nobody's neighbour. Every other row has exactly k_eff = min(k, #non-zero rows) edges,
so its entries equal 1/k_eff, as in FREEDOM.

The similarity is computed ``block_rows`` rows at a time (a block_rows x n slice, never the dense
n x n matrix), on the device of ``features`` when it is a torch tensor. ``cache_file`` (.npz, loaded with
``allow_pickle=False``) stores the edges together with n, k and a hash of the features, so a cache built
from other features or another k is rebuilt, never reused.
"""
import hashlib
import os
import tempfile
from logging import getLogger

import numpy as np
import torch

# similarity entries per block (block_rows x n); 2**24 float32 = 64 MiB
BLOCK_ENTRIES = 2 ** 24


def features_fingerprint(features):
    """A short hash of a feature matrix's float32 contents and shape (keys the on-disk cache)."""
    if isinstance(features, torch.Tensor):
        features = features.detach().to("cpu", torch.float32).numpy()
    array = np.ascontiguousarray(features, dtype=np.float32)
    digest = hashlib.blake2b(memoryview(array).cast("B"), digest_size=16)
    digest.update(repr(array.shape).encode())
    return digest.hexdigest()


def knn_edges(features, k, block_rows=None):
    """(rows, cols) int64 arrays of the top-k cosine neighbours of every non-zero row (self included)."""
    x = torch.as_tensor(features).detach().float()
    if x.dim() != 2:
        raise ValueError(f"features must be 2-d (items x dim), got shape {tuple(x.shape)}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n = x.shape[0]
    norms = x.norm(dim=1)
    valid = norms > 0
    n_valid = int(valid.sum())
    k_eff = min(int(k), n_valid)
    if k_eff == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    unit = x / norms.clamp_min(torch.finfo(torch.float32).tiny).unsqueeze(1)
    unit_t = unit.t().contiguous()
    invalid_cols = ~valid
    block = block_rows or max(1, min(n, BLOCK_ENTRIES // max(n, 1)))
    rows, cols = [], []
    with torch.no_grad():
        for start in range(0, n, block):
            end = min(start + block, n)
            keep = valid[start:end]
            if not bool(keep.any()):
                continue
            sim = unit[start:end] @ unit_t
            sim[:, invalid_cols] = float("-inf")
            top = torch.topk(sim, k_eff, dim=1, sorted=False).indices
            block_ids = torch.arange(start, end, device=x.device)[keep]
            rows.append(block_ids.repeat_interleave(k_eff).cpu())
            cols.append(top[keep].reshape(-1).cpu())
            del sim, top
    return torch.cat(rows).numpy(), torch.cat(cols).numpy()


def normalized_knn_values(rows, cols, n):
    """FREEDOM's edge weights of D^{-1/2} A D^{-1/2} for a binary A given by its edges (D = row sums)."""
    degree = np.bincount(rows, minlength=n).astype(np.float64)
    with np.errstate(divide="ignore"):
        inv_sqrt = np.where(degree > 0, degree ** -0.5, 0.0)
    return (inv_sqrt[rows] * inv_sqrt[cols]).astype(np.float32)


def _to_sparse(rows, cols, values, n, device):
    indices = torch.from_numpy(np.vstack([rows, cols]).astype(np.int64))
    values = torch.from_numpy(np.asarray(values, dtype=np.float32))
    return torch.sparse_coo_tensor(indices, values, (n, n), check_invariants=True).coalesce().to(device)


def _load_cache(cache_file, n, k, fingerprint):
    try:
        with np.load(cache_file, allow_pickle=False) as stored:
            if (int(stored["n"]) == n and int(stored["k"]) == k and str(stored["fingerprint"]) == fingerprint):
                return stored["rows"], stored["cols"], stored["values"]
    except (OSError, ValueError, KeyError) as err:
        getLogger().warning(f"kNN cache {cache_file} unreadable ({err}); rebuilding it")
        return None
    getLogger().info(f"kNN cache {cache_file} was built from other features or k; rebuilding it")
    return None


def _save_cache(cache_file, n, k, fingerprint, rows, cols, values):
    folder = os.path.dirname(os.path.abspath(cache_file))
    os.makedirs(folder, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=folder, suffix=".npz.tmp")
    os.close(handle)
    try:
        with open(tmp, "wb") as out:
            np.savez(out, n=np.int64(n), k=np.int64(k), fingerprint=np.str_(fingerprint),
                     rows=rows.astype(np.int32), cols=cols.astype(np.int32), values=values.astype(np.float32))
        os.replace(tmp, cache_file)  # atomic: a reader never sees a half-written cache
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def knn_graph(features, k, cache_file=None, block_rows=None):
    """The symmetric-normalised cosine top-k graph Â (n x n torch sparse COO, float32) of ``features``.

    ``features``: numpy array or torch tensor (n x d); the result lives on the tensor's device (CPU for
    numpy). ``cache_file``: optional .npz path; reused when n, k and the features' hash match.
    """
    device = features.device if isinstance(features, torch.Tensor) else torch.device("cpu")
    n = int(features.shape[0])
    fingerprint = features_fingerprint(features) if cache_file else None
    if cache_file and os.path.isfile(cache_file):
        cached = _load_cache(cache_file, n, int(k), fingerprint)
        if cached is not None:
            return _to_sparse(*cached, n, device)
    rows, cols = knn_edges(features, int(k), block_rows)
    values = normalized_knn_values(rows, cols, n)
    if cache_file:
        _save_cache(cache_file, n, int(k), fingerprint, rows, cols, values)
    return _to_sparse(rows, cols, values, n, device)
