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
direct form). Users are iterated together as the columns of n × B blocks (B from ``_BLOCK_ENTRIES``), and
each block works where the arithmetic is:

- on each behavior's own nodes: users and items with no pair in b have zero rows and columns in M, so from
  t = 1 on their δ is zero and their x stays f; the iteration runs on the active nodes alone (at 50k × 40k:
  cart 43k + 28k and buy 36k + 17k of the 90k nodes), isolated ones count in ||δ^0||_1 only, and the cascade
  moves from one behavior's node layout to the next's with one gather;
- x^1 = γ M q + f from one product of γ Ã_b with the dense item queries accumulated into f, and rows of γ Ã_b;
- per step one sparse × dense product per side (γ Ã_b and its transpose stored once, int32 indices) written
  into reused arrays (``torch.mm`` into a fresh array spent 40% of its time zero-filling and copying it), and
  one accumulation; the target behavior accumulates r_i alone;
- the L1 test: |1^T δ| <= ||δ||_1 is one matrix-vector product per side; only when it is at most the
  tolerance for some running user is ||δ||_1 formed (|δ| into a reused array, then a product with 1);
- a user that converges gets a zero increment (it stays zero, so its iterate is frozen), and once half of a
  block has converged those users leave it.

With several torch threads the blocks run one per thread, each product single-threaded (two threads on one
block's products ran 4–7x slower on a loaded 2-core machine). Nothing is cached across batches (a full score
matrix is users × items). Cost: about 2·T·nnz(A_b) multiply-adds per user and behavior (T ≈ 5 at the
published tolerance), bound by memory traffic: at 50k users × 40k items (1.2M pairs) one full evaluation took
394 s of CPU on a loaded 2-core machine, the products alone ≈ 150 s at their best rate
(``benchmarks/results/scale.md``).

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
from queue import SimpleQueue

import numpy as np
import scipy.sparse as sp
import torch

from recbole_spectral.errors import ConfigError
from recbole_spectral.hyperparameters import Float, Int
from recbole_spectral.layers.csr import CSRRows
from recbole_spectral.model.base import TrainingFreeRecommender


# node values (users + items) x block columns per block: 2**20 float32 = 4 MiB per array, so the ten arrays a block
# works on stay within a few tens of MiB (at 90k nodes on a loaded 2-core machine, 2 threads: 16 columns ran ~5%
# faster than 23, and 8 or 48 columns ~1.3x slower than 24; at 27k nodes 38, 76 and 153 columns ran alike)
_BLOCK_ENTRIES = 2 ** 20


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


class _Scratch:
    """Reusable arrays of one worker: ``take(name, rows, cols)`` is a contiguous rows x cols view of a flat buffer
    kept under ``name`` (grown when too small) — fresh arrays each step cost page faults and zero-fills."""

    def __init__(self, device):
        self.device, self.flat = device, {}

    def take(self, name, rows, cols):
        if name not in self.flat or self.flat[name].numel() < rows * cols:
            self.flat[name] = torch.empty(rows * cols, device=self.device)
        return self.flat[name][:rows * cols].view(rows, cols)


class _BehaviorGraph:
    """One behavior's graph on its own nodes: the users and items with at least one pair in it ("active", in id
    order) come first, the isolated ones after (``order_*``: layout position -> id; ``inv_*``: id -> position)."""

    def __init__(self, a, gamma, device):
        du, di = np.asarray(a.sum(axis=1)).ravel(), np.asarray(a.sum(axis=0)).ravel()
        a_tilde = (sp.diags(_inverse(du, -0.5)) @ a @ sp.diags(_inverse(di, -0.5))).tocsr()
        act_u, act_i = np.flatnonzero(du > 0), np.flatnonzero(di > 0)
        self.n_u, self.n_i = len(act_u), len(act_i)
        self.order_u, self.inv_u = self._layout(act_u, du == 0, device)
        self.order_i, self.inv_i = self._layout(act_i, di == 0, device)
        step = (a_tilde[act_u][:, act_i] * gamma).tocsr()
        self.step, self.step_t = _csr32(step, device), _csr32(step.T, device)  # γ Ã_b and γ Ã_b^T on active nodes
        # rows of γ Ã_b by user id (zero rows for isolated users) and the item queries D_u^{-1} A_b, on active items
        self.step_rows = CSRRows((a_tilde[:, act_i] * gamma).tocsr(), device)
        self.queries = CSRRows((sp.diags(_inverse(du, -1.0)) @ a)[:, act_i].tocsr(), device)
        self.ones_u, self.ones_i = torch.ones(self.n_u, device=device), torch.ones(self.n_i, device=device)

    @staticmethod
    def _layout(active, isolated, device):
        order = np.concatenate([active, np.flatnonzero(isolated)])
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return torch.from_numpy(order).to(device), torch.from_numpy(inverse).to(device)


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

        # caches: per behavior its graph on its own nodes (γ Ã_b both ways, its rows and the item queries), and where
        # each node of a behavior's layout sits in the previous behavior's (the cascade moves layout to layout)
        self.graphs = [_BehaviorGraph(sp.csr_matrix(dataset.behavior_matrix(b), dtype=np.float32), self.gamma, self.device)
                       for b in self.behaviors]
        self.moves = [None] + [(before.inv_u[after.order_u], before.inv_i[after.order_i])
                               for before, after in zip(self.graphs, self.graphs[1:])]

    @torch.no_grad()
    def score_users(self, users, stages=False):
        """Scores of ``users`` (len(users) x n_items): r_i of the target behavior; with ``stages``, every behavior's
        r_i in funnel order (n_behaviors x len(users) x n_items; the last is the target's)."""
        block = max(16, min(256, _BLOCK_ENTRIES // (self.n_users + self.n_items)))
        threads = min(torch.get_num_threads(), -(-len(users) // block))
        parallel = threads > 1 and users.device.type == "cpu"
        scratch = SimpleQueue()  # one set of work arrays per worker, reused from block to block
        for _ in range(threads if parallel else 1):
            scratch.put(_Scratch(users.device))

        shape = (len(self.graphs), len(users), self.n_items) if stages else (len(users), self.n_items)
        scores = torch.empty(shape, device=users.device)

        def score_block(start):
            arrays = scratch.get()
            try:
                self._score_block(users[start:start + block], scores[..., start:start + block, :], arrays)
            finally:
                scratch.put(arrays)

        starts = range(0, len(users), block)
        if not parallel:
            for start in starts:
                score_block(start)
            return scores
        # on CPU the blocks are independent: one block per thread, each product single-threaded (small products
        # split across threads spend their time waiting for each other); torch's thread count is restored after
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(score_block, starts))
            return scores
        finally:
            torch.set_num_threads(threads)

    def _score_block(self, users, scores, scratch):
        """The block's scores, into ``scores`` (B x n_items, or n_behaviors x B x n_items for every behavior's):
        each behavior's result on every node (n x B, in that behavior's layout) is the next one's cascade."""
        z_u = z_i = None
        for b, (graph, move) in enumerate(zip(self.graphs, self.moves)):
            z = scratch.take(f"z{b % 2}_u", self.n_users, len(users)), scratch.take(f"z{b % 2}_i", self.n_items, len(users))
            self._stage(graph, move, users, z_u, z_i, *z, scratch, last=b == len(self.graphs) - 1)
            z_u, z_i = z
            if scores.dim() == 3:
                torch.index_select(z_i.t(), 1, graph.inv_i, out=scores[b])
        if scores.dim() == 2:
            torch.index_select(z_i.t(), 1, self.graphs[-1].inv_i, out=scores)

    def _stage(self, g, move, users, c_u, c_i, z_u, z_i, scratch, last):
        """Power iteration of one behavior for the block's users (its columns) in increment form (module docstring),
        on the behavior's node layout: from the cascade c_u, c_i (the previous behavior's result in its layout; None
        for the first behavior) to the result z_u, z_i (the last behavior: z_i only). Each column stops at its own
        first ||δ^t||_1 <= tolerance."""
        batch, device, n_u, n_i = len(users), users.device, g.n_u, g.n_i
        cols = torch.arange(batch, device=device)
        # f = α q + β c on every node, in the layout [active | isolated] (the first behavior's c is its query q)
        first = move is None
        if first:
            z_u.zero_()
            z_i.zero_()
        else:
            torch.index_select(c_u, 0, move[0], out=z_u).mul_(self.beta)
            torch.index_select(c_i, 0, move[1], out=z_i).mul_(self.beta)
        weight = self.alpha + self.beta if first else self.alpha
        own = g.inv_u[users]  # each user's own row (q_u = e_u)
        q_col, q_item, q_value = g.queries.entries(users)  # q_i: the user's items in b, 1/deg (all active)
        z_u[own, cols] += weight
        z_i.index_put_((q_item, q_col), q_value * weight, accumulate=True)
        # δ^0 = γ M q + f - q and x^1 = q + δ^0 on active nodes; γ M q = (γ Ã_b q_i, γ Ã_b^T e_u): one product with
        # the dense item queries, and the users' rows of γ Ã_b. Isolated nodes keep f from here on (M's rows and
        # columns are zero there), so only their share of ||δ^0||_1 is needed: f, less q_u on an isolated user's row.
        x_u, x_i = z_u[:n_u], z_i[:n_i]
        queries = scratch.take("a_i", n_i, batch).zero_()
        queries[q_item, q_col] = q_value
        x_u.addmm_(g.step, queries)
        r_col, r_item, r_value = g.step_rows.entries(users)
        x_i.index_put_((r_item, r_col), r_value, accumulate=True)
        d_u, d_i = scratch.take("d_u", n_u, batch).copy_(x_u), scratch.take("d_i", n_i, batch).copy_(x_i)
        inside = own < n_u
        d_u[own[inside], cols[inside]] -= 1.0
        d_i.index_put_((q_item, q_col), -q_value, accumulate=True)
        isolated = z_u[n_u:].abs().sum(0) + z_i[n_i:].abs().sum(0)
        if not bool(inside.all()):
            mine = z_u[own[~inside], cols[~inside]]
            isolated[~inside] += (mine - 1.0).abs() - mine.abs()

        next_u, next_i = scratch.take("n_u", n_u, batch), scratch.take("n_i", n_i, batch)
        abs_u, abs_i = scratch.take("a_u", n_u, batch), scratch.take("a_i", n_i, batch)
        residual, part = torch.empty(batch, device=device), torch.empty(batch, device=device)
        out_u, out_i = x_u, x_i  # the iterates move to smaller arrays once converged columns leave the block
        running = torch.ones(batch, dtype=torch.bool, device=device)
        column = cols  # block column -> stage column
        for t in range(self.max_iter):
            if t == self.max_iter - 1:
                done = running
            else:
                # |1^T δ| <= ||δ||_1 (one product, no |δ| to form): while it exceeds the tolerance for every running
                # column none has converged, and the exact norms are not needed
                torch.mv(d_u.t(), g.ones_u, out=residual).abs_()
                residual.add_(torch.mv(d_i.t(), g.ones_i, out=part).abs_())
                if t == 0:
                    residual.add_(isolated)
                done = None
                if bool((residual[running] <= self.tolerance).any()):
                    # ||δ^t||_1 per column (|δ|^T 1 as a matrix-vector product: far faster than a column reduction)
                    torch.mv(torch.abs(d_u, out=abs_u).t(), g.ones_u, out=residual)
                    residual.add_(torch.mv(torch.abs(d_i, out=abs_i).t(), g.ones_i, out=part))
                    if t == 0:
                        residual.add_(isolated)
                    done = running & (residual <= self.tolerance)
            if done is not None and bool(done.any()):
                running = running & ~done
                if not bool(running.any()):
                    break
                if 2 * int(running.sum()) <= len(running):  # half the block has converged: it leaves the block
                    stop, keep = torch.nonzero(~running).ravel(), torch.nonzero(running).ravel()
                    moved = x_i.data_ptr() != out_i.data_ptr()
                    if moved:
                        out_i.index_copy_(1, column[stop], x_i.index_select(1, stop))
                        if not last:
                            out_u.index_copy_(1, column[stop], x_u.index_select(1, stop))
                    k = len(keep)
                    new = [_fit(a, k) for a in (next_u, next_i, abs_u, abs_i)]
                    for source, target in zip((x_u, x_i, d_u, d_i), new):
                        if not (last and source is x_u):  # the last behavior's user iterate is not kept
                            torch.index_select(source, 1, keep, out=target)
                    spare_u, spare_i = (x_u, x_i) if moved else (scratch.take("e_u", n_u, k), scratch.take("e_i", n_i, k))
                    next_u, next_i, abs_u, abs_i = _fit(d_u, k), _fit(d_i, k), _fit(spare_u, k), _fit(spare_i, k)
                    x_u, x_i, d_u, d_i = new
                    residual, part = residual[:k], part[:k]
                    running, column = running[keep], column[keep]
                else:  # a zero increment stays zero: the converged columns keep x^{t+1} from here on
                    keep = running.to(d_u.dtype)
                    d_u.mul_(keep)
                    d_i.mul_(keep)
            next_u.addmm_(g.step, d_i, beta=0)  # δ^{t+1} = γ M δ^t
            next_i.addmm_(g.step_t, d_u, beta=0)
            d_u, next_u, d_i, next_i = next_u, d_u, next_i, d_i
            if not last:  # the last behavior's scores are r_i alone
                x_u.add_(d_u)
            x_i.add_(d_i)
        if x_i.data_ptr() != out_i.data_ptr():
            out_i.index_copy_(1, column, x_i)
            if not last:
                out_u.index_copy_(1, column, x_u)


def _fit(array, columns):
    """The first rows x ``columns`` entries of ``array``'s storage as a contiguous rows x columns array."""
    return array.reshape(-1)[:array.shape[0] * columns].view(array.shape[0], columns)
