"""Item-item modality kNN graphs (MMRec / FREEDOM style), built blockwise and cached on disk.

For item features X (n x d) of one modality:

    x̂_i = x_i / ||x_i||                                   (cosine; an all-zero row stays zero)
    A_ij = 1  if j is among the k most cosine-similar items of i (i itself included, as in FREEDOM)
    Â = D^{-1/2} A D^{-1/2},   D = diag(row sums of A)     (FREEDOM's compute_normalized_laplacian)

A row of X that is all zero (RecBole's padding row 0, items filled with zeros) is isolated: it gets no
neighbours and is nobody's neighbour. Every other row has exactly k_eff = min(k, #non-zero rows) edges,
so its entries equal 1/k_eff, as in FREEDOM.

The similarity is computed in block_rows x block_rows tiles of its upper triangle (never the dense n x n
matrix) with a running top-k per row, on the device of ``features`` when it is a torch tensor.
``cache_file`` (.npz, loaded with ``allow_pickle=False``) stores the edges together with n, k, a hash
of the features and a checksum of the key and the edges, so a cache built from other features or another
k, or whose arrays were edited or damaged after it was written, is rebuilt (with a log line), never reused.
It is written under a unique temporary name and renamed into place, so processes building the same cache
at once leave one complete file.

Catalogue scale (``method``): the exact graph costs O(n²·d) — 70 s at 18k items × 4,096-d, about an hour at
100k, weeks at 1M. ``approximate`` builds the same top-k lists with faiss (the optional ``scale`` extra) on the
unit rows by inner product: an HNSW graph (M = 32) up to ``HNSW_MAX_ITEMS`` items, above that an inverted file
of 4·√n k-means cells (no graph links to hold in memory), searched with ``nprobe`` cells. Each row keeps
itself (as the exact graph does: cos(x, x) = 1 is the maximum), zero rows stay isolated. Its recall@k against
the exact lists of ``RECALL_SAMPLE`` random rows (brute force, n·d per row) is measured at build time and
logged. ``auto`` is exact up to ``exact_max_items`` items, approximate above. The cache key names the method
(the exact graph keeps its key), so a graph is never reused for the other method.
"""
import hashlib
import math
import os
import tempfile
import zipfile
from logging import getLogger

import numpy as np
import torch

# similarity entries per tile (block_rows x block_rows = 2048 x 2048); 2**22 float32 = 16 MiB
BLOCK_ENTRIES = 2 ** 22
KNN_METHODS = ("exact", "approximate", "auto")
HNSW_MAX_ITEMS = 200_000  # above: IVF, whose build is a k-means (HNSW's insertion-by-search slows down with n)
RECALL_SAMPLE = 1000  # rows whose exact top-k the approximate graph is checked against


def features_fingerprint(features):
    """A short hash of a feature matrix's float32 contents and shape (keys the on-disk cache)."""
    if isinstance(features, torch.Tensor):
        features = features.detach().to("cpu", torch.float32).numpy()
    array = np.ascontiguousarray(features, dtype=np.float32)
    digest = hashlib.blake2b(memoryview(array).cast("B"), digest_size=16)
    digest.update(repr(array.shape).encode())
    return digest.hexdigest()


def _merge_topk(best_val, best_idx, start, scores, col_offset):
    """Fold the candidates ``scores`` (rows start.., columns col_offset..) into the running top-k."""
    end = start + scores.shape[0]
    k = best_val.shape[1]
    val, idx = torch.topk(scores, min(k, scores.shape[1]), dim=1, sorted=False)
    val = torch.cat([best_val[start:end], val], dim=1)
    idx = torch.cat([best_idx[start:end], idx + col_offset], dim=1)
    keep_val, keep = torch.topk(val, k, dim=1, sorted=False)
    best_val[start:end] = keep_val
    best_idx[start:end] = torch.gather(idx, 1, keep)


def knn_edges(features, k, block_rows=None):
    """(rows, cols) int64 arrays of the top-k cosine neighbours of every non-zero row (self included).

    The cosine matrix is symmetric, so only its block upper triangle is computed: each
    block_rows x block_rows tile S_IJ = diag(1/|x_I|) X_I X_J^T diag(1/|x_J|) (J >= I) updates the running
    top-k of the rows of I (from S_IJ) and of J (from S_IJ^T). That is half the products of a row-by-row
    pass; only one tile is in memory and the features are never copied (tiles are normalised instead).
    """
    x = torch.as_tensor(features).detach()
    if x.dtype != torch.float32:
        x = x.float()
    if x.dim() != 2:
        raise ValueError(f"features must be 2-d (items x dim), got shape {tuple(x.shape)}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n = x.shape[0]
    norms = x.norm(dim=1)
    valid = norms > 0
    k_eff = min(int(k), int(valid.sum()))
    if k_eff == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    inv_norm = torch.where(valid, 1.0 / norms.clamp_min(torch.finfo(torch.float32).tiny), torch.zeros_like(norms))
    block = int(block_rows or max(1, math.isqrt(BLOCK_ENTRIES)))
    best_val = torch.full((n, k_eff), float("-inf"), device=x.device)
    best_idx = torch.zeros((n, k_eff), dtype=torch.long, device=x.device)
    with torch.no_grad():
        for i0 in range(0, n, block):
            rows_i = x[i0:i0 + block]
            for j0 in range(i0, n, block):
                scores = rows_i @ x[j0:j0 + block].t()
                scores.mul_(inv_norm[i0:i0 + block].unsqueeze(1)).mul_(inv_norm[j0:j0 + block].unsqueeze(0))
                scores[~valid[i0:i0 + block]] = float("-inf")  # zero rows: nobody's neighbour
                scores[:, ~valid[j0:j0 + block]] = float("-inf")
                _merge_topk(best_val, best_idx, i0, scores, j0)
                if j0 != i0:  # topk is faster on contiguous rows
                    _merge_topk(best_val, best_idx, j0, scores.t().contiguous(), i0)
                del scores
    valid_ids = torch.nonzero(valid).squeeze(1)
    rows = valid_ids.repeat_interleave(k_eff)
    cols = best_idx[valid_ids].reshape(-1)
    return rows.cpu().numpy(), cols.cpu().numpy()


def choose_method(n, method, exact_max_items):
    """``exact`` or ``approximate`` for a catalogue of n items (``auto``: exact up to ``exact_max_items``)."""
    if method not in KNN_METHODS:
        raise ValueError(f"kNN method must be one of {KNN_METHODS}, got {method!r}")
    if method == "auto":
        return "exact" if n <= exact_max_items else "approximate"
    return method


def _faiss():
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def approximate_knn_edges(features, k, seed=2020):
    """(rows, cols, info) — the edges as :func:`knn_edges` returns them, from a faiss index on the unit rows;
    ``info``: ``index`` ("HNSW" or "IVF"), ``recall`` (mean recall@k of the lists of ``sampled`` random
    non-zero rows, at most ``RECALL_SAMPLE``, against their exact lists)."""
    faiss = _faiss()
    if faiss is None:
        raise ImportError("the approximate kNN graph needs faiss: pip install faiss-cpu (the 'scale' extra)")
    x = torch.as_tensor(features).detach().to("cpu", torch.float32)
    norms = x.norm(dim=1, keepdim=True)
    valid_ids = torch.nonzero(norms.squeeze(1) > 0).squeeze(1).numpy()
    k_eff = min(int(k), len(valid_ids))
    if k_eff == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, {"index": "none", "recall": 1.0, "sampled": 0}
    unit = np.ascontiguousarray((x[valid_ids] / norms[valid_ids]).numpy())
    n, d = unit.shape
    if n <= HNSW_MAX_ITEMS:
        index = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.add(unit)
        index.hnsw.efSearch = max(64, 4 * k_eff)
        kind = "HNSW"
    else:
        cells = int(4 * math.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, cells, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        index.train(unit[rng.choice(n, min(n, 64 * cells), replace=False)])
        index.add(unit)
        index.nprobe = 48
        kind = "IVF"
    _, found = index.search(unit, k_eff)
    # every row keeps itself (the exact graph's first neighbour); -1 (too few found) falls back to itself too
    own = np.arange(n)[:, None]
    found = np.where(found < 0, own, found)
    missing_self = ~(found == own).any(axis=1)
    found[missing_self, -1] = own[missing_self, 0]
    rng = np.random.default_rng(seed)
    sample = rng.choice(n, min(n, RECALL_SAMPLE), replace=False)
    hits, chunk, all_rows = 0, max(1, 2 ** 26 // n), torch.from_numpy(unit)
    for start in range(0, len(sample), chunk):  # brute force, a chunk of rows x all rows at a time
        part = sample[start:start + chunk]
        exact = torch.topk(all_rows[part] @ all_rows.T, k_eff, dim=1).indices.numpy()
        hits += sum(len(set(a) & set(e)) for a, e in zip(found[part], exact))
    rows = np.repeat(valid_ids, k_eff)
    cols = valid_ids[found.reshape(-1)]
    info = {"index": kind, "recall": hits / (len(sample) * k_eff), "sampled": len(sample)}
    return rows.astype(np.int64), cols.astype(np.int64), info


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


_CACHE_KEYS = ("n", "k", "fingerprint", "rows", "cols", "values", "checksum")


def cache_checksum(n, k, fingerprint, rows, cols, values):
    """Hash of a cache's key and edge arrays (as stored: int32 edges, float32 weights)."""
    digest = hashlib.blake2b(f"{int(n)}|{int(k)}|{fingerprint}".encode(), digest_size=16)
    for array, dtype in ((rows, np.int32), (cols, np.int32), (values, np.float32)):
        array = np.ascontiguousarray(array, dtype=dtype)
        digest.update(repr(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _load_cache(cache_file, n, k, fingerprint):
    """The cached (rows, cols, values), or None (with a log line saying why) when it cannot be trusted."""
    logger = getLogger()
    try:
        with np.load(cache_file, allow_pickle=False) as stored:
            missing = [key for key in _CACHE_KEYS if key not in stored.files]
            if missing:
                logger.warning(f"kNN cache {cache_file} has no {', '.join(missing)} (an older or foreign file); rebuilding it")
                return None
            if not (int(stored["n"]) == n and int(stored["k"]) == k and str(stored["fingerprint"]) == fingerprint):
                logger.info(f"kNN cache {cache_file} was built from other features or k; rebuilding it")
                return None
            rows, cols, values, checksum = stored["rows"], stored["cols"], stored["values"], str(stored["checksum"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        logger.warning(f"kNN cache {cache_file} unreadable ({err}); rebuilding it")
        return None
    if cache_checksum(n, k, fingerprint, rows, cols, values) != checksum:
        logger.warning(f"kNN cache {cache_file} does not match its checksum (edited or damaged); rebuilding it")
        return None
    return rows, cols, values


def _save_cache(cache_file, n, k, fingerprint, rows, cols, values):
    folder = os.path.dirname(os.path.abspath(cache_file))
    os.makedirs(folder, exist_ok=True)
    rows, cols, values = rows.astype(np.int32), cols.astype(np.int32), values.astype(np.float32)
    checksum = cache_checksum(n, k, fingerprint, rows, cols, values)
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=os.path.basename(cache_file) + ".", suffix=".tmp")
    os.close(handle)
    try:
        with open(tmp, "wb") as out:
            np.savez(out, n=np.int64(n), k=np.int64(k), fingerprint=np.str_(fingerprint),
                     rows=rows, cols=cols, values=values, checksum=np.str_(checksum))
        os.replace(tmp, cache_file)  # atomic: a reader never sees a half-written cache
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def knn_graph(features, k, cache_file=None, block_rows=None, method="exact", exact_max_items=50_000):
    """The symmetric-normalised cosine top-k graph Â (n x n torch sparse COO, float32) of ``features``.

    ``features``: numpy array or torch tensor (n x d); the result lives on the tensor's device (CPU for
    numpy). ``cache_file``: optional .npz path; reused when n, k, the method and the features' hash match.
    ``method``: ``exact`` | ``approximate`` | ``auto`` (module docstring).
    """
    device = features.device if isinstance(features, torch.Tensor) else torch.device("cpu")
    n = int(features.shape[0])
    method = choose_method(n, method, exact_max_items)
    if method == "approximate" and _faiss() is None:
        getLogger().warning(f"kNN graph of {n:,} items: faiss is not installed (pip install faiss-cpu, the 'scale' "
                            "extra), so it is built exactly, in O(n²·d)")
        method = "exact"
    fingerprint = None
    if cache_file:
        fingerprint = features_fingerprint(features) + ("" if method == "exact" else f":{method}")
    if cache_file and os.path.isfile(cache_file):
        cached = _load_cache(cache_file, n, int(k), fingerprint)
        if cached is not None:
            return _to_sparse(*cached, n, device)
    if method == "exact":
        rows, cols = knn_edges(features, int(k), block_rows)
    else:
        rows, cols, info = approximate_knn_edges(features, int(k))
        getLogger().info(f"approximate kNN graph (k={k}, {n:,} items, {info['index']}): recall@{k} "
                         f"{info['recall']:.4f} against the exact lists of {info['sampled']:,} random rows")
    values = normalized_knn_values(rows, cols, n)
    if cache_file:
        _save_cache(cache_file, n, int(k), fingerprint, rows, cols, values)
    return _to_sparse(rows, cols, values, n, device)
