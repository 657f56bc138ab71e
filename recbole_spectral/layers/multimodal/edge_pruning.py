"""Degree-sensitive edge pruning of a user–item interaction matrix (FREEDOM, Zhou & Shen 2023; used by
SSR's ``edge_keep_ratio``).

Each training epoch keeps round(keep_ratio · |E|) of the user–item edges, drawn without replacement with
probability ∝ 1/sqrt(d_u d_i) (d = degree in the full matrix), so edges between high-degree nodes are the
likeliest to go. The caller renormalises the kept matrix (D^{-1/2} A D^{-1/2} with the kept degrees).
"""
import numpy as np
import scipy.sparse as sp
import torch


def prune_edges(interactions, keep_ratio, generator=None):
    """Keep a fraction ``keep_ratio`` of the edges of ``interactions`` (scipy sparse, users × items),
    sampled without replacement ∝ 1/sqrt(d_u d_i); returns the kept edges as a binary scipy CSR matrix of
    the same shape. ``generator``: a ``torch.Generator`` (seeded sampling) or None (torch's global RNG).
    ``keep_ratio`` ≥ 1 returns the binarised input."""
    r = sp.coo_matrix(interactions)
    r = sp.coo_matrix((np.ones_like(r.data, dtype=np.float32), (r.row, r.col)), shape=r.shape)
    r.sum_duplicates()
    r.data[:] = 1.0
    n_edges = r.nnz
    n_keep = int(round(float(keep_ratio) * n_edges))
    if keep_ratio >= 1.0 or n_keep >= n_edges:
        return r.tocsr()
    user_degree = np.asarray(r.sum(axis=1)).ravel()
    item_degree = np.asarray(r.sum(axis=0)).ravel()
    weights = 1.0 / np.sqrt(user_degree[r.row] * item_degree[r.col])
    if n_keep <= 0:
        return sp.csr_matrix(r.shape, dtype=np.float32)
    kept = torch.multinomial(torch.as_tensor(weights, dtype=torch.float64), n_keep, replacement=False,
                             generator=generator).numpy()
    return sp.csr_matrix((np.ones(n_keep, dtype=np.float32), (r.row[kept], r.col[kept])), shape=r.shape)
