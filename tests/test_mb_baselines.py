"""The multi-behavior field's baselines on tiny hand-made behavior matrices: HistoryPop's exact ranking,
CascadingRank against its equations, CRGCN's cascade on a 2-user graph, MB-CGCN's stages and warm-up,
MuLe's also-bought / not-bought graphs and attention, and the building blocks they share."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch
import yaml

from recbole_spectral import paths
from recbole_spectral.errors import ConfigError
from recbole_spectral.layers.csr import CSRRows
from recbole_spectral.layers.multibehavior.target_attention import TargetGuidedAttention
from recbole_spectral.model.multibehavior.cascadingrank import CascadingRank
from recbole_spectral.model.multibehavior.crgcn import CRGCN
from recbole_spectral.model.multibehavior.historypop import HistoryPop
from recbole_spectral.model.multibehavior.mbcgcn import MBCGCN
from recbole_spectral.model.multibehavior.mule import MuLe, also_and_not_bought

# users 1, 2 and items 1..4 (id 0 is RecBole's padding row/column)
PAIRS = {
    "view": [(1, 1), (1, 2), (1, 3), (2, 2), (2, 4)],
    "cart": [(1, 2), (2, 4)],
    "buy": [(1, 1), (2, 2)],  # training target rows
}


def matrix(pairs, shape=(3, 5)):
    u, i = zip(*pairs) if pairs else ((), ())
    return sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=shape)


class TinyDataset:
    """The dataset contract the models use (``MultiBehaviorDataset``), on hand-made pairs."""

    def __init__(self, pairs=PAIRS, behaviors=("view", "cart", "buy"), shape=(3, 5)):
        self.behaviors = list(behaviors)
        self.target_behavior = self.behaviors[-1]
        self.auxiliary_behaviors = self.behaviors[:-1]
        self.shape = shape
        self.matrices = {b: matrix(pairs[b], shape) for b in self.behaviors}

    def num(self, field):
        return self.shape[0] if field == "user_id" else self.shape[1]

    def behavior_matrix(self, behavior):
        return self.matrices[behavior].copy()

    def all_behaviors_matrix(self):
        union = sum(self.matrices.values()).tocsr()
        union.data[:] = 1.0
        return union


def make(model_class, dataset=None, **overrides):
    with open(paths.model_properties_file(model_class.__name__)) as f:
        config = yaml.safe_load(f)
    config.update({"USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "NEG_PREFIX": "neg_",
                   "device": torch.device("cpu"), "dataset": "tiny"})
    config.update(overrides)
    torch.manual_seed(0)
    return model_class(config, dataset or TinyDataset())


def scores(model, users):
    model.eval()
    with torch.no_grad():
        return model.full_sort_predict({"user_id": torch.tensor(users)}).view(len(users), -1)


# -- building blocks ---------------------------------------------------------------------------------
def test_csr_rows_dense_sample_contains_and_sample_outside():
    rows = CSRRows(matrix(PAIRS["view"]))
    np.testing.assert_array_equal(rows.dense(torch.tensor([2, 1])).numpy(), [[0, 0, 1, 0, 1], [0, 1, 1, 1, 0]])
    owner, cols, values = rows.entries(torch.tensor([2, 0, 1]))  # row by row; row 0 has none
    assert owner.tolist() == [0, 0, 2, 2, 2] and cols.tolist() == [2, 4, 1, 2, 3] and values.tolist() == [1.0] * 5
    assert rows.contains(torch.tensor([1, 1, 2]), torch.tensor([3, 4, 4])).tolist() == [True, False, True]
    users = torch.tensor([0, 1, 2] * 200)
    cols, has = rows.sample(users)
    assert has.tolist() == [False, True, True] * 200
    assert rows.contains(users[has], cols[has]).all()
    assert set(cols[users == 2].tolist()) == {2, 4}  # both of user 2's items get drawn
    outside = rows.sample_outside(users)
    assert not rows.contains(users, outside).any() and (outside >= 1).all()


def test_csr_rows_of_empty_one_entry_and_empty_last_rows():
    empty = CSRRows(sp.csr_matrix((3, 4), dtype=np.float32))
    rows = torch.tensor([0, 2, 1])
    found = empty.contains(rows, torch.tensor([1, 1, 3]))
    assert found.dtype == torch.bool and found.tolist() == [False, False, False]
    cols, has = empty.sample(rows)
    assert cols.tolist() == [0, 0, 0] and has.tolist() == [False, False, False]
    one = CSRRows(matrix([(1, 3)], shape=(3, 4)))  # one entry; row 2, the last, is empty
    assert one.contains(rows, torch.tensor([1, 1, 3])).tolist() == [False, False, True]
    assert one.contains(torch.tensor([2]), torch.tensor([3])).tolist() == [False]  # past the last stored key
    cols, has = one.sample(rows)
    assert cols.tolist() == [0, 0, 3] and has.tolist() == [False, False, True]


def test_sample_outside_falls_back_to_the_exact_complement_of_count_rows_and_keeps_full_rows():
    counts = CSRRows(sp.csr_matrix(np.array([[0, 2, 3, 0], [0, 1, 1, 1]], dtype=np.float32)))  # stored values > 1
    torch.manual_seed(0)
    cols = counts.sample_outside(torch.tensor([0, 0, 0, 1]), max_rounds=0)  # straight to the dense complement
    assert cols[:3].tolist() == [3, 3, 3] and 1 <= int(cols[3]) <= 3  # row 1 has no free column: its draw stays


def dense_attention(r, x, key):
    """a_{s->v} = softmax over s's neighbours of <key_s, x_v>; x'_v = sum_s a_{s->v} x_s (dense, float64)."""
    n_users = r.shape[0]
    adjacency = torch.zeros(sum(r.shape), sum(r.shape), dtype=torch.double)
    adjacency[:n_users, n_users:] = torch.tensor(r)
    adjacency[n_users:, :n_users] = torch.tensor(r).T
    x, key = x.double(), key.double()
    weights = torch.softmax((key @ x.T).masked_fill(adjacency == 0, -torch.inf), dim=1).nan_to_num(0.0)
    return weights.T @ x


def test_target_guided_attention_matches_the_dense_formula_and_its_gradients():
    r = matrix(PAIRS["view"]).toarray()
    attention = TargetGuidedAttention(sp.csr_matrix(r))
    x = torch.randn(8, 3, dtype=torch.double, requires_grad=True)
    key = torch.randn(8, 3, dtype=torch.double, requires_grad=True)
    torch.testing.assert_close(attention(x, key), dense_attention(r, x, key))
    assert torch.autograd.gradcheck(attention, (x, key))


@pytest.mark.parametrize("pairs, shape", [([(0, 0), (0, 2), (1, 1), (1, 2)], (3, 4)),  # last user, last item: no edges
                                          ([(1, 2)], (2, 3))])                          # one edge
def test_target_guided_attention_with_isolated_last_nodes_or_a_single_edge(pairs, shape):
    r = matrix(pairs, shape).toarray()
    attention = TargetGuidedAttention(sp.csr_matrix(r))
    # receiver-major row pointers cover every receiver, the isolated last ones too
    assert len(attention.users_send.t_crow) == shape[1] + 1 and len(attention.items_send.t_crow) == shape[0] + 1
    n = sum(shape)
    x = torch.randn(n, 3, dtype=torch.double, requires_grad=True)
    key = torch.randn(n, 3, dtype=torch.double, requires_grad=True)
    torch.testing.assert_close(attention(x, key), dense_attention(r, x, key))
    assert torch.autograd.gradcheck(attention, (x, key))


def test_target_guided_attention_without_edges_passes_nothing():
    attention = TargetGuidedAttention(sp.csr_matrix((3, 4), dtype=np.float32))
    x = torch.randn(7, 2)
    out = attention(x, torch.randn(7, 2))
    assert out.shape == (7, 2) and torch.equal(out, torch.zeros(7, 2))


def test_target_guided_attention_is_stable_for_large_scores():
    # scores ⟨key_s, x_v⟩ of about ±400: exp overflows float32 unless the sender's largest score is subtracted
    r = matrix(PAIRS["view"]).toarray()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(8, 4, generator=generator) * 10
    key = torch.randn(8, 4, generator=generator) * 10
    out = TargetGuidedAttention(sp.csr_matrix(r))(x, key)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.double(), dense_attention(r, x, key), rtol=1e-4, atol=1e-4)


# -- HistoryPop ----------------------------------------------------------------------------------------
def test_history_pop_ranks_own_items_by_latest_stage_then_target_popularity():
    model = make(HistoryPop)
    # stage: view 1, cart 2; popularity: items 1 and 2 bought once -> 1 / (1 + 1)
    expected = [[0, 1.5, 2.5, 1.0, 0.0],   # user 1: item 2 carted, item 1 and 3 viewed (1 more popular)
                [0, 0.5, 1.5, 0.0, 2.0]]   # user 2: item 4 carted, item 2 viewed, then popularity
    torch.testing.assert_close(scores(model, [1, 2])[:, :], torch.tensor(expected))
    assert (scores(model, [2])[0, 1:].argsort(descending=True) + 1).tolist() == [4, 2, 1, 3]


def test_history_pop_earliest_first_and_popularity_over_all_behaviors():
    model = make(HistoryPop, stage_order="earliest_first")
    torch.testing.assert_close(scores(model, [1])[0], torch.tensor([0, 2.5, 2.5, 2.0, 0.0]))
    model = make(HistoryPop, popularity="all_behaviors")  # item 2: 2 users in the union (the max) -> 2/3
    assert torch.isclose(scores(model, [2])[0, 2], torch.tensor(1 + 2 / 3))


def test_history_pop_trains_nothing_and_predict_equals_full_sort():
    model = make(HistoryPop)
    loss = model.calculate_loss({"user_id": torch.tensor([1]), "item_id": torch.tensor([1])})
    assert float(loss) == 0.0 and loss.requires_grad
    pairs = {"user_id": torch.tensor([2, 1, 2]), "item_id": torch.tensor([4, 2, 1])}
    full = scores(model, [1, 2])
    torch.testing.assert_close(model.predict(pairs), full[[1, 0, 1], [4, 2, 1]])


# -- CascadingRank -------------------------------------------------------------------------------------
def cascading_rank_reference(dataset, user, alpha, beta, tolerance, max_iter, stages=False):
    """The published equations for one user, dense, written out directly: r_i of the target behavior (with
    ``stages``, every behavior's r_i in funnel order)."""
    gamma = 1 - alpha - beta
    previous, every = None, []
    for b in dataset.behaviors:
        a = dataset.behavior_matrix(b).toarray().astype(np.float64)
        du, di = a.sum(1), a.sum(0)
        inv = lambda d, p: np.where(d > 0, np.maximum(d, 1e-12) ** p, 0)  # noqa: E731
        a_tilde = inv(du, -0.5)[:, None] * a * inv(di, -0.5)[None, :]
        q_u = np.eye(a.shape[0])[user]
        q_i = a[user] * inv(du, -1.0)[user]
        c_u, c_i = (q_u, q_i) if previous is None else previous
        r_u, r_i = q_u.copy(), q_i.copy()
        for _ in range(max_iter):
            new_u = gamma * a_tilde @ r_i + alpha * q_u + beta * c_u
            new_i = gamma * a_tilde.T @ r_u + alpha * q_i + beta * c_i
            residual = np.abs(new_u - r_u).sum() + np.abs(new_i - r_i).sum()
            r_u, r_i = new_u, new_i
            if residual <= tolerance:
                break
        previous = (r_u, r_i)
        every.append(r_i)
    return np.array(every) if stages else previous[1]


@pytest.mark.parametrize("alpha,beta", [(0.0, 0.9), (0.7, 0.2), (0.3, 0.3)])
def test_cascading_rank_follows_its_equations_per_user(alpha, beta):
    model = make(CascadingRank, alpha=alpha, beta=beta)
    got = scores(model, [1, 2]).numpy()
    for row, user in enumerate([1, 2]):
        expected = cascading_rank_reference(TinyDataset(), user, alpha, beta, 1e-4, 100)
        np.testing.assert_allclose(got[row], expected, rtol=1e-4, atol=1e-6)
    # a user's scores do not depend on the other users of its batch
    np.testing.assert_allclose(scores(model, [2]).numpy()[0], got[1], rtol=1e-5, atol=1e-7)


def cascading_rank_direct_form(model, dataset, users):
    """CascadingRank as it was scored before the increment form: the direct iteration x^{t+1} = γ M x^t + f on
    n x B blocks of all ``users`` at once, a column frozen at its first L1 change <= tolerance (float32)."""
    n_users = model.n_users
    q_u = torch.zeros(n_users, len(users))
    q_u[users, torch.arange(len(users))] = 1.0
    c_u = c_i = None
    for b in range(len(model.behaviors)):
        a = dataset.behavior_matrix(model.behaviors[b]).toarray()
        du, di = a.sum(1), a.sum(0)
        inv_sqrt = lambda d: np.where(d > 0, np.maximum(d, 1e-12) ** -0.5, 0)  # noqa: E731
        graph = torch.from_numpy((inv_sqrt(du)[:, None] * a * inv_sqrt(di)[None, :]).astype(np.float32))  # Ã_b
        q_i = torch.from_numpy((a[users.numpy()] / np.maximum(du[users.numpy()], 1)[:, None]).T.astype(np.float32).copy())
        if b == 0:
            c_u, c_i = q_u, q_i
        fixed_u, fixed_i = model.alpha * q_u + model.beta * c_u, model.alpha * q_i + model.beta * c_i
        r_u, r_i = q_u, q_i
        out_u, out_i = q_u.clone(), q_i.clone()
        done = torch.zeros(len(users), dtype=torch.bool)
        for _ in range(model.max_iter):
            new_u = torch.addmm(fixed_u, graph, r_i, alpha=model.gamma)
            new_i = torch.addmm(fixed_i, graph.T, r_u, alpha=model.gamma)
            fresh = ~done & ((new_u - r_u).abs().sum(0) + (new_i - r_i).abs().sum(0) <= model.tolerance)
            out_u[:, fresh], out_i[:, fresh] = new_u[:, fresh], new_i[:, fresh]
            done |= fresh
            r_u, r_i = new_u, new_i
        out_u[:, ~done], out_i[:, ~done] = r_u[:, ~done], r_i[:, ~done]
        c_u, c_i = out_u, out_i
    return c_i.T


def random_behaviors(seed, n_users=120, n_items=90, counts=(1500, 400, 200)):
    """A random funnel (view ⊇ cart ⊇ buy-ish, popular items drawn more often) on ids 1.."""
    rng = np.random.default_rng(seed)
    pop = rng.pareto(1.2, n_items - 1) + 1
    pairs = {}
    for behavior, count in zip(("view", "cart", "buy"), counts):
        users = rng.integers(1, n_users, count)
        items = rng.choice(np.arange(1, n_items), count, p=pop / pop.sum())
        pairs[behavior] = sorted(set(zip(users.tolist(), items.tolist())))
    return TinyDataset(pairs, shape=(n_users, n_items))


@pytest.mark.parametrize("seed,alpha,beta,block_entries,counts", [(0, 0.0, 0.9, 2 ** 22, (1500, 400, 200)),
                                                                   (1, 0.7, 0.2, 16 * 210, (1500, 400, 200)),
                                                                   (2, 0.3, 0.3, 40 * 210, (1500, 400, 200)),
                                                                   (3, 0.0, 0.9, 16 * 210, (250, 150, 100))])
def test_cascading_rank_increments_rank_like_the_direct_iteration(monkeypatch, seed, alpha, beta, block_entries, counts):
    # small blocks (16 and 40 users of 119) exercise several blocks and converged columns leaving a block; cart and
    # buy have isolated users and items (the sparse funnel: views too), which the model leaves out of its iteration
    monkeypatch.setattr("recbole_spectral.model.multibehavior.cascadingrank._BLOCK_ENTRIES", block_entries)
    dataset = random_behaviors(seed, counts=counts)
    isolated = {b: (bool((a[1:].getnnz(1) == 0).any()), bool((a[:, 1:].getnnz(0) == 0).any()))
                for b, a in dataset.matrices.items()}  # (some user, some item) with no pair in b
    assert isolated["cart"] == isolated["buy"] == (True, True) and isolated["view"][0] == (counts[0] < 1000)
    model = make(CascadingRank, dataset, alpha=alpha, beta=beta)
    users = torch.arange(1, 120)
    got, expected = scores(model, users.tolist()), cascading_rank_direct_form(model, dataset, users)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-7)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # blocks one after another instead of one per thread: the same scores
    try:
        assert torch.equal(scores(model, users.tolist()), got)
    finally:
        torch.set_num_threads(threads)
    # identical rankings: every pair of items the direct form orders (by more than float rounding) keeps its order
    gap = expected[:, :, None] - expected[:, None, :]
    ordered = gap > 1e-6 * expected.abs().amax(1)[:, None, None]
    assert int(ordered.sum()) > 100_000
    assert bool(((got[:, :, None] - got[:, None, :]) > 0)[ordered].all())
    assert torch.equal(got.topk(10, dim=1).indices, expected.topk(10, dim=1).indices)


@pytest.mark.parametrize("alpha,beta,tolerance,max_iter,block", [
    (0.9, 0.05, 0.15, 100, 16),  # many users stop at the first step, where the isolated nodes' share of the change counts
    (0.1, 0.2, 0.01, 100, 16),  # gamma 0.7: stopping steps spread over many steps, converged users leave a block repeatedly
    (0.1, 0.6, 0.5, 3, 16),  # max_iter stops the rest
    (0.2, 0.5, 0.04, 100, 256)])  # one block of all 48 users
def test_cascading_rank_stops_each_user_at_its_own_step(monkeypatch, alpha, beta, tolerance, max_iter, block):
    # every behavior's scores of every user (the padding user 0 and others without a pair in cart or buy included)
    # against the equations for that user alone (float64), each user stopped at its own first L1 change <= tolerance
    monkeypatch.setattr("recbole_spectral.model.multibehavior.cascadingrank._BLOCK_ENTRIES", block * (48 + 20))
    dataset = random_behaviors(4, n_users=48, n_items=20, counts=(300, 120, 60))
    model = make(CascadingRank, dataset, alpha=alpha, beta=beta, tolerance=tolerance, max_iter=max_iter)
    users = torch.arange(48)
    got = model.score_users(users, stages=True)
    assert got.shape == (3, 48, 20)
    for user in range(48):
        expected = cascading_rank_reference(dataset, user, alpha, beta, tolerance, max_iter, stages=True)
        np.testing.assert_allclose(got[:, user].numpy(), expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(model.score_users(users), got[-1])
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # blocks one per thread: the same scores
    try:
        assert torch.equal(model.score_users(users, stages=True), got)
    finally:
        torch.set_num_threads(threads)


def test_cascading_rank_with_beta_zero_is_the_target_graph_alone():
    # alpha = 1: r_i is the item query of the target behavior (the user's bought items / degree)
    model = make(CascadingRank, alpha=1.0, beta=0.0)
    torch.testing.assert_close(scores(model, [1, 2]), torch.tensor([[0, 1.0, 0, 0, 0], [0, 0, 1.0, 0, 0]]))


def test_cascading_rank_refuses_alpha_plus_beta_above_one():
    with pytest.raises(ConfigError, match="alpha' \\+ 'beta'"):
        make(CascadingRank, alpha=0.5, beta=0.6)


# -- CRGCN ---------------------------------------------------------------------------------------------
def test_crgcn_cascade_on_a_two_user_graph():
    # view: u1-i1, u2-i1, u2-i2 ; buy: u1-i1
    dataset = TinyDataset({"view": [(1, 1), (2, 1), (2, 2)], "buy": [(1, 1)]}, behaviors=("view", "buy"), shape=(3, 3))
    model = make(CRGCN, dataset, embedding_size=2)
    e0 = torch.tensor([[0, 0], [1, 0], [0, 1], [0, 0], [1, 1], [2, -1.0]])  # users 0..2, items 0..2
    with torch.no_grad():
        model.user_embedding.weight.copy_(e0[:3])
        model.item_embedding.weight.copy_(e0[3:])
    s = 2 ** -0.5
    view = torch.zeros(6, 6)  # degrees u1 1, u2 2, i1 2, i2 1
    for u, i, w in [(1, 1, 1 / (1 * 2) ** 0.5), (2, 1, 0.5), (2, 2, 1 / (2 * 1) ** 0.5)]:
        view[u, 3 + i] = view[3 + i, u] = w
    buy = torch.zeros(6, 6)
    buy[1, 4] = buy[4, 1] = 1.0

    def rownorm(x):
        n = x.norm(dim=1, keepdim=True)
        return torch.where(n > 0, x / n.clamp(min=1e-12), x)

    e1 = e0 + rownorm(view @ e0)
    e2 = e1 + rownorm(buy @ e1)
    stages = model.cascade()
    torch.testing.assert_close(stages[0].detach(), e1)
    torch.testing.assert_close(stages[1].detach(), e2)
    # e.g. user 1's view message is item 1 scaled: (1, 1) * s / s -> rownorm (s, s)
    torch.testing.assert_close(e1[1], torch.tensor([1 + s, s]))
    user_e, item_e = model.compute_embeddings()
    torch.testing.assert_close(torch.cat([user_e, item_e]).detach(), e2)


def test_crgcn_loss_sums_a_bpr_term_per_behavior_with_negatives_outside_all_interactions(monkeypatch):
    model = make(CRGCN)
    drawn = []
    original = model.all_rows.sample_outside

    def spy(users):
        out = original(users)
        drawn.append((users, out))
        return out

    monkeypatch.setattr(model.all_rows, "sample_outside", spy)
    batch = {"user_id": torch.tensor([1, 2]), "item_id": torch.tensor([1, 2]), "neg_item_id": torch.tensor([3, 1])}
    loss = model.calculate_loss(batch)
    loss.backward()
    assert len(drawn) == 3  # view, cart, buy
    for users, negatives in drawn:
        assert not model.all_rows.contains(users, negatives).any()
    assert all(p.grad is not None for p in model.parameters())


# -- MB-CGCN -------------------------------------------------------------------------------------------
def test_mbcgcn_stages_follow_the_cascade_with_linear_maps():
    model = make(MBCGCN, embedding_size=4, n_layers=[1, 2, 1])
    ego = torch.cat([model.user_embedding.weight, model.item_embedding.weight]).detach()
    graphs = [g.to_dense() for g in model.graphs]

    def lightgcn(g, x, layers):
        out, cur = [x], x
        for _ in range(layers):
            cur = g @ cur
            out.append(cur)
        return torch.stack(out).mean(0)

    s1 = lightgcn(graphs[0], ego, 1)
    s2 = lightgcn(graphs[1], torch.cat([s1[:3] @ model.user_maps[0], s1[3:] @ model.item_maps[0]]).detach(), 2)
    s3 = lightgcn(graphs[2], torch.cat([s2[:3] @ model.user_maps[1], s2[3:] @ model.item_maps[1]]).detach(), 1)
    user_e, item_e = model.compute_embeddings()
    torch.testing.assert_close(torch.cat([user_e, item_e]).detach(), s1 + s2 + s3)


def test_mbcgcn_warmup_runs_once_before_the_first_epoch_and_trains_only_the_id_embeddings():
    model = make(MBCGCN, warmup_epochs=3, warmup_batch_size=2, warmup_learning_rate=0.05)
    maps = [p.detach().clone() for p in [*model.user_maps, *model.item_maps]]
    before = model.user_embedding.weight.detach().clone()
    model.on_train_epoch_start(1, None)  # not the first epoch: nothing
    assert torch.equal(model.user_embedding.weight, before)
    model.on_train_epoch_start(0, None)
    assert model.warmed_up and not torch.equal(model.user_embedding.weight, before)
    assert all(torch.equal(a, b) for a, b in zip(maps, [*model.user_maps, *model.item_maps]))
    after = model.user_embedding.weight.detach().clone()
    model.on_train_epoch_start(0, None)  # a second call (e.g. a re-fit) does not warm up again
    assert torch.equal(model.user_embedding.weight, after)


def test_mbcgcn_warmup_lowers_the_first_behavior_loss():
    model = make(MBCGCN, warmup_epochs=30, warmup_batch_size=5, warmup_learning_rate=0.05, init_std=0.1)
    losses = model.warmup()
    assert len(losses) == 30 and losses[-1] < losses[0]


def test_mbcgcn_warmup_reports_each_epochs_mean_batch_loss():
    # batches of 3 pairs and a learning rate too small to move the weights: the epoch's loss is the mean of its
    # batches' BPR losses at the initial weights (a 0-layer LightGCN: the ID embeddings themselves)
    model = make(MBCGCN, warmup_layers=0, warmup_epochs=1, warmup_batch_size=3, warmup_learning_rate=1e-20, reg_weight=0.0)
    user_e, item_e = model.user_embedding.weight.detach().clone(), model.item_embedding.weight.detach().clone()
    rows = model.first_rows
    users = torch.repeat_interleave(torch.arange(model.n_users), rows.degrees())
    torch.manual_seed(3)
    order = torch.randperm(len(users))
    batches = []
    for start in range(0, len(order), 3):
        user, pos = users[order[start:start + 3]], rows.indices[order[start:start + 3]]
        neg = rows.sample_outside(user)
        batches.append(torch.nn.functional.softplus((user_e[user] * (item_e[neg] - item_e[pos])).sum(-1)).mean().item())
    assert len(batches) >= 2
    torch.manual_seed(3)
    assert model.warmup() == [pytest.approx(sum(batches) / len(batches), rel=1e-5)]


@pytest.mark.parametrize("warmup_layers", [0, 3])
def test_mbcgcn_warmup_is_a_lightgcn_of_warmup_layers_on_the_first_behavior(warmup_layers):
    # one warm-up step over every first-behavior pair: its loss is the BPR of a warmup_layers-layer LightGCN
    # (layer mean) on the first graph at the initial weights, whatever the stages' n_layers
    model = make(MBCGCN, n_layers=[1], warmup_layers=warmup_layers, warmup_epochs=1, warmup_batch_size=10_000,
                 reg_weight=0.0)
    ego = torch.cat([model.user_embedding.weight, model.item_embedding.weight]).detach().clone()
    graph = model.graphs[0].to_dense()
    layers, current = [ego], ego
    for _ in range(warmup_layers):
        current = graph @ current
        layers.append(current)
    user_e, item_e = torch.split(torch.stack(layers).mean(0), [model.n_users, model.n_items])
    rows = model.first_rows
    users = torch.repeat_interleave(torch.arange(model.n_users), rows.degrees())
    torch.manual_seed(7)
    order = torch.randperm(len(users))
    user, pos = users[order], rows.indices[order]
    neg = rows.sample_outside(user)
    expected = torch.nn.functional.softplus((user_e[user] * (item_e[neg] - item_e[pos])).sum(-1)).mean()
    torch.manual_seed(7)
    assert model.warmup() == [pytest.approx(expected.item(), rel=1e-5)]


def test_mbcgcn_layer_list_must_match_the_behaviors():
    assert make(MBCGCN, n_layers=[2]).n_layers == [2, 2, 2]
    with pytest.raises(ConfigError, match="one per behavior"):
        make(MBCGCN, n_layers=[1, 2])


# -- MuLe ----------------------------------------------------------------------------------------------
def test_mule_also_bought_and_not_bought_graphs_come_from_the_training_target():
    both, only = also_and_not_bought(matrix(PAIRS["view"]), matrix(PAIRS["buy"]))
    assert sorted(zip(*both.nonzero())) == [(1, 1), (2, 2)]
    assert sorted(zip(*only.nonzero())) == [(1, 2), (1, 3), (2, 4)]
    both, only = also_and_not_bought(matrix(PAIRS["cart"]), matrix(PAIRS["buy"]))
    assert both.nnz == 0 and sorted(zip(*only.nonzero())) == [(1, 2), (2, 4)]


def test_mule_views_attention_and_gradients():
    model = make(MuLe, embedding_size=4, tda_layers=2)
    views = model.views()
    assert set(views) == {"union", "view", "cart", "buy", "also:view", "also:cart", "not:view", "not:cart"}
    # cart ∩ buy is empty: the also-bought view of cart is its input view (no messages)
    torch.testing.assert_close(views["also:cart"], views["cart"])
    batch = {"user_id": torch.tensor([1, 2]), "item_id": torch.tensor([1, 2]), "neg_item_id": torch.tensor([3, 1])}
    model.calculate_loss(batch).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    # the views and the attention against their formulas: tests/test_reference_mb.py::test_mule_forward_and_loss...


def test_models_refuse_a_plain_dataset():
    class Plain:
        def num(self, field):
            return 3

    for model_class in (CRGCN, MBCGCN, MuLe, HistoryPop, CascadingRank):
        with pytest.raises(ConfigError, match="multi-behavior dataset"):
            make(model_class, Plain())


def test_sample_outside_falls_back_to_the_exact_complement_of_a_nearly_full_row():
    rows = CSRRows(matrix(PAIRS["view"]))  # user 1 holds items 1, 2, 3 of 1..4: only item 4 is free
    users = torch.ones(500, dtype=torch.long)
    assert rows.sample_outside(users, max_rounds=0).tolist() == [4] * 500
