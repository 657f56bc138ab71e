r"""
CascadingRank
################################################

Reference:
    Geonwoo Ko, Minseo Jeon and Jinhong Jung. "Personalized Ranking on Cascading Behavior Graphs for
    Accurate Multi-Behavior Recommendation." arXiv 2502.11335 (2025). Public code: geonwooko/CascadingRank
    (read to learn the method; this is an independent implementation).

Training-free. For each behavior b in funnel order (target last), with A_b the user x item matrix of b,
D_u^b and D_i^b its user and item degrees:

    Ã_b = (D_u^b)^{-1/2} A_b (D_i^b)^{-1/2}                        symmetric-normalised (smoothing)
    q_u = e_u,   q_i^b = A_b^T (D_u^b)^{-1} e_u                     queries of user u (items of u in b, 1/deg)

and, per user, a personalised ranking by power iteration from r_u = q_u, r_i = q_i^b:

    r_u ← γ Ã_b r_i   + α q_u   + β c_u
    r_i ← γ Ã_b^T r_u + α q_i^b + β c_i,          γ = 1 - α - β

until the L1 change of (r_u, r_i) is at most ``tolerance`` (or ``max_iter`` iterations). The cascade
(c_u, c_i) is the converged (r_u, r_i) of the previous behavior; for the first behavior it is its own
query (q_u, q_i^b). The score of item i for user u is r_i of the target behavior.

Implementation: the iteration runs for the users of a scoring batch at once (columns of n x B dense
blocks, sparse CSR products), so full-sort scoring is vectorised; nothing is cached across batches
(a full score matrix is users x items).

Departures from the public code:
- convergence is tested per user (each user's L1 change <= ``tolerance``; a converged user's scores are
  frozen), not on the mean change over a batch of 1024 users, so a user's scores do not depend on which
  users share its batch (full_sort_predict == predict);
- isolated users/items get zero rows in Ã_b and q (the public code adds 1e-4 to zero degrees, which
  multiplies only zero entries);
- the target behavior is the dataset's training target: on this plugin's converted taobao-15k that is
  the training buys minus one held-out validation buy per user (the public code uses all 92,180 buys).
"""
import numpy as np
import scipy.sparse as sp
import torch

from recbole_spectral.errors import ConfigError
from recbole_spectral.hyperparameters import Float, Int
from recbole_spectral.layers.csr import CSRRows
from recbole_spectral.layers.graph import to_torch_sparse
from recbole_spectral.model.base import TrainingFreeRecommender


def _inverse(values, power):
    with np.errstate(divide="ignore"):
        return np.where(values > 0, values.astype(np.float64) ** power, 0.0)


class CascadingRank(TrainingFreeRecommender):
    r"""Training-free cascading personalised ranking on the behavior graphs in funnel order."""

    dataset_kind = "multibehavior"
    hyperparameters = {
        "alpha": Float(low=0.0, high=1.0),
        "beta": Float(low=0.0, high=1.0),
        "tolerance": Float(low=0.0, low_open=True),
        "max_iter": Int(low=1),
    }

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # dataset facts

        # hyperparameters (alpha + beta <= 1 involves two keys, so it is checked here)
        self.alpha, self.beta = config["alpha"], config["beta"]
        if self.alpha + self.beta > 1.0 + 1e-9:
            raise ConfigError(f"config keys 'alpha' + 'beta' must be <= 1 (gamma = 1 - alpha - beta), "
                              f"got {self.alpha} + {self.beta}")
        self.gamma = 1.0 - self.alpha - self.beta
        self.tolerance = config["tolerance"]
        self.max_iter = config["max_iter"]

        # caches: per behavior Ã_b and Ã_b^T (torch CSR) and the row-normalised A_b (item queries)
        self.smoothing, self.smoothing_t, self.item_queries = [], [], []
        for behavior in self.behaviors:
            a = sp.csr_matrix(dataset.behavior_matrix(behavior), dtype=np.float32)
            du = np.asarray(a.sum(axis=1)).ravel()
            di = np.asarray(a.sum(axis=0)).ravel()
            a_tilde = (sp.diags(_inverse(du, -0.5)) @ a @ sp.diags(_inverse(di, -0.5))).tocsr().astype(np.float32)
            self.smoothing.append(to_torch_sparse(a_tilde, self.device).to_sparse_csr())
            self.smoothing_t.append(to_torch_sparse(a_tilde.T.tocsr(), self.device).to_sparse_csr())
            self.item_queries.append(CSRRows(sp.diags(_inverse(du, -1.0)) @ a, self.device))

    def _stage(self, b, q_u, q_i, c_u, c_i):
        """Power iteration for behavior b on n_users x B and n_items x B blocks; per-column convergence:
        a column (user) keeps the values of the iteration where its own L1 change first is <= tolerance."""
        graph, graph_t = self.smoothing[b], self.smoothing_t[b]
        fixed_u = self.alpha * q_u + self.beta * c_u
        fixed_i = self.alpha * q_i + self.beta * c_i
        r_u, r_i = q_u, q_i
        out_u = out_i = None  # allocated only when some columns converge before others
        done = torch.zeros(q_u.shape[1], dtype=torch.bool, device=q_u.device)
        for _ in range(self.max_iter):
            new_u = torch.addmm(fixed_u, graph, r_i, alpha=self.gamma)     # γ Ã r_i + α q_u + β c_u
            new_i = torch.addmm(fixed_i, graph_t, r_u, alpha=self.gamma)   # γ Ã^T r_u + α q_i + β c_i
            residual = (new_u - r_u).abs_().sum(0) + (new_i - r_i).abs_().sum(0)
            fresh = ~done & (residual <= self.tolerance)
            r_u, r_i = new_u, new_i
            if bool(fresh.any()):
                if out_u is None:
                    if bool(fresh.all()):  # every column converged together: nothing to freeze
                        return new_u, new_i
                    out_u, out_i = torch.empty_like(new_u), torch.empty_like(new_i)
                out_u[:, fresh], out_i[:, fresh] = new_u[:, fresh], new_i[:, fresh]
                done |= fresh
                if bool(done.all()):
                    return out_u, out_i
        if out_u is None:
            return r_u, r_i
        out_u[:, ~done], out_i[:, ~done] = r_u[:, ~done], r_i[:, ~done]  # max_iter reached
        return out_u, out_i

    @torch.no_grad()
    def score_users(self, users):
        batch = len(users)
        q_u = torch.zeros(self.n_users, batch, device=users.device)
        q_u[users, torch.arange(batch, device=users.device)] = 1.0
        c_u = c_i = None
        for b in range(len(self.behaviors)):
            q_i = self.item_queries[b].dense(users).T.contiguous()
            if b == 0:
                c_u, c_i = q_u, q_i
            c_u, c_i = self._stage(b, q_u, q_i, c_u, c_i)
        return c_i.T.contiguous()
