"""Forward pass (full score matrix) and loss of every multi-behavior model (SpectraMB, CRGCN, MB-CGCN, MuLe,
HistoryPop, CascadingRank) against a dense, independent float64 reference written from the paper's / the
authors' equations (tests/reference.py): the reference reads the model's parameters and the dataset's raw
behavior matrices only. Tiny in-test dataset: view / cart / buy on 6 users × 8 items (+ padding)."""
import numpy as np
import pytest
import torch

from recbole_spectral.model.multibehavior.cascadingrank import CascadingRank
from recbole_spectral.model.multibehavior.crgcn import CRGCN
from recbole_spectral.model.multibehavior.historypop import HistoryPop
from recbole_spectral.model.multibehavior.mbcgcn import MBCGCN
from recbole_spectral.model.multibehavior.mule import MuLe
from recbole_spectral.model.multibehavior.spectramb import SpectraMB
from recbole_spectral.model.multibehavior.unionlightgcn import UnionLightGCN
from tests import reference as ref
from tests.helpers import TinyMultiBehaviorDataset, model_config

N_USERS, N_ITEMS = TinyMultiBehaviorDataset.n_users, TinyMultiBehaviorDataset.n_items
BEHAVIORS = TinyMultiBehaviorDataset.behaviors


def build(cls, **overrides):
    torch.manual_seed(0)
    dataset = TinyMultiBehaviorDataset()
    return cls(model_config(cls.__name__, **overrides), dataset), dataset


def full_scores(model):
    model.eval()
    with torch.no_grad():
        return model.full_sort_predict({"user_id": torch.arange(N_USERS)}).view(N_USERS, N_ITEMS)


BATCH = {"user_id": torch.tensor([1, 2, 3, 4, 5, 6, 1, 3]), "item_id": torch.tensor([1, 2, 3, 4, 5, 6, 7, 8]),
         "neg_item_id": torch.tensor([8, 7, 6, 5, 4, 3, 2, 1])}
U, I, J = (BATCH[k].numpy() for k in ("user_id", "item_id", "neg_item_id"))


def behavior(dataset, b):
    return ref.binary(dataset.behavior_matrix(b))


def union(dataset):
    return np.clip(sum(behavior(dataset, b) for b in BEHAVIORS), 0, 1)


# -- HistoryPop ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("stage_order", ["latest_first", "earliest_first"])
@pytest.mark.parametrize("popularity", ["target", "all_behaviors"])
def test_historypop_scores_equal_stage_plus_scaled_popularity(stage_order, popularity):
    model, dataset = build(HistoryPop, stage_order=stage_order, popularity=popularity)
    aux = ["view", "cart"]
    stage = np.zeros((N_USERS, N_ITEMS))
    for position, b in enumerate(aux):  # the highest funnel stage of an auxiliary behavior with (u, i)
        k = position + 1 if stage_order == "latest_first" else len(aux) - position
        stage = np.maximum(stage, k * behavior(dataset, b))
    counts = (behavior(dataset, "buy") if popularity == "target" else union(dataset)).sum(0)
    ref.assert_close(full_scores(model), stage + counts / (counts.max() + 1))
    assert float(model.calculate_loss(BATCH)) == 0.0


def test_historypop_without_auxiliary_behaviors_ranks_by_popularity_alone():
    torch.manual_seed(0)
    dataset = TinyMultiBehaviorDataset()
    dataset.behaviors, dataset.auxiliary_behaviors = ["buy"], []
    dataset.matrices = {"buy": dataset.matrices["buy"]}
    counts = behavior(dataset, "buy").sum(0)
    model = HistoryPop(model_config("HistoryPop"), dataset)
    ref.assert_close(full_scores(model), np.tile(counts / (counts.max() + 1), (N_USERS, 1)))


# -- CascadingRank ------------------------------------------------------------------------------------
def cascading_parts(dataset, b, u):
    """Ã_b = D_u^{-1/2} A_b D_i^{-1/2} (zero rows and columns for isolated nodes) and user u's queries: q_u = e_u,
    q_i = A_b^T D_u^{-1} e_u (zero when u has no pair in b)."""
    a = behavior(dataset, b)
    du, di = a.sum(1), a.sum(0)
    inv_u, inv_i = np.where(du > 0, du, 1) ** -0.5 * (du > 0), np.where(di > 0, di, 1) ** -0.5 * (di > 0)
    return inv_u[:, None] * a * inv_i[None, :], np.eye(N_USERS)[u], (a[u] / du[u] if du[u] > 0 else np.zeros(N_ITEMS))


@pytest.mark.parametrize("alpha,beta", [(0.15, 0.5), (0.3, 0.0), (0.2, 0.8)])
def test_cascadingrank_scores_are_the_fixed_points_of_its_iteration(alpha, beta):
    """Ko et al. (arXiv 2502.11335): r = γ Ã_b r + α q_b + β c with Ã_b the symmetric-normalised bipartite graph of
    behavior b; converged, r solves (I − γ Ã_b) r = α q_b + β c — solved directly here, per behavior in funnel order,
    c the previous behavior's r (the first behavior's own query)."""
    model, dataset = build(CascadingRank, alpha=alpha, beta=beta, tolerance=1e-6, max_iter=500)
    gamma = 1 - alpha - beta
    expected = np.zeros((N_USERS, N_ITEMS))
    for u in range(N_USERS):
        c = None
        for b in BEHAVIORS:
            smooth, q_u, q_i = cascading_parts(dataset, b, u)
            q = np.concatenate([q_u, q_i])
            c = q if c is None else c
            big = np.zeros((N_USERS + N_ITEMS,) * 2)
            big[:N_USERS, N_USERS:], big[N_USERS:, :N_USERS] = smooth, smooth.T
            c = np.linalg.solve(np.eye(len(big)) - gamma * big, alpha * q + beta * c)
        expected[u] = c[N_USERS:]
    ref.assert_close(full_scores(model), expected, rtol=1e-4, atol=1e-5)


def test_cascadingrank_stops_each_user_at_its_own_convergence_or_at_max_iter():
    """Per user and behavior: r ← γ Ã_b r + α q + β c from r = q, kept at the first iteration whose L1 change is at
    most the tolerance, else after max_iter iterations. Here (tolerance 0.01, max_iter 5) on the view graph user 1
    converges at iteration 4 and users 4 and 6 run to the cap: both ways in one batch."""
    alpha, beta, tolerance, max_iter = 0.2, 0.3, 0.01, 5
    model, dataset = build(CascadingRank, alpha=alpha, beta=beta, tolerance=tolerance, max_iter=max_iter)
    expected = np.zeros((N_USERS, N_ITEMS))
    for u in range(N_USERS):
        c = None
        for b in BEHAVIORS:
            smooth, q_u, q_i = cascading_parts(dataset, b, u)
            c_u, c_i = (q_u, q_i) if c is None else c
            r_u, r_i = q_u, q_i
            for _ in range(max_iter):
                new_u = (1 - alpha - beta) * smooth @ r_i + alpha * q_u + beta * c_u
                new_i = (1 - alpha - beta) * smooth.T @ r_u + alpha * q_i + beta * c_i
                change = np.abs(new_u - r_u).sum() + np.abs(new_i - r_i).sum()
                r_u, r_i = new_u, new_i
                if change <= tolerance:
                    break
            c = (r_u, r_i)
        expected[u] = c[1]
    ref.assert_close(full_scores(model), expected, rtol=1e-5, atol=1e-7)


# -- CRGCN --------------------------------------------------------------------------------------------
def crgcn_stages(p, dataset, n_layers, bias):
    e = np.concatenate([p["user_embedding.weight"], p["item_embedding.weight"]])
    stages = []
    for k, b in enumerate(BEHAVIORS):  # E^k = E^{k−1} + rownorm(GCN_b(E^{k−1})), GCN layer = Â_b X + c
        h = e
        for layer in range(n_layers):
            h = ref.bipartite(behavior(dataset, b)) @ h
            if bias:
                h = h + p[f"biases.{k * n_layers + layer}"]
        e = e + ref.normalize(h)
        stages.append(e)
    return stages


def record_draws(model, monkeypatch):
    """Keep every sampled (positive, negative) the loss draws, to give the reference the same pairs."""
    draws = {"pos": [], "neg": []}
    for k, rows in enumerate(model.behavior_rows):
        original = rows.sample

        def sample(users, original=original, k=k):
            pos, has = original(users)
            draws["pos"].append((k, users.clone(), pos.clone(), has.clone()))
            return pos, has
        monkeypatch.setattr(rows, "sample", sample)
    original_outside = model.all_rows.sample_outside

    def outside(users):
        neg = original_outside(users)
        draws["neg"].append(neg.clone())
        return neg
    monkeypatch.setattr(model.all_rows, "sample_outside", outside)
    return draws


@pytest.mark.parametrize("bias", [True, False])
def test_crgcn_forward_and_loss_equal_the_cascade_reference(bias, monkeypatch):
    model, dataset = build(CRGCN, embedding_size=4, n_layers=2, layer_bias=bias, reg_weight=0.3)
    ref.randomise(model)
    p = ref.weights(model)
    stages = crgcn_stages(p, dataset, 2, bias)
    ref.assert_close(full_scores(model), stages[-1][:N_USERS] @ stages[-1][N_USERS:].T)

    model.train()
    draws = record_draws(model, monkeypatch)
    loss = model.calculate_loss(BATCH)
    expected, aux_draws = 0.0, iter(draws["pos"])
    everything = union(dataset)
    for k, (b, e) in enumerate(zip(BEHAVIORS, stages)):
        if b == "buy":
            users, pos = U, I
        else:
            _, rows, picked, has = next(aux_draws)
            users, pos = rows.numpy()[has.numpy()], picked.numpy()[has.numpy()]
            assert np.all(behavior(dataset, b)[users, pos] == 1)  # a positive of behavior b
        neg = draws["neg"][k].numpy()
        assert np.all(everything[users, neg] == 0)  # negatives outside every training interaction
        users_e, items_e = e[:N_USERS], e[N_USERS:]
        expected += ref.bpr((users_e[users] * items_e[pos]).sum(1), (users_e[users] * items_e[neg]).sum(1))
    expected += 0.3 * (np.linalg.norm(p["user_embedding.weight"]) + np.linalg.norm(p["item_embedding.weight"])) / N_ITEMS
    ref.assert_close(loss, expected)


def test_crgcn_behavior_without_pairs_in_the_batch_adds_nothing(monkeypatch):
    """A batch whose users have no cart rows: the cart term is empty and adds 0 (not NaN, not a padding row)."""
    torch.manual_seed(0)
    dataset = TinyMultiBehaviorDataset()
    cart = dataset.matrices["cart"].tolil()
    cart[[1, 2], :] = 0
    dataset.matrices["cart"] = cart.tocsr()
    dataset.matrices["cart"].eliminate_zeros()
    model = CRGCN(model_config("CRGCN", embedding_size=4, n_layers=1, layer_bias=False, reg_weight=0.0), dataset)
    model.train()
    draws = record_draws(model, monkeypatch)
    batch = {"user_id": torch.tensor([1, 2, 1]), "item_id": torch.tensor([1, 2, 3]), "neg_item_id": torch.tensor([4, 5, 6])}
    loss = model.calculate_loss(batch)
    stages = crgcn_stages(ref.weights(model), dataset, 1, False)
    (_, users, view_pos, has), (_, _, _, cart_has) = draws["pos"]
    assert not cart_has.any()
    terms = [(stages[0], users.numpy()[has.numpy()], view_pos.numpy()[has.numpy()], draws["neg"][0]),  # view
             (stages[2], batch["user_id"].numpy(), batch["item_id"].numpy(), draws["neg"][2])]  # buy; cart: none
    expected = 0.0
    for e, users, pos, neg in terms:
        ue, ie = e[:N_USERS], e[N_USERS:]
        expected += ref.bpr((ue[users] * ie[pos]).sum(1), (ue[users] * ie[neg.numpy()]).sum(1))
    ref.assert_close(loss, expected)


# -- MB-CGCN ------------------------------------------------------------------------------------------
def test_mbcgcn_forward_and_loss_equal_the_cascade_reference():
    model, dataset = build(MBCGCN, embedding_size=4, n_layers=[1, 2, 3], reg_weight=0.3, warmup_epochs=0)
    ref.randomise(model)
    p = ref.weights(model)
    current = np.concatenate([p["user_embedding.weight"], p["item_embedding.weight"]])
    total = 0.0
    for k, (b, layers) in enumerate(zip(BEHAVIORS, [1, 2, 3])):  # S^k = LGC_b([S_U W_u ; S_I W_i]), E = Σ_k S^k
        if k:
            current = np.concatenate([current[:N_USERS] @ p[f"user_maps.{k - 1}"], current[N_USERS:] @ p[f"item_maps.{k - 1}"]])
        current = ref.layer_mean(ref.bipartite(behavior(dataset, b)), current, layers)
        total = total + current
    users, items = total[:N_USERS], total[N_USERS:]
    ref.assert_close(full_scores(model), users @ items.T)
    model.train()
    expected = ref.bpr((users[U] * items[I]).sum(1), (users[U] * items[J]).sum(1))
    squares = (p["user_embedding.weight"][U] ** 2).sum() + (p["item_embedding.weight"][I] ** 2).sum() \
        + (p["item_embedding.weight"][J] ** 2).sum() + sum((p[f"{m}.{k}"] ** 2).sum() for m in ("user_maps", "item_maps") for k in (0, 1))
    ref.assert_close(model.calculate_loss(BATCH), expected + 0.3 * squares / (2 * len(U)))


# -- LightGCN on the union of all behaviors ---------------------------------------------------------------
@pytest.mark.parametrize("require_pow", [False, True])
def test_unionlightgcn_forward_and_loss_equal_lightgcn_on_the_union_graph(require_pow):
    model, dataset = build(UnionLightGCN, embedding_size=4, n_layers=2, reg_weight=0.3, require_pow=require_pow)
    ref.randomise(model)
    p = ref.weights(model)
    final = ref.layer_mean(ref.bipartite(union(dataset)), np.concatenate([p["user_embedding.weight"], p["item_embedding.weight"]]), 2)
    users, items = final[:N_USERS], final[N_USERS:]
    ref.assert_close(full_scores(model), users @ items.T)
    model.train()
    rows = [p["user_embedding.weight"][U], p["item_embedding.weight"][I], p["item_embedding.weight"][J]]
    emb = sum((r ** 2).sum() / 2 if require_pow else np.linalg.norm(r) for r in rows) / len(U)  # RecBole's EmbLoss
    ref.assert_close(model.calculate_loss(BATCH), ref.bpr((users[U] * items[I]).sum(1), (users[U] * items[J]).sum(1)) + 0.3 * emb)


def adam(weights, grads, state, lr, betas=(0.9, 0.999), eps=1e-8):
    """One step of Adam (Kingma & Ba; torch's defaults, no weight decay) on float64 arrays, in place."""
    state["t"] = state.get("t", 0) + 1
    for k, (w, g) in enumerate(zip(weights, grads)):
        m = state.setdefault(("m", k), np.zeros_like(w))
        v = state.setdefault(("v", k), np.zeros_like(w))
        m[:] = betas[0] * m + (1 - betas[0]) * g
        v[:] = betas[1] * v + (1 - betas[1]) * g * g
        m_hat, v_hat = m / (1 - betas[0] ** state["t"]), v / (1 - betas[1] ** state["t"])
        w -= lr * m_hat / (np.sqrt(v_hat) + eps)


@pytest.mark.parametrize("batch_size", [10_000, 12])
def test_mbcgcn_warmup_equals_adam_on_the_first_behavior_lightgcn_bpr(monkeypatch, batch_size):
    """Warm-up (before epoch 0): E^(0) trained as a LightGCN (layer mean, warmup_layers) on the first behavior:
    BPR + reg · (‖e_u‖² + ‖e_i‖² + ‖e_j‖²)/(2B), Adam at warmup_learning_rate, per batch of view pairs (one batch
    per epoch, or batches of 12); two epochs, each reported as the mean of its batches' losses. The gradient is
    written out by hand: with G = P E, P the (symmetric) layer-mean operator, ∂/∂G of softplus(G_u·(G_j − G_i)) is
    σ(·)(G_j − G_i) for u, σ(·)G_u for j, −σ(·)G_u for i."""
    model, dataset = build(MBCGCN, embedding_size=4, n_layers=[1], reg_weight=0.3, warmup_epochs=2, warmup_layers=2,
                           warmup_batch_size=batch_size, warmup_learning_rate=0.05, init_std=0.3)
    p = ref.weights(model)
    assert 0.2 < p["user_embedding.weight"].std() < 0.4  # N(0, init_std)
    negatives = []
    original = model.first_rows.sample_outside
    monkeypatch.setattr(model.first_rows, "sample_outside", lambda users: negatives.append(original(users)) or negatives[-1])
    monkeypatch.setattr(torch, "randperm", lambda n, device=None: torch.arange(n, device=device))  # pairs in CSR order
    model_losses = model.warmup()
    e_u, e_i, state = p["user_embedding.weight"].copy(), p["item_embedding.weight"].copy(), {}
    view = behavior(dataset, "view")
    a = ref.bipartite(view)
    mean = sum(np.linalg.matrix_power(a, k) for k in range(3)) / 3  # P
    users_all, items_all = np.nonzero(view)
    starts = list(range(0, len(users_all), batch_size))
    assert len(negatives) == 2 * len(starts) and (batch_size > 100 or len(starts) > 1)
    expected_losses, batch_losses = [], []
    for step, neg in enumerate(negatives):
        start = starts[step % len(starts)]
        users_b, pos_b, neg_b = users_all[start:start + batch_size], items_all[start:start + batch_size], neg.numpy()
        g = mean @ np.concatenate([e_u, e_i])
        gu, gi = g[:N_USERS], g[N_USERS:]
        x = (gu[users_b] * (gi[neg_b] - gi[pos_b])).sum(1)
        batch = len(users_b)
        reg = 0.3 * ((e_u[users_b] ** 2).sum() + (e_i[pos_b] ** 2).sum() + (e_i[neg_b] ** 2).sum()) / (2 * batch)
        batch_losses.append(ref.softplus(x).mean() + reg)
        if len(batch_losses) == len(starts):
            expected_losses.append(np.mean(batch_losses))
            batch_losses = []
        s = ref.sigmoid(x)[:, None] / batch
        dg = np.zeros_like(g)
        np.add.at(dg, users_b, s * (gi[neg_b] - gi[pos_b]))
        np.add.at(dg, N_USERS + neg_b, s * gu[users_b])
        np.add.at(dg, N_USERS + pos_b, -s * gu[users_b])
        de = mean @ dg
        du, di = de[:N_USERS], de[N_USERS:]
        np.add.at(du, users_b, 0.3 * e_u[users_b] / batch)
        np.add.at(di, pos_b, 0.3 * e_i[pos_b] / batch)
        np.add.at(di, neg_b, 0.3 * e_i[neg_b] / batch)
        adam([e_u, e_i], [du, di], state, lr=0.05)
    ref.assert_close(model_losses, expected_losses)
    ref.assert_close(model.user_embedding.weight, e_u, rtol=1e-4, atol=1e-6)
    ref.assert_close(model.item_embedding.weight, e_i, rtol=1e-4, atol=1e-6)

    once, _ = build(MBCGCN, embedding_size=4, n_layers=[1], warmup_epochs=1)  # the trainer's hook runs it once
    before = once.user_embedding.weight.detach().clone()
    once.on_train_epoch_start(0, None)
    after = once.user_embedding.weight.detach().clone()
    once.on_train_epoch_start(0, None)
    assert not torch.equal(before, after) and torch.equal(after, once.user_embedding.weight)


# -- MuLe ---------------------------------------------------------------------------------------------
def mule_propagate(step, x, n_layers):
    """P(X) = X + Σ_l X_l / l,  X_l = rownorm(step(X_{l−1}))."""
    out, current = x.copy(), x
    for layer in range(1, n_layers + 1):
        current = ref.normalize(step(current))
        out = out + current / layer
    return out


def tda(r, x, key):
    """Target-guided attention on the binary pattern r (Lee et al., CIKM'24, geonwooko/MULE): a message from s to
    its neighbour v weighs softmax over s's neighbours v' of ⟨t_s, x_v'⟩; x'_v = Σ_{s ∈ N(v)} a_{s→v} x_s."""
    a = np.zeros((N_USERS + N_ITEMS,) * 2)
    a[:N_USERS, N_USERS:], a[N_USERS:, :N_USERS] = r, r.T
    out = np.zeros_like(x)
    for s in range(len(a)):
        neighbours = np.nonzero(a[s])[0]
        if len(neighbours):
            weights = ref.softmax(x[neighbours] @ key[s])
            out[neighbours] += weights[:, None] * x[s]
    return out


def view_attention(p, prefix, key, views):
    """a_g = softmax_g(w·[key; V_g] + c), output Σ_g a_g V_g."""
    logits = np.stack([ref.linear(p, f"{prefix}.score", np.concatenate([key, v], 1))[:, 0] for v in views], 1)
    return (ref.softmax(logits, 1)[:, :, None] * np.stack(views, 1)).sum(1)


def test_mule_forward_and_loss_equal_the_reference():
    model, dataset = build(MuLe, embedding_size=4, gnn_layers=2, tda_layers=2)
    ref.randomise(model)
    p = ref.weights(model)
    target = behavior(dataset, "buy")
    ego = np.concatenate([p["user_embedding.weight"], p["item_embedding.weight"]])
    views = {"union": mule_propagate(lambda x: ref.bipartite(union(dataset)) @ x, ego, 2)}
    for b in BEHAVIORS:
        views[b] = mule_propagate(lambda x, b=b: ref.bipartite(behavior(dataset, b)) @ x, views["union"], 2)
    aux = ["view", "cart"]
    for b in aux:
        both = behavior(dataset, b) * target
        views[f"also:{b}"] = mule_propagate(lambda x, g=ref.bipartite(both): g @ x, views[b], 2)
        only = behavior(dataset, b) - both
        views[f"not:{b}"] = mule_propagate(lambda x, r=only: tda(r, x, views["buy"]), views[b], 2)
    coarse = view_attention(p, "behavior_attention", views["buy"], [views[b] for b in BEHAVIORS])
    final = view_attention(p, "graph_attention", coarse, [views[f"not:{b}"] for b in aux] + [views[f"also:{b}"] for b in aux])
    users, items = final[:N_USERS], final[N_USERS:]
    ref.assert_close(full_scores(model), users @ items.T)
    model.train()
    ref.assert_close(model.calculate_loss(BATCH), ref.bpr((users[U] * items[I]).sum(1), (users[U] * items[J]).sum(1)))


def test_mule_with_the_target_behavior_alone_is_its_behavior_view():
    """No auxiliary behavior (e.g. drop_behaviors): no also/not-bought views, no graph attention; the one-view
    behavior attention gives weight 1, so the final embeddings are P_buy(P_union(E^(0)))."""
    torch.manual_seed(0)
    dataset = TinyMultiBehaviorDataset()
    dataset.behaviors, dataset.auxiliary_behaviors = ["buy"], []
    dataset.matrices = {"buy": dataset.matrices["buy"]}
    model = MuLe(model_config("MuLe", embedding_size=4, gnn_layers=2, tda_layers=1), dataset)
    ref.randomise(model)
    p = ref.weights(model)
    ego = np.concatenate([p["user_embedding.weight"], p["item_embedding.weight"]])
    graph = ref.bipartite(behavior(dataset, "buy"))
    final = mule_propagate(lambda x: graph @ x, mule_propagate(lambda x: graph @ x, ego, 2), 2)
    ref.assert_close(full_scores(model), final[:N_USERS] @ final[N_USERS:].T)


# -- SpectraMB ----------------------------------------------------------------------------------------
def spectramb_reference(p, dataset, c, removed=None):
    """SpectraMB (KDD'26, miaomiao-cai2/SpectraMB-KDD2026 model.py / lightGCN.py): views with row L2 normalisation
    and layer sum, started from E^(0) (parallel), from the previous behavior's filtered view (cascade; the first
    from E^(0), or from E_g with cascade_global); feature-frequency filters (static, or modulated by the purified
    global view); feature-softmax global-context attention (×d) or the views' mean; E* = c_f F + c_g G + c_res E_g;
    plus the history term β_b(u) = α_b · 2σ(ρ_{u,b}) on observed auxiliary pairs; extra views. ``removed``: the index of
    a view set to zero before the fusion (diagnose's inference ablation)."""
    d = p["user_embedding.weight"].shape[1]

    def propagate(graph, x):
        out, current = x.copy(), x
        for _ in range(c["n_layers"]):
            current = ref.normalize(graph @ current)
            out = out + current
        return out

    ego = np.concatenate([p["user_embedding.weight"], p["item_embedding.weight"]])
    raw_global = propagate(ref.bipartite(union(dataset)), ego)
    purified = ref.spectral(raw_global, ref.complex_weight(p["global_filter.weight"]))
    def view(k, graph, start):
        e = propagate(ref.bipartite(graph), start if c["view_mode"] != "parallel" else ego)
        w = ref.complex_weight(p[f"view_filters.{k}.weight"])
        if c["filter_mode"] == "context":  # W ⊙ (1 + G M + m), per node
            delta = ref.linear(p, f"view_filters.{k}.modulation", purified).reshape(len(e), -1, 2)
            w = w * (1 + ref.complex_weight(delta))
        return ref.spectral(e, w)

    views, start = [], raw_global if c["view_mode"] == "cascade_global" else ego
    for k, b in enumerate(BEHAVIORS):
        views.append(view(k, behavior(dataset, b), start))
        start = views[-1]
    # MuLe-style extra views of every auxiliary b (also bought: b ∩ buy; not bought: b minus buy), started from b's view
    target = behavior(dataset, "buy")
    for kind in c["extra_views"]:
        for b in ["view", "cart"]:
            graph = behavior(dataset, b) * target if kind == "also_bought" else behavior(dataset, b) * (1 - target)
            views.append(view(len(views), graph, views[BEHAVIORS.index(b)]))
    if removed is not None:
        views[removed] = np.zeros_like(views[removed])
    if c["fusion"] == "attention":
        fused = np.mean([d * ref.softmax(np.tanh(ref.linear(p, f"attention.hidden.{k}", purified)) @ p[f"attention.score.{k}.weight"].T, -1) * v
                         for k, v in enumerate(views)], axis=0)
    else:
        fused = np.mean(views, axis=0)
    final = c["fused_weight"] * fused + c["global_weight"] * purified + c["residual_weight"] * raw_global
    users, items = final[:N_USERS], final[N_USERS:]
    beta = p["history_term.weight"] * 2 * ref.sigmoid(p["history_term.reliability.weight"])  # n_users × n_aux
    edges = sum(beta[:, [k]] * behavior(dataset, b) for k, b in enumerate(["view", "cart"]))
    return users, items, edges


TOLERANCE = {"rtol": 5e-4, "atol": 1e-5}  # float32 through random complex filters in cascade: scores up to ~500
SPECTRAMB = {"embedding_size": 8, "attention_size": 5, "n_layers": 2, "layer_aggregation": "sum", "l2_normalize": True,
             "filter_init": "random", "attention_softmax": "feature", "fused_weight": 0.7, "global_weight": 0.4,
             "residual_weight": 1.3, "residual_global": True, "history_term": True, "history_term_init": 0.5,
             "reg_weight": 0.2, "final_reg_weight": 0.1, "spectral_filter": True, "extra_views": []}


@pytest.mark.parametrize("filter_mode,view_mode,fusion,require_pow", [
    ("static", "parallel", "attention", False), ("context", "parallel", "attention", True),
    ("context", "cascade", "attention", False), ("context", "cascade_global", "mean", False)])
@pytest.mark.parametrize("extra_views", [[], ["also_bought", "not_bought"]])
def test_spectramb_forward_and_loss_equal_the_reference(filter_mode, view_mode, fusion, require_pow, extra_views):
    c = {**SPECTRAMB, "filter_mode": filter_mode, "view_mode": view_mode, "fusion": fusion, "require_pow": require_pow,
         "extra_views": extra_views}
    model, dataset = build(SpectraMB, **c)
    ref.randomise(model)
    p = ref.weights(model)
    users, items, edges = spectramb_reference(p, dataset, c)
    scores = users @ items.T + edges
    ref.assert_close(full_scores(model), scores, **TOLERANCE)
    model.train()
    pos, neg = scores[U, I], scores[U, J]
    expected = -np.log(1e-10 + ref.sigmoid(pos - neg)).mean()  # RecBole's BPRLoss
    rows = (p["user_embedding.weight"][U], p["item_embedding.weight"][I], p["item_embedding.weight"][J])
    if require_pow:  # RecBole's EmbLoss: Σ ‖·‖_F² / batch / 2, or Σ ‖·‖_F / batch
        expected += 0.2 * sum((r ** 2).sum() for r in rows) / len(U) / 2
    else:
        expected += 0.2 * sum(np.linalg.norm(r) for r in rows) / len(U)
    expected += 0.1 * (np.linalg.norm(users[U]) + np.linalg.norm(items[I]) + np.linalg.norm(items[J])) / len(U)
    ref.assert_close(model.calculate_loss(BATCH), expected, **TOLERANCE)


@pytest.mark.parametrize("removed", [0, 2])
def test_spectramb_view_removed_at_inference_is_the_reference_without_that_view(removed):
    c = {**SPECTRAMB, "filter_mode": "context", "view_mode": "cascade", "fusion": "attention", "require_pow": False}
    model, dataset = build(SpectraMB, **c)
    ref.randomise(model)
    users, items, edges = spectramb_reference(ref.weights(model), dataset, c, removed=removed)
    with model.inference_ablations()[f"without {BEHAVIORS[removed]}"]():
        ref.assert_close(full_scores(model), users @ items.T + edges, **TOLERANCE)
    users, items, edges = spectramb_reference(ref.weights(model), dataset, c)
    ref.assert_close(full_scores(model), users @ items.T + edges, **TOLERANCE)  # restored
