"""The cascade term (beyond the papers) as a building block: CascadingRank's rank lists (out of fold for training
pairs, from training interactions only), the learned rank curve on a hand-built case, the hard negatives, and the
same term, switched on by ``cascade_term: True``, in the scores, the loss and a run of every multi-behavior model."""
import os

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from recbole.data.interaction import Interaction

from recbole_spectral.config import SpectralConfig
from recbole_spectral.data import create_dataset
from recbole_spectral.errors import ConfigError, DataError
from recbole_spectral.layers.multibehavior.cascade_term import CascadeTerm, _top_k, cache_key, cascade_lists, target_folds
from recbole_spectral.layers.multibehavior.observed import ObservedPairs
from recbole_spectral.model.multibehavior.cascadingrank import CascadingRank
from recbole_spectral.model.multibehavior.crgcn import CRGCN
from recbole_spectral.model.multibehavior.mbcgcn import MBCGCN
from recbole_spectral.model.multibehavior.mule import MuLe
from recbole_spectral.model.multibehavior.spectramb import SpectraMB
from recbole_spectral.model.multibehavior.unionlightgcn import UnionLightGCN
from recbole_spectral.quick_start import run_recbole_spectral
from tests.helpers import FAST, TinyMultiBehaviorDataset, assert_term_adds_to_every_score, model_config
from tests.test_mb_dataset import frame, toy_splits, write_toy

N_USERS, N_ITEMS = TinyMultiBehaviorDataset.n_users, TinyMultiBehaviorDataset.n_items
TARGET_FOLDS = [2, 0, 1, 2, 0, 0, 1, 1, 2]  # target_folds of test_the_deal_of_pairs_into_folds_is_fixed_by_its_seed's matrix
MODELS = [SpectraMB, CRGCN, MBCGCN, MuLe, UnionLightGCN]
SMALL = {"SpectraMB": {"embedding_size": 8, "attention_size": 4}, "MBCGCN": {"warmup_epochs": 0}}
TERM = {"cascade_term": True, "cascade_term_top_k": 4, "cascade_term_folds": 2}
BATCH = {"user_id": torch.tensor([1, 2, 3, 5, 6, 6]), "item_id": torch.tensor([8, 2, 4, 2, 2, 5]),  # training buys
         "neg_item_id": torch.tensor([2, 3, 5, 6, 7, 1])}


# -- the lists ------------------------------------------------------------------------------------------
def test_observed_pairs_return_stored_values_and_zero_elsewhere():
    m = sp.csr_matrix((np.array([3.0, 1.0, 2.0]), ([0, 0, 2], [2, 1, 0])), shape=(3, 4))
    pairs = ObservedPairs(m)
    values = pairs.values(torch.tensor([0, 0, 1, 2, 2]), torch.tensor([1, 2, 1, 0, 3]))
    torch.testing.assert_close(values, torch.tensor([1.0, 3.0, 0.0, 2.0, 0.0]))
    row, item, value = pairs.entries(torch.tensor([2, 1, 0]))
    assert row.tolist() == [0, 2, 2] and item.tolist() == [0, 1, 2] and value.tolist() == [2.0, 1.0, 3.0]


def test_folds_spread_each_users_pairs_evenly_and_are_fixed():
    target = sp.csr_matrix(np.array([[1, 1, 1, 1, 1], [0, 1, 0, 0, 0], [1, 1, 1, 0, 0]], dtype=np.float32))
    fold = target_folds(target, 2)
    assert sorted(np.bincount(fold[:5], minlength=2).tolist()) == [2, 3]
    assert sorted(np.bincount(fold[6:], minlength=2).tolist()) == [1, 2]
    assert fold.tolist() == target_folds(target, 2).tolist() and set(fold.tolist()) <= {0, 1}


def test_the_deal_of_pairs_into_folds_is_fixed_by_its_seed():
    # the deal is part of what the cached lists mean (the cache key holds its seed, not its values): pinned here, so
    # a change to it must come with a new cache version. User 1 has no pair and draws nothing from the generator.
    target = sp.csr_matrix(np.array([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [0, 1, 1, 1, 1], [1, 0, 0, 0, 1]], dtype=np.float32))
    assert target_folds(target, 3).tolist() == TARGET_FOLDS


def cascading_rank_top(matrices, masked, k):
    """Every user's top k under the CascadingRank model itself, ``masked`` items and item 0 left out: {user: items}."""
    data = TinyMultiBehaviorDataset()
    data.matrices = matrices
    scores = CascadingRank(model_config("CascadingRank"), data).score_users(torch.arange(1, N_USERS)).numpy()
    scores[masked[1:].toarray() > 0] = -np.inf
    scores[:, 0] = -np.inf
    return {u: [i for i in np.argsort(-scores[u - 1], kind="stable")[:k] if np.isfinite(scores[u - 1, i])]
            for u in range(1, N_USERS)}


def listed(lists, row):
    ranked = lists[row].tocoo()
    return [int(i) for _, i in sorted(zip(ranked.data, ranked.col))]


def test_lists_are_cascading_ranks_top_k_on_the_full_graph_and_out_of_fold():
    data = TinyMultiBehaviorDataset()
    buy = data.matrices["buy"]
    lists = cascade_lists(data.behaviors, "buy", data.matrices, 4, 2, 0.0, 0.9)
    assert lists.shape == (3 * N_USERS, N_ITEMS)
    full = cascading_rank_top(data.matrices, buy, 4)  # the full training graph, training buys masked
    for u in range(1, N_USERS):
        assert listed(lists, 2 * N_USERS + u) == full[u]
    fold = target_folds(buy, 2)
    for f in range(2):  # fold f's buys leave the graph and the mask: they compete with every other item
        kept = buy.copy()
        kept.data[fold == f] = 0
        kept.eliminate_zeros()
        top = cascading_rank_top({**data.matrices, "buy": kept}, kept, 4)
        for u in range(1, N_USERS):
            assert listed(lists, f * N_USERS + u) == top[u]
    assert listed(lists, 0) == listed(lists, N_USERS) == listed(lists, 2 * N_USERS) == []  # padding user


def test_stage_scores_are_cascading_rank_stopped_at_each_behavior():
    # stage b of the cascade is CascadingRank run on the first b + 1 behaviors with behavior b as the target
    data = TinyMultiBehaviorDataset()
    users = torch.arange(1, N_USERS)
    stages = CascadingRank(model_config("CascadingRank"), data).score_users(users, stages=True)
    assert stages.shape == (3, N_USERS - 1, N_ITEMS)
    torch.testing.assert_close(stages[2], CascadingRank(model_config("CascadingRank"), data).score_users(users))
    for b, behaviors in enumerate([["view"], ["view", "cart"]]):
        cut = TinyMultiBehaviorDataset()
        cut.behaviors, cut.target_behavior = behaviors, behaviors[-1]
        torch.testing.assert_close(stages[b], CascadingRank(model_config("CascadingRank"), cut).score_users(users))
    assert not torch.allclose(stages[0], stages[2])


def test_stage_lists_hold_each_stages_top_k_and_the_target_stage_is_the_default_list():
    data = TinyMultiBehaviorDataset()
    buy = data.matrices["buy"]
    lists = cascade_lists(data.behaviors, "buy", data.matrices, 4, 2, 0.0, 0.9, stages=True)
    default = cascade_lists(data.behaviors, "buy", data.matrices, 4, 2, 0.0, 0.9)
    assert lists.shape == (3 * 3 * N_USERS, N_ITEMS)  # (folds + 1) passes x 3 stages x users
    scores = CascadingRank(model_config("CascadingRank"), data).score_users(torch.arange(1, N_USERS), stages=True).numpy()
    for s in range(3):
        stage = scores[s].copy()
        stage[buy[1:].toarray() > 0] = -np.inf  # the full graph's pass masks the training buys
        stage[:, 0] = -np.inf
        for u in range(1, N_USERS):
            top = [i for i in np.argsort(-stage[u - 1], kind="stable")[:4] if np.isfinite(stage[u - 1, i])]
            assert listed(lists, (2 * 3 + s) * N_USERS + u) == top
    for f in range(3):  # every pass's target stage is the default list of that pass
        for u in range(N_USERS):
            assert listed(lists, (f * 3 + 2) * N_USERS + u) == listed(default, f * N_USERS + u)
    assert cache_key(data.behaviors, data.matrices, 4, 2, 0.0, 0.9, stages=True) != cache_key(
        data.behaviors, data.matrices, 4, 2, 0.0, 0.9)


class WideDataset(TinyMultiBehaviorDataset):
    """More users than items: 11 users x 4 items (+ padding); item 4 has no interaction of any behavior."""

    n_users, n_items = 12, 5

    def __init__(self):
        rng = np.random.default_rng(3)
        self.matrices = {}
        for behavior, density in (("view", 0.7), ("cart", 0.4), ("buy", 0.3)):
            dense = (rng.random((self.n_users, self.n_items)) < density).astype(np.float32)
            dense[0, :] = dense[:, 0] = dense[:, 4] = 0
            self.matrices[behavior] = sp.csr_matrix(dense)


def test_lists_with_more_users_than_items_and_a_list_longer_than_the_catalogue():
    data = WideDataset()
    buy = data.matrices["buy"]
    lists = cascade_lists(data.behaviors, "buy", data.matrices, 6, 2, 0.0, 0.9)
    assert lists.shape == (3 * data.n_users, data.n_items) and lists.dtype == np.float32
    scores = CascadingRank(model_config("CascadingRank"), data).score_users(torch.arange(1, data.n_users)).numpy()
    for u in range(1, data.n_users):  # K = 6 > 4 items: every item the user did not buy, in CascadingRank's order
        free = [i for i in range(1, data.n_items) if buy[u, i] == 0]
        assert listed(lists, 2 * data.n_users + u) == sorted(free, key=lambda i: (-scores[u - 1, i], i))
    # K = 1: item 4 (no interaction, the lowest id among the lowest scores never first) is in no list, and the
    # matrix still spans the whole catalogue
    assert cascade_lists(data.behaviors, "buy", data.matrices, 1, 2, 0.0, 0.9).shape == (3 * data.n_users, data.n_items)


class _FixedRanker:
    def __init__(self, scores):
        self.scores = torch.as_tensor(scores, dtype=torch.float32)

    def score_users(self, users):
        return self.scores[users]


def test_top_k_orders_by_score_and_breaks_ties_by_item_id():
    scores = np.zeros((3, 41), dtype=np.float32)
    scores[1, 1:] = np.random.default_rng(0).integers(0, 3, 40)  # 40 items on three score levels
    scores[2, 1:] = 5.0
    masked = sp.csr_matrix(([1.0], ([2], [7])), shape=(3, 41))
    indptr, items, ranks = _top_k(_FixedRanker(scores), masked, 30)
    row1 = sorted(range(1, 41), key=lambda i: (-scores[1, i], i))[:30]
    assert indptr.tolist() == [0, 0, 30, 60] and indptr.dtype == np.int64 and items[:30].tolist() == row1
    assert items[30:].tolist() == [i for i in range(1, 41) if i != 7][:30] and ranks.tolist() == list(range(1, 31)) * 2


def test_top_k_of_a_dataset_without_users_is_empty():
    indptr, items, ranks = _top_k(_FixedRanker(np.zeros((1, 5))), sp.csr_matrix((1, 5)), 3)
    assert indptr.tolist() == [0, 0] and indptr.dtype == np.int64
    assert items.shape == ranks.shape == (0,) and items.dtype == ranks.dtype == np.int64
    ranker = _FixedRanker(np.zeros((1, 5)))
    ranker.graphs = [None] * 3  # one empty list per stage
    stages = _top_k(ranker, sp.csr_matrix((1, 5)), 3, stages=True)
    assert [(indptr.tolist(), items.size, ranks.size) for indptr, items, ranks in stages] == [([0, 0], 0, 0)] * 3


def test_the_cache_key_holds_the_catalogue_size():
    pairs = sp.csr_matrix(([1.0], ([1], [2])), shape=(3, 4))
    wider = sp.csr_matrix(([1.0], ([1], [2])), shape=(3, 6))
    assert cache_key(["buy"], {"buy": pairs}, 4, 2, 0.0, 0.9) != cache_key(["buy"], {"buy": wider}, 4, 2, 0.0, 0.9)


def test_the_cache_key_reads_the_graph_not_its_index_type_and_stays_fixed():
    # caches written before stay valid: the key of one graph is the same whether scipy stores its indices as
    # int32 or int64, and the same as the version that wrote them (16 hex digits; the stage lists' key differs)
    data = TinyMultiBehaviorDataset()
    wide = {}
    for b, m in data.matrices.items():
        wide[b] = m.copy()
        wide[b].indices, wide[b].indptr = m.indices.astype(np.int64), m.indptr.astype(np.int64)
    for stages, key in ((False, "bf13800a9a22f598"), (True, "e97b40b4702c7da1")):
        assert cache_key(data.behaviors, data.matrices, 4, 2, 0.0, 0.9, stages) == key
        assert cache_key(data.behaviors, wide, 4, 2, 0.0, 0.9, stages) == key


def test_lists_log_each_pass_and_refuse_a_cache_folder_that_cannot_be_made(tmp_path):
    data, messages = TinyMultiBehaviorDataset(), []
    cascade_lists(data.behaviors, "buy", data.matrices, 4, 2, 0.0, 0.9, log=messages.append)
    assert messages == ["cascade term: CascadingRank lists of fold 1/2 done", "cascade term: CascadingRank lists of fold 2/2 done",
                        "cascade term: CascadingRank lists on the full training graph done"]
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"config key 'cascade_term_cache_dir': cannot create folder .*file.sub"):
        cascade_lists(data.behaviors, "buy", data.matrices, 4, 2, 0.0, 0.9, cache_dir=str(blocker / "sub"))


@pytest.mark.parametrize("stages,finished", [(False, 1), (True, 1), (False, 2), (True, 2)])
def test_a_stopped_build_resumes_at_the_next_pass(tmp_path, monkeypatch, stages, finished):
    data = TinyMultiBehaviorDataset()
    fresh = cascade_lists(data.behaviors, "buy", data.matrices, 4, 2, 0.0, 0.9, stages=stages)
    assert fresh.shape == ((9 if stages else 3) * N_USERS, N_ITEMS)

    logged = []

    def stop(message):
        logged.append(message)
        if len(logged) == finished:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # killed after the first (second) of 3 passes
        cascade_lists(data.behaviors, "buy", data.matrices, 4, 2, 0.0, 0.9, cache_dir=tmp_path, log=stop, stages=stages)
    assert sorted(f.name.split(".")[-2] for f in tmp_path.glob("*.npz")) == [f"pass{n}" for n in range(finished)]
    from recbole_spectral.layers.multibehavior import cascade_term
    calls = []
    real = cascade_term._cascading_rank
    monkeypatch.setattr(cascade_term, "_cascading_rank", lambda *a: calls.append(1) or real(*a))
    resumed = cascade_lists(data.behaviors, "buy", data.matrices, 4, 2, 0.0, 0.9, cache_dir=tmp_path, stages=stages)
    assert len(calls) == 3 - finished and resumed.shape == fresh.shape and (resumed != fresh).nnz == 0  # the passes left
    assert [f.name.count(".pass") for f in tmp_path.glob("*.npz")] == [0]  # one cache file, the passes removed


def test_lists_come_from_training_interactions_only(workdir):
    # the same training file with other validation and test rows: the same lists
    splits = toy_splits()
    other = {**splits, "valid": frame([("u3", "i7", "buy"), ("u5", "i1", "buy")]),
             "test": frame([("u1", "i8", "buy"), ("u4", "i2", "buy"), ("u2", "i5", "buy")])}
    found = []
    for name, data in (("toy", splits), ("toy2", other)):
        write_toy(workdir, data, name=name)
        dataset = create_dataset(SpectralConfig("UnionLightGCN", name, config_dict={**FAST, "load_col": {
            "inter": ["user_id", "item_id", "behavior"], "user": ["user_id"], "item": ["item_id"]}}))
        matrices = {b: dataset.behavior_matrix(b) for b in dataset.behaviors}
        lists = cascade_lists(dataset.behaviors, "buy", matrices, 3, 2, 0.0, 0.9).tocoo()
        found.append({(dataset.id2token("user_id", r % dataset.user_num), r // dataset.user_num,
                       dataset.id2token("item_id", c), v) for r, c, v in zip(lists.row, lists.col, lists.data)})
    assert found[0] == found[1] and len(found[0]) > 0


def test_lists_are_cached_under_the_graph_and_the_settings(tmp_path):
    data = TinyMultiBehaviorDataset()
    first = cascade_lists(data.behaviors, "buy", data.matrices, 4, 2, 0.0, 0.9, cache_dir=tmp_path)
    [cached] = list(tmp_path.glob("cascade.*.npz"))
    again = cascade_lists(data.behaviors, "buy", data.matrices, 4, 2, 0.0, 0.9, cache_dir=tmp_path)
    assert (first != again).nnz == 0
    cascade_lists(data.behaviors, "buy", {**data.matrices, "view": data.matrices["cart"]}, 4, 2, 0.0, 0.9, cache_dir=tmp_path)
    cascade_lists(data.behaviors, "buy", data.matrices, 4, 2, 0.7, 0.2, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("cascade.*.npz"))) == 3 and cached.exists()
    cached.write_bytes(b"cut off")
    with pytest.raises(DataError, match="not a readable cascade-term cache .*; delete it to rebuild"):
        cascade_lists(data.behaviors, "buy", data.matrices, 4, 2, 0.0, 0.9, cache_dir=tmp_path)


@pytest.mark.parametrize("setting", ["k", "folds", "alpha", "beta", "stages"])
def test_a_cache_is_never_read_for_other_settings(tmp_path, setting):
    data = TinyMultiBehaviorDataset()
    base = {"k": 4, "folds": 2, "alpha": 0.0, "beta": 0.9, "stages": False}
    other = {**base, setting: {"k": 3, "folds": 3, "alpha": 0.05, "beta": 0.8, "stages": True}[setting]}

    def lists(settings, cache_dir=None):
        s = settings
        return cascade_lists(data.behaviors, "buy", data.matrices, s["k"], s["folds"], s["alpha"], s["beta"],
                             cache_dir=cache_dir, stages=s["stages"])

    def same(a, b):
        return a.shape == b.shape and (a != b).nnz == 0

    lists(base, tmp_path)
    fresh, cached = lists(other), lists(other, tmp_path)
    assert same(cached, fresh) and not same(fresh, lists(base))
    assert len(list(tmp_path.glob("cascade.*.npz"))) == 2


# -- the term on a hand-built case ------------------------------------------------------------------------
def hand_term():
    # 3 users x 5 items, K = 4 (knots at log2 r = 0, 1, 2), 2 folds; target: (1, 1) in fold 0, (2, 3) in fold 1
    lists = sp.lil_matrix((9, 5), dtype=np.float32)
    lists[0 * 3 + 1, 1], lists[0 * 3 + 1, 2] = 2, 1      # fold 0, user 1: item 2 first, item 1 second
    lists[1 * 3 + 1, 4] = 1                              # fold 1, user 1: item 4
    lists[2 * 3 + 1, 2], lists[2 * 3 + 1, 4], lists[2 * 3 + 1, 3] = 1, 3, 4  # full graph, user 1
    lists[2 * 3 + 2, 1] = 1                              # full graph, user 2
    target = sp.csr_matrix((np.ones(2), ([1, 2], [1, 3])), shape=(3, 5))
    term = CascadeTerm(lists.tocsr(), target, n_folds=2, top_k=4, init=1.0)
    term.target_fold = ObservedPairs(sp.csr_matrix((np.array([1.0, 2.0]), ([1, 2], [1, 3])), shape=(3, 5)))
    with torch.no_grad():
        term.curve.copy_(torch.tensor([2.0, 1.0, -1.0]))
        term.reliability.weight.copy_(torch.tensor([[0.0], [np.log(3.0)], [0.0]]))  # γ = 1, 1.5, 1
    return term


def test_the_target_stage_term_learns_one_curve_and_one_reliability_per_user():
    # the parameters a target-stage checkpoint holds (saved runs load into this layout); stages add their own
    data = TinyMultiBehaviorDataset()
    for stages, names in ((False, ["curve", "reliability.weight"]),
                          (True, ["curve", "stage_curves", "reliability.weight", "stage_reliability.weight"])):
        lists = cascade_lists(data.behaviors, "buy", data.matrices, 4, 2, 0.0, 0.9, stages=stages)
        term = CascadeTerm(lists, data.matrices["buy"], n_folds=2, top_k=4)
        assert sorted(term.state_dict()) == sorted(names)
        assert term.reliability.weight.shape == (N_USERS, 1) and term.curve.shape == (3,)


def test_the_curve_starts_as_cascading_ranks_order():
    term = CascadeTerm(sp.csr_matrix((2, 3)), sp.csr_matrix((1, 3)), n_folds=2, top_k=100, init=2.0)
    assert len(term.curve) == 8  # knots at log2 r = 0..7 (⌈log2 100⌉ = 7)
    values = term.rank_value(torch.arange(1, 101))
    assert values[0] == 2.0 and bool((values[1:] < values[:-1]).all()) and values[-1] > 0
    torch.testing.assert_close(term.curve.data, 2.0 * (1 - torch.arange(8.0) / 8))  # w_j = init·(1 − j/(J+1))
    default = CascadeTerm(sp.csr_matrix((3, 3)), sp.csr_matrix((1, 3)), n_folds=2, top_k=4)
    torch.testing.assert_close(default.curve.data, torch.tensor([1.0, 2 / 3, 1 / 3]))  # init 1 by default


def test_evaluation_values_on_a_hand_built_case():
    # f(1) = 2, f(2) = 1, f(3) = (1 - t)·1 + t·(-1) with t = log2 3 - 1, f(4) = -1; c = γ_u f
    term = hand_term().eval()
    t = float(np.log2(3.0)) - 1
    users, items = torch.tensor([1, 1, 1, 1, 2, 2]), torch.tensor([2, 4, 3, 1, 1, 3])
    expected = torch.tensor([1.5 * 2, 1.5 * (1 - 2 * t), 1.5 * -1, 0.0, 2.0, 0.0])
    with torch.no_grad():
        torch.testing.assert_close(term(users, items), expected)
        rows = term.add_to_rows(torch.tensor([2, 1]), torch.zeros(2, 5))
    torch.testing.assert_close(rows, torch.tensor([[0.0, 2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 3.0, -1.5, 1.5 * (1 - 2 * t)]]))


def test_earlier_stages_add_their_own_curve_and_reliability():
    # 2 users x 4 items, 2 stages (a cart stage, then the target's), 2 folds: rows (pass · 2 + stage) · 2 + user
    lists = sp.lil_matrix((12, 4), dtype=np.float32)
    lists[(2 * 2 + 0) * 2 + 1, 1], lists[(2 * 2 + 0) * 2 + 1, 3] = 1, 2   # full graph, cart stage, user 1
    lists[(2 * 2 + 1) * 2 + 1, 3], lists[(2 * 2 + 1) * 2 + 1, 2] = 1, 2   # full graph, target stage, user 1
    lists[(0 * 2 + 0) * 2 + 1, 2] = 1                                    # fold 0, cart stage, user 1
    term = CascadeTerm(lists.tocsr(), sp.csr_matrix((2, 4)), n_folds=2, top_k=4, init=1.0)
    assert term.n_stages == 2 and term.stage_curves.shape == (1, 3) and not term.stage_curves.detach().any()
    users, items = torch.tensor([1, 1, 1]), torch.tensor([1, 2, 3])
    with torch.no_grad():
        term.eval()
        torch.testing.assert_close(term(users, items), torch.tensor([0.0, 2 / 3, 1.0]))  # the cart stage starts at 0
        term.curve.copy_(torch.tensor([2.0, 1.0, 0.0]))
        term.stage_curves.copy_(torch.tensor([[4.0, 3.0, 0.0]]))
        term.stage_reliability.weight.copy_(torch.tensor([[0.0], [np.log(3.0)]]))  # γ_cart = 1, 1.5
        # item 1: cart rank 1 only: 1.5·4; item 2: target rank 2: 1·1; item 3: cart rank 2 (1.5·3) + target rank 1 (2)
        torch.testing.assert_close(term(users, items), torch.tensor([6.0, 1.0, 6.5]))
        torch.testing.assert_close(term.add_to_rows(torch.tensor([1]), torch.zeros(1, 4)), torch.tensor([[0.0, 6.0, 1.0, 6.5]]))
        term.train()  # (1, 2) is no buy: fold (1·2654435761 + 2) mod 2 = 1, no list there; (1, 1): fold 0, not listed
        assert term(torch.tensor([1, 1]), torch.tensor([2, 1])).tolist() == [0.0, 0.0]
        # (1, 3): fold (…+3) mod 2 = 0: not listed in fold 0's cart stage either
        lists[(0 * 2 + 0) * 2 + 1, 3] = 2
        term.lists = ObservedPairs(lists.tocsr())
        torch.testing.assert_close(term(torch.tensor([1]), torch.tensor([3])), torch.tensor([1.5 * 3.0]))
    assert set(term.hard_negatives(torch.tensor([1] * 100), torch.zeros(100, dtype=torch.long), 1.0).tolist()) == {2, 3}


def test_training_pairs_read_their_fold_and_others_a_hashed_fold():
    term = hand_term().train()
    # (1, 1) is a training buy of fold 0: rank 2 there (not in the full lists); (2, 3) of fold 1: not listed there;
    # (1, 2) is no buy: fold (1·2654435761 + 2) mod 2 = 1 → not listed; (1, 4): fold (…+4) mod 2 = 1 → rank 1
    users, items = torch.tensor([1, 2, 1, 1]), torch.tensor([1, 3, 2, 4])
    with torch.no_grad():
        torch.testing.assert_close(term(users, items), torch.tensor([1.5 * 1.0, 0.0, 0.0, 1.5 * 2.0]))


def test_pairs_outside_the_target_read_the_fold_of_their_hash():
    # 3 folds: (1, i) reads fold (1·2654435761 + i) mod 3 = (1 + i) mod 3 — item 1: fold 2, item 2: fold 0, item 3: fold 1
    lists = sp.lil_matrix((8, 4), dtype=np.float32)
    for fold in range(3):
        for item in (1, 2, 3):
            lists[fold * 2 + 1, item] = 2 ** fold  # rank 1, 2 or 4 by fold
    term = CascadeTerm(lists.tocsr(), sp.csr_matrix((2, 4)), n_folds=3, top_k=4).train()
    with torch.no_grad():
        term.curve.copy_(torch.tensor([3.0, 2.0, 1.0]))  # f(1) = 3, f(2) = 2, f(4) = 1; γ = 1
        got = term(torch.tensor([1, 1, 1]), torch.tensor([1, 2, 3]))
    torch.testing.assert_close(got, torch.tensor([1.0, 3.0, 2.0]))


def test_hard_negatives_come_from_the_users_full_graph_list():
    term = hand_term()
    users, negatives = torch.tensor([1] * 200 + [0] * 5), torch.full((205,), 9)
    drawn = term.hard_negatives(users, negatives, 1.0, torch.Generator().manual_seed(0))
    assert set(drawn[:200].tolist()) == {2, 3, 4} and drawn[200:].tolist() == [9] * 5  # user 0: empty list
    assert term.hard_negatives(users, negatives, 0.0).tolist() == negatives.tolist()
    half = term.hard_negatives(torch.tensor([1] * 4000), torch.full((4000,), 9), 0.5, torch.Generator().manual_seed(1))
    assert 1800 < int((half != 9).sum()) < 2200


def test_hard_negatives_follow_the_generator_and_keep_the_id_type():
    term = hand_term()
    users, negatives = torch.tensor([1] * 50), torch.full((50,), 9)
    draws = [term.hard_negatives(users, negatives, 0.5, torch.Generator().manual_seed(s)) for s in (4, 4, 5)]
    assert draws[0].tolist() == draws[1].tolist() != draws[2].tolist()
    assert draws[0].dtype == term.hard_negatives(users, negatives, 1.0, depth=2).dtype == torch.int64


def test_hard_negatives_without_any_list_keep_every_negative():
    term = CascadeTerm(sp.csr_matrix((9, 5)), sp.csr_matrix((3, 5)), n_folds=2, top_k=4)
    negatives = torch.tensor([3, 4, 1])
    assert term.hard_negatives(torch.tensor([1, 2, 0]), negatives, 1.0).tolist() == [3, 4, 1]
    assert term.hard_negatives(torch.tensor([1, 2, 0]), negatives, 1.0, depth=2).tolist() == [3, 4, 1]


def test_hard_negatives_with_a_depth_stay_in_the_users_own_list():
    # 3 users x 6 items, 1 fold + the full graph; full-graph lists: user 0 items 5, 4 ; user 1 items 3, 2, 1; user 2 item 5
    lists = sp.lil_matrix((6, 6), dtype=np.float32)
    lists[3, 5], lists[3, 4] = 1, 2
    lists[4, 3], lists[4, 2], lists[4, 1] = 1, 2, 3
    lists[5, 5] = 1
    term = CascadeTerm(lists.tocsr(), sp.csr_matrix((3, 6)), n_folds=1, top_k=4)
    drawn = term.hard_negatives(torch.tensor([1] * 300), torch.full((300,), 0), 1.0, torch.Generator().manual_seed(0), depth=5)
    assert set(drawn.tolist()) == {1, 2, 3}
    drawn = term.hard_negatives(torch.tensor([1] * 300), torch.full((300,), 0), 1.0, torch.Generator().manual_seed(0), depth=2)
    assert set(drawn.tolist()) == {2, 3}


def test_hard_negatives_of_a_last_user_without_a_list_keep_theirs():
    # 3 users x 4 items, 1 fold + the full graph; only user 1 has a list (one item, on the full graph): user 2's list
    # starts where the stored entries end
    lists = sp.csr_matrix(([1.0], ([4], [3])), shape=(6, 4))
    term = CascadeTerm(lists, sp.csr_matrix((3, 4)), n_folds=1, top_k=4)
    users, negatives = torch.tensor([1, 2, 2, 1]), torch.tensor([0, 1, 2, 0])
    for depth in (0, 2):
        assert term.hard_negatives(users, negatives, 1.0, torch.Generator().manual_seed(0), depth=depth).tolist() == [3, 1, 2, 3]


def test_hard_negatives_with_a_depth_come_from_the_top_of_the_list():
    term = hand_term()  # user 1's full-graph list in rank order: item 2 (rank 1), item 4 (rank 3), item 3 (rank 4)
    users, negatives = torch.tensor([1] * 300 + [0] * 5), torch.full((305,), 9)
    top1 = term.hard_negatives(users, negatives, 1.0, torch.Generator().manual_seed(0), depth=1)
    assert top1[:300].tolist() == [2] * 300 and top1[300:].tolist() == [9] * 5
    top2 = term.hard_negatives(users, negatives, 1.0, torch.Generator().manual_seed(0), depth=2)
    assert set(top2[:300].tolist()) == {2, 4}
    deep = term.hard_negatives(users, negatives, 1.0, torch.Generator().manual_seed(0), depth=10)
    assert set(deep[:300].tolist()) == {2, 3, 4}
    user2 = term.hard_negatives(torch.tensor([2] * 10), torch.full((10,), 9), 1.0, depth=3)
    assert user2.tolist() == [1] * 10


# -- the term in every multi-behavior model ----------------------------------------------------------------
def build(cls, **overrides):
    torch.manual_seed(0)
    return cls(model_config(cls.__name__, **{**SMALL.get(cls.__name__, {}), **overrides}), TinyMultiBehaviorDataset())


def with_and_without(cls, **options):
    """The model with the term (random curve and γ) and the same weights without it."""
    on, off = build(cls, **TERM, **options), build(cls, cascade_term=False)
    with torch.no_grad():
        for p in on.parameters():
            p.normal_(std=0.3)
    off.load_state_dict({k: v for k, v in on.state_dict().items() if not k.startswith("cascade_term.")})
    return on, off


def dense_term(model, fold_of=None):
    """c(u, i) for every pair from the lists and the parameters: the full-graph rows, or per pair the row of
    ``fold_of(u, i)``."""
    term, n_stages = model.cascade_term, model.cascade_term.n_stages
    lists = cascade_lists(["view", "cart", "buy"], "buy", TinyMultiBehaviorDataset().matrices, 4, 2, 0.0, 0.9,
                          stages=n_stages > 1).toarray()
    reliability = term.reliability.weight if n_stages == 1 else torch.cat([term.stage_reliability.weight, term.reliability.weight], 1)
    curves = [term.curve] if n_stages == 1 else [*term.stage_curves, term.curve]
    gamma = (2 * torch.sigmoid(reliability)).detach().numpy()
    out = np.zeros((N_USERS, N_ITEMS), dtype=np.float32)
    for u in range(N_USERS):
        for i in range(N_ITEMS):
            for s in range(n_stages):
                rank = lists[((2 if fold_of is None else fold_of(u, i)) * n_stages + s) * N_USERS + u, i]
                if rank:
                    out[u, i] += gamma[u, s] * float(term.rank_value(torch.tensor([int(rank)]), curves[s]).detach()[0])
    return torch.tensor(out)


@pytest.mark.parametrize("cls,options", [(cls, {}) for cls in MODELS] + [(UnionLightGCN, {"cascade_term_stages": True})],
                         ids=lambda c: c.__name__ if isinstance(c, type) else ("stages" if c else "target"))
def test_every_model_adds_the_term_to_its_scores(cls, options):
    on, off = with_and_without(cls, **options)
    on.eval(), off.eval()
    _, full_off = assert_term_adds_to_every_score(on, off, dense_term(on), N_USERS, N_ITEMS)
    with torch.no_grad(), on.inference_ablations()["without the cascade term"]():
        torch.testing.assert_close(on.full_sort_predict({"user_id": torch.arange(N_USERS)}).view(N_USERS, N_ITEMS), full_off)
    assert "without the cascade term" not in off.inference_ablations()


@pytest.mark.parametrize("cls,options", [(cls, {}) for cls in [SpectraMB, MBCGCN, MuLe, UnionLightGCN]]
                         + [(SpectraMB, {"cascade_term_stages": True})],
                         ids=lambda c: c.__name__ if isinstance(c, type) else ("stages" if c else "target"))
def test_every_model_trains_on_out_of_fold_ranks(cls, options):
    # the BPR part of the loss moves by exactly the term's share, with positives read from their fold and
    # negatives from the hashed one (every stage's, with the stages)
    on, off = with_and_without(cls, **options)
    buy = TinyMultiBehaviorDataset().matrices["buy"]
    fold = dict(zip(zip(*buy.nonzero()), target_folds(buy, 2)))
    c = dense_term(on, lambda u, i: fold.get((u, i), (u * 2654435761 + i) % 2))
    on.eval(), off.eval()
    with torch.no_grad():
        s_pos = off.predict({"user_id": BATCH["user_id"], "item_id": BATCH["item_id"]})
        s_neg = off.predict({"user_id": BATCH["user_id"], "item_id": BATCH["neg_item_id"]})
    c_pos, c_neg = c[BATCH["user_id"], BATCH["item_id"]], c[BATCH["user_id"], BATCH["neg_item_id"]]
    on.train(), off.train()
    shift = on.calculate_loss(BATCH) - off.calculate_loss(BATCH)
    expected = F.softplus(s_neg + c_neg - s_pos - c_pos).mean() - F.softplus(s_neg - s_pos).mean()
    torch.testing.assert_close(shift.detach().reshape(()), expected, rtol=1e-4, atol=1e-5)
    on.calculate_loss(BATCH).backward()
    assert on.cascade_term.curve.grad.abs().sum() > 0 and on.cascade_term.reliability.weight.grad.abs().sum() > 0


def test_alpha_and_beta_of_the_lists_are_checked_together():
    with pytest.raises(ConfigError, match="'cascade_term_alpha' \\+ 'cascade_term_beta' must be <= 1"):
        build(UnionLightGCN, **TERM, cascade_term_alpha=0.5, cascade_term_beta=0.6)


def test_a_run_with_hard_negatives_trains_on_the_redrawn_batch(workdir, monkeypatch):
    seen = []
    original = UnionLightGCN.prepare_training_batch

    def spy(self, interaction):
        before = interaction["neg_item_id"].clone()
        out = original(self, interaction)
        seen.append(float((out["neg_item_id"] != before).float().mean()))
        return out

    monkeypatch.setattr(UnionLightGCN, "prepare_training_batch", spy)
    cache = workdir / "cascade"
    result = run_recbole_spectral("UnionLightGCN", "ml-100k-mb", config_dict={
        **FAST, "n_layers": 1, "history_term": True, "cascade_term": True, "cascade_term_hard_negatives": 0.5,
        "cascade_term_folds": 2, "cascade_term_cache_dir": str(cache)})
    assert result["test_result"] and all(v == v for v in result["test_result"].values())
    assert seen and 0.3 < sum(seen) / len(seen) < 0.7  # about half the negatives re-drawn (a few users have no list)
    assert len(list(cache.glob("cascade.*.npz"))) == 1


# -- where a model keeps its lists -------------------------------------------------------------------------
def built_with_cache(tmp_path, monkeypatch, writable=True, **overrides):
    data = TinyMultiBehaviorDataset()
    data.dataset_path = str(tmp_path / "data")
    os.makedirs(data.dataset_path)
    if not writable:  # as for a read-only data folder (root may write anywhere, so the check is replaced)
        monkeypatch.setattr("recbole_spectral.model.base.os.access", lambda path, mode: False)
    config = model_config("UnionLightGCN", **TERM, checkpoint_dir=str(tmp_path / "saved"), **overrides)
    return UnionLightGCN(config, data)


def cached(folder):
    return sorted(p.name for p in folder.glob("cascade.*.npz")) if folder.is_dir() else []


def test_lists_are_cached_in_the_data_folder_else_beside_the_checkpoints_else_where_the_key_says(tmp_path, monkeypatch):
    built_with_cache(tmp_path / "a", monkeypatch)
    assert len(cached(tmp_path / "a" / "data" / "cascade_cache")) == 1 and not cached(tmp_path / "a" / "saved" / "cascade_cache")
    built_with_cache(tmp_path / "b", monkeypatch, writable=False)
    assert not cached(tmp_path / "b" / "data" / "cascade_cache") and len(cached(tmp_path / "b" / "saved" / "cascade_cache")) == 1
    built_with_cache(tmp_path / "c", monkeypatch, cascade_term_cache_dir=str(tmp_path / "own"))
    assert len(cached(tmp_path / "own")) == 1 and not cached(tmp_path / "c" / "saved" / "cascade_cache")


def test_alpha_plus_beta_of_exactly_one_is_accepted():
    assert build(UnionLightGCN, **TERM, cascade_term_alpha=0.5, cascade_term_beta=0.5).cascade_term is not None


def test_the_stage_option_reaches_the_model_and_a_foreign_state_is_refused():
    model = build(UnionLightGCN, **TERM, cascade_term_stages=True)
    assert model.cascade_term.n_stages == 3 and build(UnionLightGCN, **TERM).cascade_term.n_stages == 1
    with pytest.raises(RuntimeError, match="Missing key"):  # strict by default, as torch's
        model.load_state_dict({})


def test_a_model_draws_its_hard_negatives_from_the_depth_it_is_given():
    # share 1, depth 1: every negative of a user with a list becomes that user's first item on the full graph
    model = build(UnionLightGCN, **TERM, cascade_term_hard_negatives=1.0, cascade_term_hard_negatives_depth=1)
    term = model.cascade_term
    first = {u: int(term.ranked_items[term.ranked_indptr[u]]) for u in range(1, N_USERS)
             if term.ranked_indptr[u + 1] > term.ranked_indptr[u]}
    batch = model.prepare_training_batch(Interaction({k: v.clone() for k, v in BATCH.items()}))
    assert [int(i) for i in batch["neg_item_id"]] == [first[int(u)] for u in BATCH["user_id"]]
