"""Graph building blocks shared by the models: bipartite user-item graphs, symmetric normalisation,
LightGCN-style propagation.

For an interaction matrix R (users x items) the bipartite adjacency is A = [[0, R], [R^T, 0]] over
n_users + n_items nodes (users first), and its symmetric normalisation is Â = D^{-1/2} A D^{-1/2}
(isolated nodes keep a zero row). Propagation computes E^(l+1) = Â E^(l).
"""
import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

AGGREGATIONS = ("sum", "mean", "last")


def bipartite_adjacency(interactions):
    """A = [[0, R], [R^T, 0]] for a users x items matrix R (binary, duplicates collapsed)."""
    r = sp.csr_matrix(interactions, dtype=np.float32, copy=True)  # a float32 CSR input would share its data array
    r.sum_duplicates()
    r.data[:] = 1.0
    return sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)


def sym_normalize(adjacency):
    """D^{-1/2} A D^{-1/2}; rows/columns of isolated nodes stay zero."""
    adjacency = sp.csr_matrix(adjacency, dtype=np.float32)
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    with np.errstate(divide="ignore"):
        inv_sqrt = np.where(degree > 0, degree ** -0.5, 0.0).astype(np.float32)
    d = sp.diags(inv_sqrt)
    return (d @ adjacency @ d).tocsr()


def to_torch_sparse(matrix, device=None):
    """A scipy sparse matrix as a coalesced torch sparse COO float32 tensor."""
    coo = sp.coo_matrix(matrix)
    indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(coo.data.astype(np.float32))
    return torch.sparse_coo_tensor(indices, values, coo.shape, device=device).coalesce()


def normalized_bipartite_graph(interactions, device=None):
    """Â of the user-item graph of ``interactions`` as a torch sparse tensor."""
    return to_torch_sparse(sym_normalize(bipartite_adjacency(interactions)), device)


class _SymmetricSpMM(torch.autograd.Function):
    """Â X for a symmetric sparse Â: the gradient Â^T G is Â G, so no transpose is built."""

    @staticmethod
    def forward(ctx, graph, dense):
        ctx.graph = graph
        return torch.sparse.mm(graph, dense)

    @staticmethod
    def backward(ctx, grad):
        return None, torch.sparse.mm(ctx.graph, grad)


def symmetric_spmm(graph, dense):
    """``graph @ dense`` for a symmetric sparse ``graph`` (COO or CSR); gradients flow to ``dense`` only.
    On CPU this is several times faster than ``torch.sparse.mm`` backward, which transposes the graph."""
    return _SymmetricSpMM.apply(graph, dense)


class _FixedSpMM(torch.autograd.Function):
    """S X with S fixed: the gradient Sᵀ G uses a transpose stored once."""

    @staticmethod
    def forward(ctx, graph, graph_t, dense):
        ctx.graph_t = graph_t
        return torch.sparse.mm(graph, dense)

    @staticmethod
    def backward(ctx, grad):
        return None, None, torch.sparse.mm(ctx.graph_t, grad)


class FixedSparse:
    """A fixed (not learned) sparse matrix S kept in CSR together with its transpose, so that ``S @ X`` and
    its gradient Sᵀ G are CSR products (on CPU several times faster than COO, and no transpose per step).
    A plain object: never a parameter or buffer, never in a checkpoint."""

    def __init__(self, matrix):
        coo = matrix.coalesce()
        self.shape = tuple(coo.shape)
        self.csr = coo.to_sparse_csr()
        self.csr_t = coo.t().coalesce().to_sparse_csr()

    def __matmul__(self, dense):
        return _FixedSpMM.apply(self.csr, self.csr_t, dense)

    def to_dense(self):
        return self.csr.to_dense()


def propagate(graph, embeddings, n_layers, aggregation="sum", l2_normalize=False, include_input=True,
              symmetric=False):
    """LightGCN propagation E^(l+1) = Â E^(l), layer outputs aggregated.

    ``aggregation``: ``sum`` or ``mean`` over layers (the input layer included when ``include_input``),
    or ``last`` (only E^(L)). ``l2_normalize`` row-normalises each propagated layer (SpectraMB's code).
    ``symmetric``: ``graph`` is symmetric (e.g. a normalised bipartite graph): use :func:`symmetric_spmm`.
    """
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    layers = [embeddings] if include_input else []
    current = embeddings
    for _ in range(n_layers):
        current = symmetric_spmm(graph, current) if symmetric else torch.sparse.mm(graph, current)
        if l2_normalize:
            current = F.normalize(current, p=2, dim=1)
        layers.append(current)
    if aggregation == "last" or not layers:
        return current
    stacked = torch.stack(layers, dim=0)
    return stacked.sum(0) if aggregation == "sum" else stacked.mean(0)
