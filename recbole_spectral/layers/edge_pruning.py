r"""Degree-sensitive edge pruning of a user–item graph (FREEDOM, Zhou & Shen, MM'23, §3.2.1).

For the E user–item edges (u, i) of a binary interaction matrix R, with degrees d_u and d_i in R:

    p_(u,i) ∝ 1 / √(d_u d_i)                       sampling weight of an edge (high-degree pairs are pruned first)
    K = ⌊E · keep_ratio⌋ edges drawn without replacement with these weights
    R̃ = the kept edges;  Â_kept = [[0, D̃_u^{-1/2} R̃ D̃_i^{-1/2}], [ · ᵀ, 0]]
                                                   renormalised with the degrees d̃ of the *kept* graph

Sampling without replacement uses the Gumbel-top-k identity: the K largest keys
log p_e − log(−log U_e), U_e ~ Uniform(0, 1), are a draw of K edges without replacement with probabilities
∝ p_e (the same distribution as ``torch.multinomial(p, K, replacement=False)``, which FREEDOM's code calls, and
with no 2^24 category limit). The draw uses the given ``torch.Generator`` or torch's global generator, so it is
reproducible under RecBole's ``init_seed``. ``keep_ratio`` ≥ 1 gives the full normalised graph.

Used by FREEDOM (``sample``: the renormalised graph) and SSR's ``edge_keep_ratio`` (``sample_matrix``: the kept
edges, on which SSR builds its own operators). The result of ``sample`` is an (n_users + n_items)² symmetric
torch sparse tensor, users first, like
:func:`recbole_spectral.layers.graph.normalized_bipartite_graph`.
"""
import numpy as np
import scipy.sparse as sp
import torch


def bipartite_values(users, items, n_users, n_items):
    """1/√(d_u d_i) for every edge, degrees counted over the given edges."""
    d_u = torch.bincount(users, minlength=n_users).to(torch.float32)
    d_i = torch.bincount(items, minlength=n_items).to(torch.float32)
    return (d_u[users] * d_i[items]).rsqrt()


def bipartite_graph(users, items, values, n_users, n_items, device=None):
    """The symmetric (n_users + n_items)² sparse matrix with ``values`` on (u, n_users + i) and (n_users + i, u)."""
    rows = torch.cat([users, items + n_users])
    cols = torch.cat([items + n_users, users])
    n = n_users + n_items
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), torch.cat([values, values]), (n, n),
                                   device=device).coalesce()


class DegreeSensitiveEdgePruning:
    """Draws a pruned, renormalised user–item graph; one :meth:`sample` per training epoch.

    ``interactions``: scipy sparse users × items (duplicates collapsed, values ignored).
    ``keep_ratio``: share of edges kept (FREEDOM's ``1 − dropout``).
    """

    def __init__(self, interactions, keep_ratio, device=None):
        coo = sp.coo_matrix(interactions, dtype=np.float32)
        coo.sum_duplicates()
        self.n_users, self.n_items = coo.shape
        self.users = torch.from_numpy(coo.row.astype(np.int64))
        self.items = torch.from_numpy(coo.col.astype(np.int64))
        self.keep_ratio = float(keep_ratio)
        self.device = device
        self.weights = bipartite_values(self.users, self.items, self.n_users, self.n_items)
        self.n_kept = min(len(self.users), int(len(self.users) * self.keep_ratio))

    @property
    def n_edges(self):
        return len(self.users)

    def full_graph(self):
        """Â of every edge (symmetric normalisation)."""
        return bipartite_graph(self.users, self.items, self.weights, self.n_users, self.n_items, self.device)

    def sample_edges(self, generator=None):
        """Indices of the K kept edges (a draw without replacement, probabilities ∝ 1/√(d_u d_i))."""
        if self.n_kept >= self.n_edges:
            return torch.arange(self.n_edges)
        uniform = torch.rand(self.n_edges, generator=generator).clamp_(min=1e-20, max=1.0 - 1e-7)
        keys = self.weights.log() - (-uniform.log()).log()
        return torch.topk(keys, self.n_kept, sorted=False).indices

    def sample_matrix(self, generator=None):
        """The kept edges as a binary scipy CSR matrix (users × items), for callers that renormalise or
        build other operators on the pruned graph themselves."""
        kept = self.sample_edges(generator).numpy()
        ones = np.ones(len(kept), dtype=np.float32)
        return sp.csr_matrix((ones, (self.users.numpy()[kept], self.items.numpy()[kept])), shape=(self.n_users, self.n_items))

    def sample(self, generator=None):
        """The pruned graph, renormalised on the kept edges' degrees."""
        if self.n_kept >= self.n_edges:
            return self.full_graph()
        kept = self.sample_edges(generator)
        users, items = self.users[kept], self.items[kept]
        values = bipartite_values(users, items, self.n_users, self.n_items)
        return bipartite_graph(users, items, values, self.n_users, self.n_items, self.device)
