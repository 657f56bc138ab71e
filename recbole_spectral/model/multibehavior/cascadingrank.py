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

Implementation (the same iterates, computed as increments): with x = (r_u, r_i), M = [[0, Ã_b], [Ã_b^T, 0]]
and f = α q + β c, the iteration is x^{t+1} = γ M x^t + f, so its change δ^t = x^{t+1} - x^t obeys

    δ^0 = γ M q + f - q,     δ^t = γ M δ^{t-1},     x^{t+1} = x^t + δ^t,

and a user stops at the first t with ||δ^t||_1 <= ``tolerance`` with x^{t+1} — the iterate the direct
form stops at (equal up to float rounding; ``tests/test_mb_baselines.py`` checks the rankings against the
direct form). Each step is one sparse × dense product per side (γ Ã_b stored once) and one accumulation —
no constant term to add and no difference to form. Users are iterated together as the columns of
n × B blocks; B is chosen so one block stays in cache (``_BLOCK_ENTRIES`` node-values; on taobao-15k 128
columns ran 1.9x faster than 700), and a block's first step γ M q comes from sparse products of the queries
(one-hot users, sparse item queries) instead of a dense step; a user that converges gets a zero increment (it
stays zero, so its iterate is frozen), and once half of a block has converged those users leave it. With
several torch threads the blocks run one per thread, each product single-threaded. Nothing is cached across
batches (a full score matrix is users × items).

Departures from the public code:
- convergence is tested per user (each user's L1 change <= ``tolerance``; a converged user's scores are
  frozen), not on the mean change over a batch of 1024 users, so a user's scores do not depend on which
  users share its batch (full_sort_predict == predict);
- isolated users/items get zero rows in Ã_b and q (the public code adds 1e-4 to zero degrees, which
  multiplies only zero entries);
- the target behavior is the dataset's training target: on this plugin's converted taobao-15k that is
  the training buys minus one held-out validation buy per user (the public code uses all 92,180 buys).
"""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp
import torch

from recbole_spectral.errors import ConfigError
from recbole_spectral.hyperparameters import Float, Int
from recbole_spectral.layers.csr import CSRRows
from recbole_spectral.model.base import TrainingFreeRecommender


# node values (users + items) x block columns per block: 2**22 float32 = 16 MiB, so a block's iterates stay in
# cache (at 27k nodes 128 columns per block ran 1.9x faster than 700)
_BLOCK_ENTRIES = 2 ** 22


def _inverse(values, power):
    with np.errstate(divide="ignore"):
        return np.where(values > 0, values.astype(np.float64) ** power, 0.0)


def _csr32(matrix, device):
    """A scipy matrix as a torch CSR tensor with int32 indices (int64 ones are converted on every product)."""
    m = sp.csr_matrix(matrix, dtype=np.float32)
    m.sum_duplicates()
    m.sort_indices()
    return torch.sparse_csr_tensor(torch.from_numpy(m.indptr.astype(np.int32)), torch.from_numpy(m.indices.astype(np.int32)),
                                   torch.from_numpy(m.data), m.shape, device=device)


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

        # caches: per behavior γ Ã_b and γ Ã_b^T (torch CSR), the row-normalised A_b (item queries) and, in scipy CSR,
        # both again for the first step of a block, whose inputs (the queries) are sparse
        self.propagation, self.propagation_t, self.item_queries, self.sparse_steps = [], [], [], []
        for behavior in self.behaviors:
            a = sp.csr_matrix(dataset.behavior_matrix(behavior), dtype=np.float32)
            du = np.asarray(a.sum(axis=1)).ravel()
            di = np.asarray(a.sum(axis=0)).ravel()
            a_tilde = sp.diags(_inverse(du, -0.5)) @ a @ sp.diags(_inverse(di, -0.5)) * self.gamma
            self.propagation.append(_csr32(a_tilde, self.device))
            self.propagation_t.append(_csr32(a_tilde.T, self.device))
            queries = (sp.diags(_inverse(du, -1.0)) @ a).tocsr().astype(np.float32)
            self.item_queries.append(CSRRows(queries, self.device))
            self.sparse_steps.append((a_tilde.tocsr().astype(np.float32), queries))

    def _first_step(self, b, users):
        """γ M q for the users' queries q = (e_u, q_i^b), from sparse products: γ Ã_b q_i^b = column u of
        γ Ã_b (D_u^{-1} A_b)^T and γ Ã_b^T e_u = row u of γ Ã_b (a dense product would cost a full step)."""
        step, queries = self.sparse_steps[b]
        rows = users.cpu().numpy()
        to_users = torch.from_numpy((queries[rows] @ step.T).toarray().T.copy())
        to_items = torch.from_numpy(step[rows].toarray().T.copy())
        return to_users.to(users.device), to_items.to(users.device)

    def _stage(self, b, users, q_u, q_i, c_u, c_i):
        """Power iteration of behavior b for ``users``, the columns of the n_users x B and n_items x B blocks, in
        increment form (module docstring); each column stops at its own first ||δ^t||_1 <= tolerance."""
        step, step_t = self.propagation[b], self.propagation_t[b]  # γ Ã_b and γ Ã_b^T
        d_u, d_i = self._first_step(b, users)  # δ^0 = γ M q + f - q
        d_u += self.alpha * q_u + self.beta * c_u - q_u
        d_i += self.alpha * q_i + self.beta * c_i - q_i
        x_u, x_i = q_u + d_u, q_i + d_i  # x^1
        ones_u = torch.ones(q_u.shape[0], device=q_u.device)
        ones_i = torch.ones(q_i.shape[0], device=q_i.device)
        out_u = out_i = None  # allocated when converged columns leave the block
        active = torch.arange(q_u.shape[1], device=q_u.device)  # block column -> output column
        frozen = torch.zeros(q_u.shape[1], dtype=torch.bool, device=q_u.device)
        for t in range(self.max_iter):
            # ||δ^t||_1 per column (|δ|^T 1 is a matrix-vector product: far faster than a column reduction)
            residual = torch.abs(d_u).t() @ ones_u + torch.abs(d_i).t() @ ones_i
            done = ~frozen & ((residual <= self.tolerance) | (t == self.max_iter - 1))
            if bool(done.any()):
                frozen |= done
                if bool(frozen.all()):
                    break
                if 2 * int(frozen.sum()) >= len(frozen):  # half the block has converged: it leaves the block
                    if out_u is None:
                        out_u, out_i = torch.empty_like(q_u), torch.empty_like(q_i)
                    out_u[:, active[frozen]], out_i[:, active[frozen]] = x_u[:, frozen], x_i[:, frozen]
                    keep = ~frozen
                    active, frozen = active[keep], frozen[keep]
                    x_u, x_i, d_u, d_i = x_u[:, keep], x_i[:, keep], d_u[:, keep], d_i[:, keep]
                else:  # a zero increment stays zero: the converged columns keep x^{t+1} from here on
                    d_u.masked_fill_(done, 0.0)
                    d_i.masked_fill_(done, 0.0)
            d_u, d_i = torch.mm(step, d_i), torch.mm(step_t, d_u)  # δ^{t+1} = γ M δ^t
            x_u.add_(d_u)
            x_i.add_(d_i)
        if out_u is None:
            return x_u, x_i
        out_u[:, active], out_i[:, active] = x_u, x_i
        return out_u, out_i

    @torch.no_grad()
    def score_users(self, users):
        block = max(16, min(256, _BLOCK_ENTRIES // (self.n_users + self.n_items)))
        blocks = [users[i:i + block] for i in range(0, len(users), block)]
        threads = min(torch.get_num_threads(), len(blocks))
        if threads <= 1 or users.device.type != "cpu":
            return torch.cat([self._score_block(b) for b in blocks])
        # on CPU the blocks are independent: one block per thread, each product single-threaded (small products
        # split across threads spend their time waiting for each other); torch's thread count is restored after
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(threads) as pool:
                return torch.cat(list(pool.map(self._score_block, blocks)))
        finally:
            torch.set_num_threads(threads)

    def _score_block(self, users):
        batch = len(users)
        q_u = torch.zeros(self.n_users, batch, device=users.device)
        q_u[users, torch.arange(batch, device=users.device)] = 1.0
        c_u = c_i = None
        for b in range(len(self.behaviors)):
            q_i = self.item_queries[b].dense(users).T.contiguous()
            if b == 0:
                c_u, c_i = q_u, q_i
            c_u, c_i = self._stage(b, users, q_u, q_i, c_u, c_i)
        return c_i.T.contiguous()
