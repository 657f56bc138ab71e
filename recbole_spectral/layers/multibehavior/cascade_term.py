r"""The cascade term (beyond the papers): CascadingRank's per-user rankings as a learned score input.

CascadingRank (:mod:`recbole_spectral.model.multibehavior.cascadingrank`, training-free) ranks every item for
every user by power iterations on the behavior graphs in funnel order. The cascade term keeps, per user, its
top ``K`` items among those the evaluation does not mask (the user's training target items are left out),
and adds a learned function of the rank to a model's score:

    c(u, i) = γ_u · f(r_u(i)),    γ_u = 2σ(ρ_u),    c(u, i) = 0 when i is not in u's top K

    f(r) = (1 − t) w_j + t w_{j+1},   x = log2 r,  j = min(⌊x⌋, J − 1),  t = x − j,   J = ⌈log2 K⌉

(r = 1 for the top item; f is piecewise linear in log2 r with learned knots w_0..w_J, started at
w_j = ``init`` · (1 − j / (J + 1)) so the term starts as CascadingRank's own order; ρ_u = 0 at start).

Stages (``cascade_term_stages``, off by default). CascadingRank ranks items once per behavior in funnel order, each
stage starting from the previous one's result; the target's ranking is the last. With the option, every stage s
keeps its own top ``K`` (same folds, same mask) and adds its own learned curve and reliability:

    c(u, i) = Σ_s γ_us · f_s(r_us(i)),    f_s with knots w_s0..w_sJ (0 at start for s before the target's)

so the term starts as the target's ranking alone and learns, per user, how far to trust each stage.

Training pairs, out of fold. A training target pair (u, i⁺) is in the graph CascadingRank ran on, so its rank
there is no guide to an unseen buy's (the user's own buys are its query). The training target pairs are dealt
into ``folds`` folds (per user, round-robin after a seeded shuffle); for each fold f CascadingRank runs again on
the graph without fold f's target pairs and ranks items among those not masked on that graph (the remaining
target pairs are), as the evaluation does for the held-out pairs. In training, (u, i) takes its rank from
the fold holding (u, i) when it is a training target pair, else from fold (u · 2654435761 + i) mod ``folds``
(a fixed hash: a negative's rank is no different in distribution from fold to fold). In evaluation every
pair takes its rank from the full training graph. All rankings use training interactions only: the
validation and test rows never enter the dataset's behavior matrices.

Hard negatives (``cascade_term_hard_negatives`` = p): in every training batch, each row's negative is replaced
with probability p by an item drawn uniformly from the user's top K on the full training graph (none of them is
a training target item of the user), so BPR also orders items inside the user's cascade list; with
``cascade_term_hard_negatives_depth`` = m > 0 the draw is from the user's top m only (the ranks HR@10 reads). They act on models
whose loss reads RecBole's negatives (SpectraMB, MB-CGCN, MuLe, UnionLightGCN); CRGCN draws its own.

The rankings cost 1 + ``folds`` CascadingRank passes over all users, once per training graph; they are cached
(:func:`cascade_lists`) under a key of the graph's content and the settings, each pass as it finishes (a build
stopped part-way resumes at the next pass).
"""
import hashlib
import os
import zipfile

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn as nn

from recbole_spectral.errors import ConfigError, DataError
from recbole_spectral.hyperparameters import Bool, Float, Int
from recbole_spectral.layers.multibehavior.observed import ObservedPairs

# the keys a multi-behavior model declares to offer the term (defaults in its YAML: off)
CASCADE_TERM_HYPERPARAMETERS = {
    "cascade_term": Bool(),
    "cascade_term_top_k": Int(low=2),
    "cascade_term_folds": Int(low=2),
    "cascade_term_alpha": Float(low=0.0, high=1.0),
    "cascade_term_beta": Float(low=0.0, high=1.0),
    "cascade_term_init": Float(),
    "cascade_term_hard_negatives": Float(low=0.0, high=1.0),
    "cascade_term_hard_negatives_depth": Int(low=0),
    "cascade_term_stages": Bool(),
}

_TOLERANCE, _MAX_ITER = 1.0e-4, 100  # CascadingRank's published convergence settings (properties/model/CascadingRank.yaml)
_FOLD_SEED = 2020                    # the deal of the training target pairs into folds (fixed: part of the cache key)
_HASH = 2654435761                   # Knuth's multiplicative hash: the fold of a pair that is not a training target pair
_USERS_PER_CALL = 1024               # users scored per CascadingRank call (a dense block of users x items)
_PART_ARRAYS = ("indptr", "items", "ranks")  # one pass's lists per stage s in its part file: indptr{s}, items{s}, ranks{s}
_VERSION = 1                         # bump when the lists' definition changes (cache key)


def target_folds(target, folds, seed=_FOLD_SEED):
    """The fold (0..folds-1) of every stored entry of the CSR ``target`` (sorted indices), dealt per user
    round-robin from a random start after a seeded shuffle: a user's pairs spread over the folds evenly."""
    target = sp.csr_matrix(target)
    target.sort_indices()
    rng = np.random.default_rng(seed)
    fold = np.empty(target.nnz, dtype=np.int64)
    for u in range(target.shape[0]):
        start, end = target.indptr[u], target.indptr[u + 1]
        if end > start:
            fold[start:end] = (rng.permutation(end - start) + rng.integers(folds)) % folds
    return fold


class _TrainingGraph:
    """What CascadingRank reads from a dataset (behaviors, sizes, matrices), with the target matrix replaced."""

    def __init__(self, behaviors, target_behavior, matrices, n_users, n_items):
        self.behaviors, self.target_behavior = list(behaviors), target_behavior
        self.matrices, self.sizes = matrices, (n_users, n_items)

    def num(self, field):
        return self.sizes[0] if field == "user_id" else self.sizes[1]

    def behavior_matrix(self, behavior):
        return self.matrices[behavior]


def _top_k(ranker, masked, k, stages=False):
    """(indptr, items, ranks 1..k) of every user's top ``k`` items under ``ranker``, the items of ``masked``
    (users x items CSR) and the padding item 0 left out; ties by item id. With ``stages``: a list of them, one
    per behavior's ranking in funnel order (the target's last)."""
    n_users = masked.shape[0]
    lists = None
    for start in range(1, n_users, _USERS_PER_CALL):
        users = torch.arange(start, min(start + _USERS_PER_CALL, n_users))
        scored = ranker.score_users(users, stages=True) if stages else ranker.score_users(users)[None]
        if lists is None:
            lists = [([], [], np.zeros(n_users, dtype=np.int64)) for _ in range(len(scored))]
        block = masked[start:start + len(users)].tocoo()
        for (items, ranks, counts), stage in zip(lists, scored):
            scores = stage.cpu().numpy().astype(np.float64)
            scores[block.row, block.col] = -np.inf
            scores[:, 0] = -np.inf
            take = min(k, scores.shape[1] - 1)
            top = np.argsort(-scores, axis=1, kind="stable")[:, :take]
            for r in range(len(users)):
                keep = top[r][np.isfinite(scores[r, top[r]])]
                items.append(keep)
                ranks.append(np.arange(1, len(keep) + 1))
                counts[start + r] = len(keep)
    if lists is None:  # no user but the padding one
        lists = [([], [], np.zeros(n_users, dtype=np.int64)) for _ in range(len(ranker.graphs) if stages else 1)]
    out = [(np.concatenate([[0], np.cumsum(counts)]), np.concatenate(items) if items else np.zeros(0, np.int64),
            np.concatenate(ranks) if ranks else np.zeros(0, np.int64)) for items, ranks, counts in lists]
    return out if stages else out[0]


def _cascading_rank(graph, alpha, beta):
    # imported here: cascadingrank imports model.base, which imports this module
    from recbole_spectral.model.multibehavior.cascadingrank import CascadingRank

    config = {"USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "NEG_PREFIX": "neg_", "device": torch.device("cpu"),
              "dataset": "cascade term", "alpha": alpha, "beta": beta, "tolerance": _TOLERANCE, "max_iter": _MAX_ITER}
    return CascadingRank(config, graph)


def cache_key(behaviors, matrices, k, folds, alpha, beta, stages=False):
    """A digest of the training graph's content and every setting the lists depend on."""
    settings = (_VERSION, list(behaviors), int(k), int(folds), float(alpha), float(beta), _TOLERANCE, _MAX_ITER, _FOLD_SEED)
    digest = hashlib.sha1(repr(settings + (("stages",) if stages else ())).encode())  # the target-only key as before
    for b in behaviors:
        m = sp.csr_matrix(matrices[b])
        m.sort_indices()
        digest.update(repr(m.shape).encode())
        digest.update(np.ascontiguousarray(m.indptr, dtype=np.int64).tobytes())
        digest.update(np.ascontiguousarray(m.indices, dtype=np.int64).tobytes())
    return digest.hexdigest()[:16]


def cascade_lists(behaviors, target_behavior, matrices, k, folds, alpha, beta, cache_dir=None, log=None, stages=False):
    """Scipy CSR ((folds + 1) · S · n_users × n_items) of ranks 1..k: row (f · S + s) · n_users + u holds u's top k
    under stage s on the graph without fold f's target pairs (f < folds), f = folds on the full training graph;
    S = 1 (the target's ranking) or, with ``stages``, one stage per behavior in funnel order (the target's last).
    Computed from ``matrices`` (training interactions only) or read from ``cache_dir``."""
    n_users, n_items = matrices[target_behavior].shape
    cache_file = None
    if cache_dir:
        try:
            os.makedirs(cache_dir, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"config key 'cascade_term_cache_dir': cannot create folder {cache_dir} ({err.strerror})") from None
        cache_file = os.path.join(cache_dir, f"cascade.{cache_key(behaviors, matrices, k, folds, alpha, beta, stages)}.npz")
        if os.path.isfile(cache_file):
            try:
                return sp.load_npz(cache_file).tocsr()
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
                raise DataError(f"{cache_file}: not a readable cascade-term cache ({err}); delete it to rebuild") from None
    target = sp.csr_matrix(matrices[target_behavior], dtype=np.float32)
    target.sort_indices()
    fold = target_folds(target, folds)
    parts, part_files = [], []
    n_stages = len(behaviors) if stages else 1
    for n, f in enumerate(list(range(folds)) + [None]):
        part_file = f"{cache_file[:-len('.npz')]}.pass{n}.npz" if cache_file else None  # a killed build resumes here
        if part_file and os.path.isfile(part_file):
            with np.load(part_file) as stored:
                parts += [tuple(stored[f"{name}{s}"] for name in _PART_ARRAYS) for s in range(n_stages)]
        else:
            graph_target = target.copy()
            if f is not None:
                graph_target.data[fold == f] = 0.0
                graph_target.eliminate_zeros()
            graph = _TrainingGraph(behaviors, target_behavior, {**matrices, target_behavior: graph_target}, n_users, n_items)
            done = _top_k(_cascading_rank(graph, alpha, beta), graph_target, k, stages)
            done = done if stages else [done]
            parts += done
            if part_file:
                np.savez(part_file + ".tmp.npz", **{f"{name}{s}": a for s, stage in enumerate(done)
                                                    for name, a in zip(_PART_ARRAYS, stage)})
                os.replace(part_file + ".tmp.npz", part_file)
        part_files.append(part_file)
        if log is not None:
            log(f"cascade term: CascadingRank lists {'on the full training graph' if f is None else f'of fold {f + 1}/{folds}'} done")
    offsets = np.cumsum([0] + [p[0][-1] for p in parts])
    indptr = np.concatenate([[0]] + [p[0][1:] + offsets[n] for n, p in enumerate(parts)])
    lists = sp.csr_matrix((np.concatenate([p[2] for p in parts]).astype(np.float32),
                           np.concatenate([p[1] for p in parts]), indptr), shape=(len(parts) * n_users, n_items))
    if cache_file:
        sp.save_npz(cache_file + ".tmp.npz", lists)
        os.replace(cache_file + ".tmp.npz", cache_file)
        for part_file in part_files:
            os.remove(part_file)
    return lists


class CascadeTerm(nn.Module):
    """c(u, i) from the rank lists of :func:`cascade_lists` and the training target matrix (module docstring);
    with lists of S > 1 stages, + Σ_s γ_us f_s(r_us(i)) over the stages before the target's."""

    def __init__(self, lists, target, n_folds, top_k, init=1.0, device=None):
        super().__init__()
        self.n_users, self.n_folds = target.shape[0], int(n_folds)
        self.n_stages = lists.shape[0] // ((self.n_folds + 1) * self.n_users)
        self.lists = ObservedPairs(lists, device)                 # rank r_us(i) per ((fold · S + s) · n_users + u, i)
        start = (self.n_folds * self.n_stages + self.n_stages - 1) * self.n_users  # the target's, full graph
        full = sp.csr_matrix(lists)[start:start + self.n_users]
        by_rank = np.lexsort((full.data, np.repeat(np.arange(full.shape[0]), np.diff(full.indptr))))
        self.ranked_items = torch.from_numpy(full.indices[by_rank].astype(np.int64)).to(device)  # full-graph lists, rank order
        self.ranked_indptr = torch.from_numpy(full.indptr.astype(np.int64)).to(device)
        target = sp.csr_matrix(target, dtype=np.float32)
        target.sort_indices()
        folded = target.copy()
        folded.data = (target_folds(target, n_folds) + 1).astype(np.float32)
        self.target_fold = ObservedPairs(folded, device)           # fold + 1 of every training target pair
        knots = int(np.ceil(np.log2(top_k)))
        self.curve = nn.Parameter(init * (1 - torch.arange(knots + 1, dtype=torch.float32) / (knots + 1)))  # w_j
        self.reliability = nn.Embedding(self.n_users, 1)                                                  # ρ_u
        nn.init.zeros_(self.reliability.weight)
        if self.n_stages > 1:  # the earlier stages' curves start at 0: the term starts as the target's ranking alone
            self.stage_curves = nn.Parameter(torch.zeros(self.n_stages - 1, knots + 1))                  # w_sj
            self.stage_reliability = nn.Embedding(self.n_users, self.n_stages - 1)                          # ρ_us
            nn.init.zeros_(self.stage_reliability.weight)

    def rank_value(self, ranks, curve=None):
        """f(r) for ranks r >= 1 (0 where r = 0: not in the list), on ``curve`` (default: the target's)."""
        curve = self.curve if curve is None else curve
        x = torch.log2(ranks.clamp(min=1).to(curve.dtype))
        j = x.floor().clamp(max=len(curve) - 2).long()
        t = x - j
        value = (1 - t) * curve[j] + t * curve[j + 1]
        return torch.where(ranks > 0, value, torch.zeros_like(value))

    def gamma(self, users):
        return 2 * torch.sigmoid(self.reliability(users).squeeze(-1))

    def _stages(self):
        """(stage s, its curve, its γ per user) for every stage, the target's last."""
        earlier = [(s, self.stage_curves[s], lambda users, s=s: 2 * torch.sigmoid(self.stage_reliability(users)[:, s]))
                   for s in range(self.n_stages - 1)]
        return earlier + [(self.n_stages - 1, self.curve, self.gamma)]

    def rows_for(self, users, items):
        """The pass each pair reads (times S · n_users, stage 0): out of fold in training (module docstring), the full
        graph otherwise."""
        users, items = users.long(), items.long()
        if not self.training:
            return self.n_folds * self.n_stages * self.n_users + users
        fold = self.target_fold.values(users, items).long() - 1  # -1: not a training target pair
        hashed = (users * _HASH + items) % self.n_folds
        return torch.where(fold >= 0, fold, hashed) * self.n_stages * self.n_users + users

    def forward(self, users, items):
        """c(users[k], items[k]) for every k."""
        rows = self.rows_for(users, items)
        return sum(gamma(users) * self.rank_value(self.lists.values(rows + s * self.n_users, items), curve)
                   for s, curve, gamma in self._stages())

    def add_to_rows(self, users, scores):
        """``scores`` (len(users) × n_items) + c(users[r], ·) on every listed item (full training graph)."""
        for s, curve, gamma in self._stages():
            row, item, rank = self.lists.entries((self.n_folds * self.n_stages + s) * self.n_users + users.long())
            scores = scores.index_put((row, item), gamma(users)[row] * self.rank_value(rank, curve), accumulate=True)
        return scores

    def hard_negatives(self, users, negatives, share, generator=None, depth=0):
        """``negatives`` with each row replaced, with probability ``share``, by a uniform draw from the user's
        list on the full training graph — from its top ``depth`` ranks when ``depth`` > 0 (rows of users with
        an empty list keep theirs)."""
        if self.ranked_items.numel() == 0:  # no user has a list: nothing to draw from
            return negatives
        if depth > 0:
            items, indptr = self.ranked_items, self.ranked_indptr
            start, count = indptr[users.long()], (indptr[users.long() + 1] - indptr[users.long()]).clamp(max=depth)
        else:  # the whole list in item order: the same draws as the runs recorded before the depth option
            items, indptr = self.lists.indices, self.lists.indptr
            rows = (self.n_folds * self.n_stages + self.n_stages - 1) * self.n_users + users.long()
            start, count = indptr[rows], indptr[rows + 1] - indptr[rows]
        draw = torch.rand(len(users), generator=generator, device=users.device)
        pick = torch.rand(len(users), generator=generator, device=users.device)
        replace = (draw < share) & (count > 0)
        offset = start + (pick * count).long().clamp(max=(count - 1).clamp(min=0))
        return torch.where(replace, items[offset.clamp(max=max(items.numel() - 1, 0))], negatives)
