"""The multimodal field's baselines (VBPR, FREEDOM, LGMRec, SMORE) and their blocks, on small inputs.

Blocks: degree-sensitive edge pruning (layers/edge_pruning.py; fixed CSR sparse products, layers/graph.FixedSparse,
in tests/test_graph.py), the fused spectrum filter (layers/feature_fft.fused_spectral_filter) and the
dataset's max-pooled item graph (ItemStructures.max_item_graph). Every model's forward pass and loss against a
dense reference of its equations: tests/test_reference_mm.py. Models run on the tiny in-test multimodal
dataset of tests/test_ssr.py; the one-epoch run, checkpoint reload and full-sort == predict check on
ml-100k-mm are in tests/test_all_models.py.
"""
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import yaml
from recbole.data.interaction import Interaction

from recbole_spectral.layers.edge_pruning import DegreeSensitiveEdgePruning
from recbole_spectral.layers.feature_fft import fused_spectral_filter, spectral_filter
from recbole_spectral.layers.graph import FixedSparse, normalized_bipartite_graph
from recbole_spectral.model.multimodal.freedom import FREEDOM
from recbole_spectral.model.multimodal.lgmrec import LGMRec
from recbole_spectral.model.multimodal.smore import SMORE
from recbole_spectral.model.multimodal.vbpr import VBPR
from tests.test_ssr import N_ITEMS, N_USERS, TinyMultiModalDataset

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"VBPR": VBPR, "FREEDOM": FREEDOM, "LGMRec": LGMRec, "SMORE": SMORE}


def model_config(name, **overrides):
    config = yaml.safe_load((ROOT / "properties" / "model" / f"{name}.yaml").read_text())
    config.update({"USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "NEG_PREFIX": "neg_",
                   "device": torch.device("cpu"), "dataset": "tiny", "embedding_size": 8, "knn_k": 3})
    config.update(overrides)
    return config


def build(name, modalities=("image", "text"), **overrides):
    torch.manual_seed(0)
    return MODELS[name](model_config(name, **overrides), TinyMultiModalDataset(modalities))


def batch(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Interaction({
        "user_id": torch.randint(1, N_USERS, (n,), generator=g),
        "item_id": torch.randint(1, N_ITEMS, (n,), generator=g),
        "neg_item_id": torch.randint(1, N_ITEMS, (n,), generator=g),
    })


def dense(graph):
    return graph.to_dense() if not isinstance(graph, FixedSparse) else graph.to_dense()


# -- blocks ------------------------------------------------------------------------------------------
R = sp.csr_matrix(np.array([  # 4 users x 5 items; user 0 and item 0 have high degree
    [1, 1, 1, 1, 1],
    [1, 1, 0, 0, 0],
    [1, 0, 0, 1, 0],
    [1, 0, 0, 0, 0],
], dtype=np.float32))  # 10 edges


def test_pruning_keeps_the_right_number_of_edges_and_renormalises_on_the_kept_graph():
    pruning = DegreeSensitiveEdgePruning(R, keep_ratio=0.6)
    assert pruning.n_edges == 10 and pruning.n_kept == 6  # ⌊10 · 0.6⌋
    a = pruning.sample(torch.Generator().manual_seed(1)).to_dense()
    assert torch.equal(a, a.T)
    block = a[:4, 4:]
    kept = block > 0
    assert int(kept.sum()) == 6
    assert torch.all(a[:4, :4] == 0) and torch.all(a[4:, 4:] == 0)
    assert np.all(R.toarray()[kept.numpy()] == 1)  # only real edges are kept
    d_u, d_i = kept.sum(1, keepdim=True).float(), kept.sum(0, keepdim=True).float()
    expected = torch.where(kept, (d_u * d_i).clamp_min(1).rsqrt(), torch.zeros(()))
    torch.testing.assert_close(block, expected)  # D̃_u^{-1/2} R̃ D̃_i^{-1/2} of the kept edges


def test_pruning_is_seeded_and_full_ratio_gives_the_normalised_graph():
    pruning = DegreeSensitiveEdgePruning(R, keep_ratio=0.5)
    first = pruning.sample(torch.Generator().manual_seed(3)).to_dense()
    assert torch.equal(first, pruning.sample(torch.Generator().manual_seed(3)).to_dense())
    draws = {tuple(pruning.sample_edges(torch.Generator().manual_seed(s)).sort().values.tolist()) for s in range(20)}
    assert len(draws) > 1
    full = normalized_bipartite_graph(R).to_dense()
    torch.testing.assert_close(DegreeSensitiveEdgePruning(R, 1.0).sample().to_dense(), full)
    torch.testing.assert_close(pruning.full_graph().to_dense(), full)


def test_pruning_drops_edges_between_high_degree_nodes_more_often():
    """p ∝ 1/√(d_u d_i): the edge (user 0, item 0) (degrees 5 and 4) survives less often than (user 1, item 1)
    (degrees 2 and 2)."""
    pruning = DegreeSensitiveEdgePruning(R, keep_ratio=0.3)  # 3 of 10 edges
    g = torch.Generator().manual_seed(0)
    edges = list(zip(pruning.users.tolist(), pruning.items.tolist()))
    hub, low = edges.index((0, 0)), edges.index((1, 1))
    counts = np.zeros(len(edges))
    for _ in range(2000):
        counts[pruning.sample_edges(g).numpy()] += 1
    assert counts[hub] < 0.75 * counts[low]


def test_one_kept_edge_is_drawn_with_probability_proportional_to_its_weight():
    """u0-i0 (d_u 2, d_i 1), u0-i1 (2, 2), u1-i1 (1, 2): weights 1/√2, 1/2, 1/√2; keeping one edge of three draws
    each with probability weight / Σ weights (0.369, 0.261, 0.369), as torch.multinomial would."""
    pruning = DegreeSensitiveEdgePruning(sp.csr_matrix(np.array([[1, 1], [0, 1]], dtype=np.float32)), keep_ratio=0.5)
    assert pruning.n_kept == 1
    g = torch.Generator().manual_seed(0)
    counts = np.bincount([int(pruning.sample_edges(g)) for _ in range(40_000)], minlength=3) / 40_000
    weights = pruning.weights.numpy()
    np.testing.assert_allclose(counts, weights / weights.sum(), atol=0.008)


def test_keeping_every_edge_draws_nothing_and_pruned_matrices_keep_their_shape():
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    full = DegreeSensitiveEdgePruning(R, keep_ratio=1.0)
    torch.testing.assert_close(full.sample(g).to_dense(), normalized_bipartite_graph(R).to_dense())
    np.testing.assert_array_equal(full.sample_matrix(g).toarray(), R.toarray())
    assert torch.equal(g.get_state(), state)
    pruning = DegreeSensitiveEdgePruning(R, keep_ratio=0.3)  # item 4 and user 3 have one edge each
    assert {pruning.sample_matrix(g).shape for _ in range(20)} == {(4, 5)}


def test_fused_spectrum_of_two_signals_is_their_circular_convolution():
    """With all-ones weights, irFFT(rFFT(x) rFFT(y)) (orthonormal) = (x ⊛ y)/√d."""
    d = 8
    x, y = torch.randn(3, d), torch.randn(3, d)
    ones = torch.ones(d // 2 + 1, dtype=torch.cfloat)
    conv = torch.stack([sum(x[:, k] * y[:, (n - k) % d] for k in range(d)) for n in range(d)], 1) / d ** 0.5
    torch.testing.assert_close(fused_spectral_filter([x, y], ones), conv, atol=1e-5, rtol=1e-5)
    w = torch.randn(d // 2 + 1, dtype=torch.cfloat)
    torch.testing.assert_close(fused_spectral_filter([x], w), spectral_filter(x, w))


def test_max_item_graph_is_the_elementwise_maximum_of_the_modality_graphs():
    data = TinyMultiModalDataset()
    pooled = data.max_item_graph(3, {"text": 5}).to_dense()
    expected = torch.maximum(data.knn_graph("image", 3).to_dense(), data.knn_graph("text", 5).to_dense())
    torch.testing.assert_close(pooled, expected)


# -- every model ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MODELS))
def test_loss_backpropagates_to_every_parameter(name):
    model = build(name)
    model.train()
    loss = model.calculate_loss(batch())
    assert torch.isfinite(loss)
    loss.backward()
    for pname, parameter in model.named_parameters():
        assert parameter.grad is not None and float(parameter.grad.abs().sum()) > 0, pname


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("modalities", [("audio",), ("a", "b", "c")])
def test_any_modality_set_trains_and_scores(name, modalities):
    model = build(name, modalities)
    model.train()
    model.calculate_loss(batch()).backward()
    model.eval()
    users = Interaction({"user_id": torch.tensor([1, 2])})
    scores = model.full_sort_predict(users).view(2, N_ITEMS)
    pairs = Interaction({"user_id": torch.tensor([1, 1, 2]), "item_id": torch.tensor([3, 7, 9])})
    torch.testing.assert_close(model.predict(pairs), scores[[0, 0, 1], [3, 7, 9]])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_evaluation_scores_are_deterministic(name):
    model = build(name, dropout_rate=0.5) if name == "SMORE" else build(name)
    model.eval()
    with torch.no_grad():
        first = model.compute_embeddings()
        second = model.compute_embeddings()
    for a, b in zip(first, second):
        assert torch.equal(a, b)


# -- VBPR ----------------------------------------------------------------------------------------------
def test_vbpr_score_is_the_inner_product_of_id_and_visual_parts():
    model = build("VBPR", embedding_size=2, reg_weight=0.0)
    f = torch.cat([torch.as_tensor(model_feature) for model_feature in
                   (TinyMultiModalDataset().features["image"], TinyMultiModalDataset().features["text"])], 1)
    assert torch.equal(model.item_raw_features, f)  # features side by side, dataset order
    with torch.no_grad():
        model.user_embedding[5] = torch.tensor([1.0, 2.0, 3.0, -1.0])  # [p_u ; θ_u]
        model.item_embedding[7] = torch.tensor([0.5, -0.5])            # q_i
        model.item_linear.weight.zero_()
        model.item_linear.weight[0, 0] = 2.0                           # W f_i = (2 f_i0 + b0, b1)
        model.item_linear.bias.copy_(torch.tensor([0.1, 0.2]))
    model.eval()
    expected = 1 * 0.5 + 2 * -0.5 + 3 * (2 * f[7, 0] + 0.1) - 1 * 0.2
    score = model.predict(Interaction({"user_id": torch.tensor([5]), "item_id": torch.tensor([7])}))
    torch.testing.assert_close(score, expected.view(1))


def test_vbpr_loss_is_bpr_plus_the_batch_norm_penalty():
    model = build("VBPR", reg_weight=0.5)
    b = batch(8)
    u = model.user_embedding[b["user_id"]]
    p, q = model.item_vectors(b["item_id"]), model.item_vectors(b["neg_item_id"])
    bpr = -torch.log(torch.sigmoid((u * p).sum(1) - (u * q).sum(1))).mean()
    expected = bpr + 0.5 * (u.norm() + p.norm() + q.norm()) / 8
    torch.testing.assert_close(model.calculate_loss(b), expected)


# -- FREEDOM -------------------------------------------------------------------------------------------
def freedom_embeddings(model, adj):
    ego = torch.cat([model.user_embedding.weight, model.item_embedding.weight])
    layers = [ego]
    for _ in range(model.n_ui_layers):
        layers.append(adj @ layers[-1])
    out = torch.stack(layers).mean(0)
    h = model.item_embedding.weight
    for _ in range(model.n_mm_layers):
        h = dense(model.item_graph) @ h
    return out[:N_USERS], out[N_USERS:] + h


def test_freedom_evaluates_on_the_full_graph_and_trains_on_the_pruned_one():
    model = build("FREEDOM", dropout=0.5)
    full = normalized_bipartite_graph(TinyMultiModalDataset().inter_matrix()).to_dense()
    model.eval()
    with torch.no_grad():
        for got, want in zip(model.compute_embeddings(), freedom_embeddings(model, full)):
            torch.testing.assert_close(got, want)
    model.train()
    model.on_train_epoch_start(0, None)
    pruned = model.masked_adj.to_dense()
    assert (pruned > 0).sum() == 2 * (model.pruning.n_edges // 2)
    with torch.no_grad():
        for got, want in zip(model.compute_embeddings(), freedom_embeddings(model, pruned)):
            torch.testing.assert_close(got, want)


def test_freedom_item_graph_mixes_the_modalities_by_name():
    data = TinyMultiModalDataset()
    model = build("FREEDOM", modality_weights={"image": 0.1, "text": 0.9})
    expected = 0.1 * data.knn_graph("image", 3).to_dense() + 0.9 * data.knn_graph("text", 3).to_dense()
    torch.testing.assert_close(model.item_graph.to_dense(), expected)
    equal = build("FREEDOM", modalities=("image", "audio"), modality_weights={"image": 0.1, "text": 0.9})
    data = TinyMultiModalDataset(("image", "audio"))
    expected = 0.5 * data.knn_graph("image", 3).to_dense() + 0.5 * data.knn_graph("audio", 3).to_dense()
    torch.testing.assert_close(equal.item_graph.to_dense(), expected)  # not every modality named: equal


def test_freedom_epoch_hook_resamples_the_pruned_graph_under_the_global_seed():
    model = build("FREEDOM", dropout=0.5)
    torch.manual_seed(5)
    model.on_train_epoch_start(0, None)
    first = model.masked_adj.to_dense()
    model.on_train_epoch_start(1, None)
    assert not torch.equal(first, model.masked_adj.to_dense())
    torch.manual_seed(5)
    model.on_train_epoch_start(0, None)
    assert torch.equal(first, model.masked_adj.to_dense())


def test_freedom_loss_adds_one_bpr_term_per_modality():
    model = build("FREEDOM", reg_weight=0.3)
    model.train()
    b = batch(8)
    with torch.no_grad():
        user_e, item_e = model.compute_embeddings()
        u = user_e[b["user_id"]]

        def bpr(p, q):
            return -torch.log(torch.sigmoid((u * p).sum(1) - (u * q).sum(1))).mean()

        expected = bpr(item_e[b["item_id"]], item_e[b["neg_item_id"]])
        for m in model.modalities:
            proj = model.projection[m](model.features[m])
            expected = expected + 0.3 * bpr(proj[b["item_id"]], proj[b["neg_item_id"]])
        torch.testing.assert_close(model.calculate_loss(b), expected)


# -- LGMRec --------------------------------------------------------------------------------------------
def test_lgmrec_user_modality_input_is_the_mean_of_its_items_projections():
    model = build("LGMRec", n_mm_layers=0)
    r = TinyMultiModalDataset().inter_matrix().toarray()
    r = (r > 0).astype(np.float32)
    with torch.no_grad():
        out = model.modality_local("image")
        items = model.features["image"] @ model.projection["image"]
        deg = r.sum(1, keepdims=True)
        users = torch.from_numpy(np.where(deg > 0, r / np.maximum(deg, 1), 0)) @ items
    torch.testing.assert_close(out, torch.cat([users, items]))


def test_lgmrec_memberships_are_gumbel_in_training_and_plain_softmax_in_evaluation():
    model = build("LGMRec")
    logits = torch.randn(5, 4)
    model.eval()
    torch.testing.assert_close(model.memberships(logits), torch.softmax(logits / model.tau, 1))
    model.train()
    torch.manual_seed(0)
    noisy = model.memberships(logits)
    torch.testing.assert_close(noisy.sum(1), torch.ones(5))
    assert not torch.allclose(noisy, torch.softmax(logits / model.tau, 1))


# -- SMORE ---------------------------------------------------------------------------------------------
def test_smore_uses_per_modality_k_and_the_max_pooled_fusion_graph():
    data = TinyMultiModalDataset()
    model = build("SMORE", modality_knn_k={"text": 5})
    torch.testing.assert_close(model.item_graphs["image"].to_dense(), data.knn_graph("image", 3).to_dense())
    torch.testing.assert_close(model.item_graphs["text"].to_dense(), data.knn_graph("text", 5).to_dense())
    torch.testing.assert_close(model.fusion_graph.to_dense(), data.max_item_graph(3, {"text": 5}).to_dense())
