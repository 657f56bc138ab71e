"""SSR (recbole_spectral.model.multimodal.ssr): every option on a tiny in-test multimodal dataset against hand
formulas (dense matrices), edge pruning, masking semantics, the released operator, checkpoint round trip,
and a one-epoch CLI run on ml-100k-mm."""
import io

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from recbole.data.interaction import Interaction

from recbole_spectral.cli import main as cli_main
from recbole_spectral.errors import ConfigError
from recbole_spectral.hyperparameters import check_model
from recbole_spectral.layers.graph import normalized_bipartite_graph
from recbole_spectral.layers.edge_pruning import DegreeSensitiveEdgePruning
from recbole_spectral.layers.multimodal.hsno import ReleasedHSNO
from recbole_spectral.model.multimodal import ssr as ssr_module
from recbole_spectral.model.multimodal.ssr import SSR
from tests.helpers import TinyMultiModalDataset, model_config, pairwise_batch

N_USERS, N_ITEMS = TinyMultiModalDataset.n_users, TinyMultiModalDataset.n_items


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a busy shared machine a 2-thread LAPACK eigh of the tiny graph's 250 × 250
    Laplacian was measured at 7 s against 0.02 s single-threaded."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def ssr_config(**overrides):
    """The shipped YAML with a small width and the linear encoder (the hand formulas read its one weight)."""
    return model_config("SSR", **{"embedding_size": 8, "knn_k": 3, "feature_encoder": "linear", **overrides})


def batch(n=16, seed=0):
    return pairwise_batch(N_USERS, N_ITEMS, n, seed)



def hand_signal(model, dataset):
    """X by the formulas of the docstring with dense matrices (fusion: sum returns it)."""
    a = normalized_bipartite_graph(dataset.inter_matrix()).to_dense()
    n_layers = model.n_layers
    g = sum(torch.linalg.matrix_power(a, k) for k in range(n_layers + 1))
    g = g if model.layer_aggregation == "sum" else g / (n_layers + 1)
    s = model.item_graph.to_dense() if model.item_graph is not None else torch.zeros(N_ITEMS, N_ITEMS)
    t = model.knn_layers
    early = model.item_graph_mode == "early" and model.item_graph is not None
    late = model.item_graph_mode == "late" and model.item_graph is not None and t > 0
    smooth = sum(torch.linalg.matrix_power(s, k) for k in range(t + 1)) if early else torch.eye(N_ITEMS)
    s_t = torch.linalg.matrix_power(s, t)

    def backbone(users, items):
        x = g @ torch.cat([users, smooth @ items])
        if late:
            x = torch.cat([x[:N_USERS], x[N_USERS:] + s_t @ x[N_USERS:]])
        return x

    r = (torch.as_tensor(dataset.inter_matrix().toarray(), dtype=torch.float32) > 0).float()
    mean = r / r.sum(1, keepdim=True).clamp_min(1)
    ids = backbone(model.user_embedding.weight, model.item_embedding.weight)
    parts = [ids]
    for m in model.modalities:
        f = model.fixed_signal_input[m]
        w = model.projection[m].weight.T
        if model.gated_bands:  # gated_bands: X_id ⊙ [mean of the items' gates ; σ(FW)]
            parts.append(ids * torch.cat([mean @ torch.sigmoid(f @ w), torch.sigmoid(f @ w)]))
            continue
        items = model.item_embedding.weight * torch.sigmoid(f @ w) if model.gated_input else f @ w  # gated_id: E_I ⊙ σ(FW)
        users = mean @ (smooth @ items) if model.user_modality == "item_mean" else F.normalize(model.user_preference[m], dim=1)
        parts.append(backbone(users, items))
    return torch.cat(parts, 1)


@pytest.mark.parametrize("overrides", [
    {"item_graph_mode": "late", "user_modality": "item_mean"},
    {"item_graph_mode": "early", "knn_layers": 2, "user_modality": "item_mean"},
    {"user_modality": "free", "item_graph_mode": "late"},
    {"user_modality": "free", "item_graph_mode": "early"},
    {"item_graph_mode": "late", "exact_max_nodes": 10_000, "user_modality": "item_mean"},
    {"use_item_graph": False, "n_layers": 1, "user_modality": "item_mean"},
    {"layer_aggregation": "mean", "user_modality": "free"},
    {"use_modalities": False, "use_item_graph": False},
    {"modality_signal": "gated_id", "user_modality": "item_mean", "item_graph_mode": "late"},
    {"modality_signal": "gated_id", "user_modality": "item_mean", "item_graph_mode": "early", "knn_layers": 2},
    {"modality_signal": "gated_id", "user_modality": "free"},
    {"modality_signal": "gated_bands", "user_modality": "item_mean", "item_graph_mode": "late"},
    {"modality_signal": "gated_bands", "user_modality": "item_mean", "item_graph_mode": "early", "knn_layers": 2},
])
def test_sum_fusion_equals_the_hand_formula(overrides):
    """fusion 'sum': the bands add back to X; X matches late / early fusion and the user signals by hand."""
    torch.manual_seed(0)
    dataset = TinyMultiModalDataset()
    model = SSR(ssr_config(fusion="sum", **overrides), dataset)
    model.eval()
    with torch.no_grad():
        users, items = model.compute_embeddings()
        expected = hand_signal(model, dataset)
    assert torch.allclose(torch.cat([users, items]), expected, atol=1e-4)


def test_late_fusion_adds_the_item_graph_at_full_weight():
    torch.manual_seed(0)
    dataset = TinyMultiModalDataset()
    late = SSR(ssr_config(fusion="sum", item_graph_mode="late"), dataset)
    plain = SSR(ssr_config(fusion="sum", use_item_graph=False), dataset)
    plain.load_state_dict(late.state_dict())
    late.eval(), plain.eval()
    with torch.no_grad():
        x_late = torch.cat(late.compute_embeddings())[N_USERS:, :8]
        x_plain = torch.cat(plain.compute_embeddings())[N_USERS:, :8]
    assert torch.allclose(x_late, x_plain + late.item_graph.to_dense() @ x_plain, atol=1e-5)


def test_item_mean_user_signal_is_the_mean_of_projected_item_features():
    torch.manual_seed(0)
    dataset = TinyMultiModalDataset()
    model = SSR(ssr_config(fusion="sum", n_layers=0, use_item_graph=False, user_modality="item_mean"), dataset)
    assert len(model.user_preference) == 0  # no free per-user modality parameters
    model.eval()
    with torch.no_grad():
        users, _ = model.compute_embeddings()
    r = dataset.inter_matrix()
    for j, m in enumerate(model.modalities):
        projected = model.projection[m](model.fixed_signal_input[m])
        for u in (1, 7, 42):
            expected = projected[r[u].indices].mean(0)
            assert torch.allclose(users[u, 8 * (j + 1): 8 * (j + 2)], expected, atol=1e-5)


def test_gated_item_mean_users_average_the_kept_edges_in_training_and_all_edges_at_evaluation():
    """modality_signal gated_id: branch m's item rows are E_I ⊙ σ(enc_m(F_m)); with item_mean a user's row is the
    mean of its items' gated rows — over the epoch's kept edges in training, over all edges at evaluation."""
    torch.manual_seed(0)
    dataset = TinyMultiModalDataset()
    model = SSR(ssr_config(modality_signal="gated_id", user_modality="item_mean", use_item_graph=False,
                           edge_keep_ratio=0.5, seed=3), dataset)
    assert len(model.user_preference) == 0 and model.fixed_signal == {}  # nothing fixed to precompute
    m, d = model.modalities[0], 8
    gated = model.item_embedding.weight * torch.sigmoid(model.projection[m](model.fixed_signal_input[m]))
    model.train()
    kept = model.resample_training_graph()
    full = dataset.inter_matrix().tocsr()
    with torch.no_grad():
        z = model.learned_input()
        model.eval()
        z_eval = model.learned_input()
    for u in (1, 7, 42):
        if kept[u].nnz:
            assert torch.allclose(z[u, d: 2 * d], gated[kept[u].indices].mean(0), atol=1e-5)
        assert torch.allclose(z_eval[u, d: 2 * d], gated[full[u].indices].mean(0), atol=1e-5)
    assert any(kept[u].nnz < full[u].nnz for u in (1, 7, 42))
    assert torch.allclose(z_eval[N_USERS:, d: 2 * d], gated, atol=1e-6)


def test_gated_bands_band_only_the_id_signal_and_gate_each_band_per_node():
    """modality_signal gated_bands: only the d ID columns are propagated and banded; band b of branch m is the ID
    band b with each item's row times σ(enc_m(F_m)) and each user's row times the mean of its items' gates (over
    the kept edges in training)."""
    torch.manual_seed(0)
    dataset = TinyMultiModalDataset()
    model = SSR(ssr_config(modality_signal="gated_bands", user_modality="item_mean", edge_keep_ratio=0.5, seed=3),
                dataset)
    assert model.learned_dim == 8 and model.fixed_signal == {} and len(model.user_preference) == 0
    m, d = model.modalities[1], 8
    model.train()
    kept = model.resample_training_graph()
    gate = torch.sigmoid(model.projection[m](model.fixed_signal_input[m]))
    u1, u2 = [u for u in range(1, N_USERS) if kept[u].nnz][:2]
    rows = torch.tensor([u1, u2, N_USERS + 3, N_USERS + 10])
    with torch.no_grad():
        bands = model.node_bands(rows)
        ids = model.bands.stacked_bands(model.learned_signal(model.train_adj), rows, laplacian=model.train_laplacian)
    assert bands.shape == (4, model.n_bands, d * (1 + len(model.modalities)))
    assert torch.allclose(bands[..., :d], ids)
    expected_gates = [gate[kept[u1].indices].mean(0), gate[kept[u2].indices].mean(0), gate[3], gate[10]]
    for row, g in enumerate(expected_gates):
        assert torch.allclose(bands[row, :, 2 * d: 3 * d], ids[row] * g, atol=1e-6)


def test_gated_bands_gates_of_some_rows_equal_those_rows_of_every_gate():
    """node_gates(m, rows) averages only the rows' users, in any row order, and equals every node's gates at rows."""
    torch.manual_seed(0)
    model = SSR(ssr_config(modality_signal="gated_bands", user_modality="item_mean", edge_keep_ratio=0.5),
                TinyMultiModalDataset())
    rows = torch.tensor([N_USERS + 4, 3, 0, N_USERS + 1, N_USERS - 1, 3])
    for training in (True, False):  # the pruned graph's user means, then the full graph's
        model.train(training)
        for m in model.modalities:
            assert torch.allclose(model.node_gates(m, rows), model.node_gates(m)[rows], atol=1e-6)


def test_gated_bands_need_item_mean_users():
    with pytest.raises(ConfigError, match="user_modality"):
        check_model(SSR, ssr_config(modality_signal="gated_bands", user_modality="free"))


def test_without_modalities_only_the_id_branch_is_banded_and_no_content_enters():
    """use_modalities: False — the control for SSR's content: ID bands only (d columns), no encoders, no free P_m,
    no item-item graph, no InfoNCE (lambda_cl unused); the other stages unchanged."""
    torch.manual_seed(0)
    plain = SSR(ssr_config(use_modalities=False, use_item_graph=False, lambda_cl=1.0, band_drop_prob=0.5, lambda_mask=1.0),
                TinyMultiModalDataset())
    assert plain.modalities == [] and plain.signal_dim == 8 and plain.item_graph is None
    assert len(plain.projection) == 0 and len(plain.user_preference) == 0
    assert {name.split(".")[0] for name, _ in plain.named_parameters()} == {"user_embedding", "item_embedding",
                                                                            "hsno_user", "hsno_item"}
    assert plain.node_bands().shape == (N_USERS + N_ITEMS, 3, 8)
    # lambda_cl unused: the loss is the same at any InfoNCE weight
    loss = plain.calculate_loss(batch())
    torch.manual_seed(0)
    other = SSR(ssr_config(use_modalities=False, use_item_graph=False, lambda_cl=0.0, band_drop_prob=0.5, lambda_mask=1.0),
                TinyMultiModalDataset())
    other.load_state_dict(plain.state_dict())
    torch.manual_seed(1)
    a = plain.calculate_loss(batch())
    torch.manual_seed(1)
    assert float(other.calculate_loss(batch())) == pytest.approx(float(a), rel=1e-6)
    loss.backward()
    assert all(p.grad is not None for p in plain.parameters())


def test_without_modalities_the_item_graph_is_refused():
    with pytest.raises(ConfigError, match="use_item_graph.*use_modalities is False"):
        check_model(SSR, ssr_config(use_modalities=False, use_item_graph=True))


def test_one_band_without_modalities_trains_and_scores():
    """n_bands: 1 with use_modalities: False — LightGCN-like ID signal through the fusion operator (no masking:
    one band cannot be dropped); a cheap control that must run."""
    torch.manual_seed(0)
    model = SSR(ssr_config(use_modalities=False, use_item_graph=False, n_bands=1), TinyMultiModalDataset())
    loss = model.calculate_loss(batch())
    assert torch.isfinite(loss)
    loss.backward()
    model.eval()
    scores = model.full_sort_predict(Interaction({"user_id": torch.arange(4)}))
    assert scores.shape == (4 * N_ITEMS,) and torch.isfinite(scores).all()


@pytest.mark.parametrize("n_bands", [1, 2])
def test_masking_needs_two_bands(n_bands):
    # with M = 1 there is no other band to keep: band_drop_prob draws nothing and the loss is the unmasked one;
    # from M = 2 on the masked copy enters the consistency term
    dataset, data = TinyMultiModalDataset(), batch()
    losses = []
    for p in (0.0, 0.5):
        torch.manual_seed(0)
        model = SSR(ssr_config(n_bands=n_bands, band_drop_prob=p, lambda_mask=1.0), dataset).train()
        torch.manual_seed(1)
        losses.append(model.calculate_loss(data).item())
    assert (losses[0] == losses[1]) == (n_bands == 1)


def test_removing_a_band_at_inference_zeroes_it_before_the_fusion():
    torch.manual_seed(0)
    model = SSR(ssr_config(), TinyMultiModalDataset()).eval()
    with torch.no_grad():
        bands = model.node_bands()
        for b in range(model.n_bands):
            cut = bands.clone()
            cut[:, b] = 0.0
            with model.inference_ablations()[f"without band {b + 1}"]():
                torch.testing.assert_close(torch.cat(model.compute_embeddings()), model.fuse(cut, None, model.n_users))
        torch.testing.assert_close(torch.cat(model.compute_embeddings()), model.fuse(bands, None, model.n_users))  # restored


def test_free_preferences_are_regularised():
    torch.manual_seed(0)
    dataset = TinyMultiModalDataset()
    model = SSR(ssr_config(user_modality="free", pref_reg_weight=0.0, band_drop_prob=0.0), dataset)
    base = float(model.calculate_loss(batch()))
    model.pref_reg_weight = 0.5
    users = torch.unique(batch()["user_id"])
    extra = 0.5 * sum(float(model.user_preference[m][users].pow(2).sum(1).mean()) for m in model.modalities)
    assert float(model.calculate_loss(batch())) == pytest.approx(base + extra, rel=1e-5)


def prune_edges(r, keep_ratio, generator=None):
    return DegreeSensitiveEdgePruning(r, keep_ratio).sample_matrix(generator)


def test_prune_edges_keeps_the_right_count_seeded_and_prefers_low_degree_edges():
    rng = np.random.default_rng(0)
    r = sp.random(300, 200, density=0.05, random_state=1, format="csr")
    r.data[:] = 1.0
    kept = prune_edges(r, 0.3, torch.Generator().manual_seed(5))
    assert kept.nnz == int(0.3 * r.nnz)
    assert (kept.multiply(r) != kept).nnz == 0  # a subset of the original edges, binary
    again = prune_edges(r, 0.3, torch.Generator().manual_seed(5))
    assert (kept != again).nnz == 0
    assert prune_edges(r, 1.0).nnz == r.nnz
    # a hub user (degree 100) and 100 users of degree 1 sharing the same items: hub edges go first
    hub = sp.lil_matrix((101, 100))
    hub[0, :] = 1
    for u in range(1, 101):
        hub[u, u - 1] = 1
    counts = np.zeros(2)
    for seed in range(20):
        k = prune_edges(hub.tocsr(), 0.5, torch.Generator().manual_seed(seed)).tocsr()
        counts += [k[0].nnz, k[1:].nnz]
    assert counts[0] < counts[1] / 3  # P ∝ 1/sqrt(100·2) vs 1/sqrt(1·2)
    del rng


def test_model_prunes_per_epoch_renormalises_and_evaluates_on_the_full_graph():
    torch.manual_seed(0)
    dataset = TinyMultiModalDataset()
    model = SSR(ssr_config(edge_keep_ratio=0.5), dataset)
    full = SSR(ssr_config(edge_keep_ratio=1.0), dataset)
    full.load_state_dict(model.state_dict())
    model.train()
    model.on_train_epoch_start(0, None)
    first = model.train_adj.to_dense().clone()
    n_edges = dataset.inter_matrix().nnz
    assert int((first > 0).sum()) == 2 * round(0.5 * n_edges)
    kept = sp.csr_matrix(first[:N_USERS, N_USERS:].numpy() > 0, dtype=np.float32)
    assert torch.allclose(first, normalized_bipartite_graph(kept).to_dense(), atol=1e-6)  # renormalised
    model.on_train_epoch_start(1, None)
    assert not torch.equal(first, model.train_adj.to_dense())  # redrawn every epoch
    assert model._graph()[0] is model.train_adj
    for m in model.modalities:  # the feature part's user means and bands on the pruned graph
        assert model.fixed_bands_train[m].shape == model.fixed_bands[m].shape
        assert not torch.allclose(model.fixed_bands_train[m], model.fixed_bands[m])
    model.calculate_loss(batch()).backward()
    model.eval(), full.eval()
    assert model._graph()[0] is model.norm_adj
    with torch.no_grad():
        assert torch.allclose(torch.cat(model.compute_embeddings()), torch.cat(full.compute_embeddings()), atol=1e-6)


def test_training_bands_come_from_the_pruned_graph():
    # Chebyshev bands (no exact path): in training both parts are banded on the epoch's pruned graph
    torch.manual_seed(0)
    model = SSR(ssr_config(edge_keep_ratio=0.5, exact_max_nodes=0, user_modality="item_mean"), TinyMultiModalDataset())
    model.train()
    model.on_train_epoch_start(0, None)
    rows, d = torch.tensor([0, 3, N_USERS + 2, N_USERS + 9]), model.embedding_size
    with torch.no_grad():
        bands = model.node_bands(rows)
        learned = model.bands.stacked_bands(model.learned_signal(model.train_adj), rows, laplacian=model.train_laplacian)
        torch.testing.assert_close(bands[..., :d], learned[..., :d])
        for j, m in enumerate(model.modalities):
            torch.testing.assert_close(bands[..., d * (j + 1): d * (j + 2)], model.projection[m](model.fixed_bands_train[m][rows]))


def test_held_out_loss_scores_only_the_pairs_the_pruned_graph_left_out():
    torch.manual_seed(0)
    dataset = TinyMultiModalDataset()
    quiet = {"edge_keep_ratio": 0.5, "lambda_mask": 0.0, "lambda_reg": 0.0, "lambda_cl": 0.0, "pref_reg_weight": 0.0,
             "loss_type": "BPR"}
    model = SSR(ssr_config(loss_pairs="held_out", **quiet), dataset)
    every = SSR(ssr_config(loss_pairs="all", **quiet), dataset)
    every.load_state_dict(model.state_dict())
    model.train(), every.train()
    model.on_train_epoch_start(0, None)
    every.on_train_epoch_start(0, None)  # same seed: the same draw
    assert torch.equal(every.train_adj.to_dense(), model.train_adj.to_dense())
    graph = model.train_adj.to_dense()[:N_USERS, N_USERS:] > 0
    observed = torch.as_tensor(dataset.inter_matrix().toarray() > 0)
    kept_u, kept_i = graph.nonzero(as_tuple=True)
    out_u, out_i = (observed & ~graph).nonzero(as_tuple=True)
    neg = torch.ones(len(kept_u), dtype=torch.long)

    def pairs(users, items, negs):
        return Interaction({"user_id": users, "item_id": items, "neg_item_id": negs})

    # a batch of kept edges only: nothing to score
    assert model.calculate_loss(pairs(kept_u, kept_i, neg)).item() == 0.0
    # a mixed batch: the mean over its held-out pairs, i.e. what the plain loss gives on those pairs alone
    users, items = torch.cat([kept_u[:5], out_u[:7]]), torch.cat([kept_i[:5], out_i[:7]])
    negs = torch.randint(1, N_ITEMS, (12,), generator=torch.Generator().manual_seed(1))
    expected = every.calculate_loss(pairs(out_u[:7], out_i[:7], negs[5:]))
    assert torch.allclose(model.calculate_loss(pairs(users, items, negs)), expected, atol=1e-6)
    # one held-out pair in the batch: its own loss, not a share of it
    one = every.calculate_loss(pairs(out_u[:1], out_i[:1], negs[5:6]))
    mixed = pairs(torch.cat([kept_u[:3], out_u[:1]]), torch.cat([kept_i[:3], out_i[:1]]), negs[2:6])
    assert torch.allclose(model.calculate_loss(mixed), one, atol=1e-6)
    # loss_pairs: all scores every pair on the pruned graph too, the kept edges included
    assert every.calculate_loss(pairs(kept_u, kept_i, neg)).item() > 0.0
    # the option needs pruning
    with pytest.raises(ConfigError, match="loss_pairs.*edge_keep_ratio is 1.0"):
        check_model(SSR, {**ssr_config(loss_pairs="held_out", edge_keep_ratio=1.0)})


def test_mlp_encoder_acts_per_band_and_trains():
    torch.manual_seed(0)
    model = SSR(ssr_config(feature_encoder="mlp", mlp_hidden=5, user_modality="item_mean"), TinyMultiModalDataset())
    rows = torch.tensor([0, 3, N_USERS + 2, N_USERS + 9])
    bands = model.node_bands(rows)
    assert bands.shape == (4, model.n_bands, 3 * 8)
    for j, m in enumerate(model.modalities):
        for b in range(model.n_bands):
            expected = model.projection[m](model.fixed_bands[m][rows, b])
            assert torch.allclose(bands[:, b, 8 * (j + 1): 8 * (j + 2)], expected, atol=1e-6)
    # the signal the borders are placed on: the learned part beside each modality's features through the MLP's
    # first (linear) layer, mlp_hidden (5) columns each
    with torch.no_grad():
        expected = torch.cat([model.learned_signal()] + [model.projection[m][0](model.fixed_signal[m]) for m in model.modalities], 1)
        torch.testing.assert_close(model.full_signal(), expected)
    model.calculate_loss(batch()).backward()
    for m in model.modalities:
        assert all(float(p.grad.abs().sum()) > 0 for p in model.projection[m].parameters())


@pytest.mark.parametrize("semantics", ["consistency_only", "score_masked"])
def test_mask_semantics(semantics, monkeypatch):
    torch.manual_seed(0)
    model = SSR(ssr_config(mask_semantics=semantics, band_drop_prob=0.5, lambda_mask=0.0, lambda_cl=0.0, lambda_reg=0.0),
                TinyMultiModalDataset())
    keep = {}

    def fixed_mask(n_rows, n_bands, drop_prob, generator=None, device=None):
        keep["mask"] = (torch.arange(n_rows * n_bands).reshape(n_rows, n_bands) % 3 != 0).float() / (1 - drop_prob)
        return keep["mask"]

    monkeypatch.setattr(ssr_module, "band_keep_mask", fixed_mask)
    unmasked = SSR(ssr_config(mask_semantics=semantics, band_drop_prob=0.0, lambda_cl=0.0, lambda_reg=0.0), TinyMultiModalDataset())
    unmasked.load_state_dict(model.state_dict())
    base = float(model.calculate_loss(batch()))
    if semantics == "consistency_only":  # the score comes from the unmasked output
        assert base == pytest.approx(float(unmasked.calculate_loss(batch())), rel=1e-6)
    else:
        assert base != pytest.approx(float(unmasked.calculate_loss(batch())), rel=1e-3)
    model.lambda_mask = 1.0
    with torch.no_grad():
        rows = torch.cat([batch()["user_id"], batch()["item_id"] + N_USERS, batch()["neg_item_id"] + N_USERS])
        nodes = torch.unique(rows)
        bands = model.node_bands(nodes)
        n_user_rows = int((nodes < N_USERS).sum())
        full, masked = model.fuse(bands, None, n_user_rows), model.fuse(bands, keep["mask"], n_user_rows)
    expected = F.mse_loss(masked, full) if semantics == "consistency_only" else (masked - full).pow(2).sum(1).mean()
    assert float(model.calculate_loss(batch())) == pytest.approx(base + float(expected), rel=1e-5)


def test_released_operator_stays_near_the_identity():
    torch.manual_seed(0)
    op = ReleasedHSNO(3, 12, rank=4)
    bands = torch.randn(20, 3, 12)
    out, weights = op(bands)
    assert out.shape == (20, 12)
    assert float(weights.min()) >= 0.9 - 1e-6 and float(weights.max()) <= 1.1 + 1e-6
    gains = op.gains()
    assert float(gains.min()) >= np.exp(-0.1) - 1e-6 and float(gains.max()) <= np.exp(0.1) + 1e-6
    assert torch.allclose(op.kernel().sum(0), torch.ones(3), atol=1e-6)  # columns sum to one
    # the released computation, materialising the mixed bands, with and without a mask
    keep = (torch.rand(20, 3) > 0.3).float()
    for mask in (None, keep):
        masked = bands if mask is None else bands * mask.unsqueeze(-1)
        mixed = torch.einsum("mk,nkd->nmd", op.kernel(), masked) * gains * op.scale_mlp(bands.sum(1)).unsqueeze(1)
        w = 1.0 + op.weight_range * torch.tanh(op.weight_mlp(torch.cat([bands.sum(1), mixed.mean(1)], -1)))
        weighted = (mixed * w.unsqueeze(-1)).sum(1)
        expected = weighted * (mixed.sum(1).norm(dim=1, keepdim=True) + 1e-6) / (weighted.norm(dim=1, keepdim=True) + 1e-6)
        assert torch.allclose(op(bands, mask)[0], expected, atol=1e-5)
        assert torch.allclose(op(bands, mask)[0].norm(dim=1), mixed.sum(1).norm(dim=1), rtol=1e-4)  # norm kept


def test_released_operator_without_context_scale_stays_within_the_bounded_factors():
    """context_scale=False: no context MLP; the output is Σ_k (βA)_k H_k scaled by the bounded gains, with the
    norm of the gains times the band sum — within e^±0.1 of the plain band sum's norm."""
    torch.manual_seed(0)
    op = ReleasedHSNO(3, 12, rank=4, context_scale=False)
    assert op.scale_mlp is None
    bands = torch.randn(20, 3, 12)
    out, weights = op(bands)
    gains = op.gains()
    summed = bands.sum(1)
    weighted = gains * ((weights @ op.kernel()).unsqueeze(-1) * bands).sum(1)
    expected = weighted * ((gains * summed).norm(dim=1, keepdim=True) + 1e-6) / (weighted.norm(dim=1, keepdim=True) + 1e-6)
    assert torch.allclose(out, expected, atol=1e-5)
    ratio = out.norm(dim=1) / summed.norm(dim=1)
    assert float(ratio.min()) >= np.exp(-0.1) - 1e-5 and float(ratio.max()) <= np.exp(0.1) + 1e-5


@pytest.mark.parametrize("overrides", [
    {}, {"hsno_mode": "softmax_gate", "mask_semantics": "score_masked"}, {"hsno_context_scale": False}, {"user_modality": "item_mean"}, {"band_method": "energy_or_fixed_chebyshev"},
    {"feature_encoder": "mlp", "edge_keep_ratio": 0.5},
    {"modality_signal": "gated_id", "user_modality": "item_mean"}, {"modality_signal": "gated_id", "feature_encoder": "mlp"},
    {"modality_signal": "gated_bands", "user_modality": "item_mean", "edge_keep_ratio": 0.5},
    {"modality_signal": "gated_bands", "user_modality": "item_mean", "feature_encoder": "mlp"},
])
def test_loss_backpropagates_to_every_part(overrides):
    torch.manual_seed(0)
    model = SSR(ssr_config(lambda_cl=1.0, lambda_mask=1.0, band_drop_prob=0.5, **overrides), TinyMultiModalDataset())
    loss = model.calculate_loss(batch())
    assert torch.isfinite(loss)
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and float(parameter.grad.abs().sum()) > 0, name


def test_band_energies_are_balanced_at_calibration():
    model = SSR(ssr_config(user_modality="item_mean"), TinyMultiModalDataset())
    assert model.bands.shares.sum() == pytest.approx(1.0, abs=1e-6)
    # In this tiny fixture the projections' bias column puts most of the signal energy on the single
    # eigenvalue λ = 0 (the degree-weighted constant); an atom holding more than 1/M cannot be split,
    # so the first band keeps it. Without that component the borders balance the bands.
    assert model.bands.shares[0] > 0.5
    with torch.no_grad():
        for layer in model.projection.values():
            layer.weight[:, -1] = 0.0
    model.calibrate_bands()
    assert np.all(np.abs(model.bands.shares * model.n_bands - 1) < 0.10)


def test_one_modality_skips_alignment_and_trains():
    torch.manual_seed(0)
    model = SSR(ssr_config(lambda_cl=1.0, user_modality="free"), TinyMultiModalDataset(modalities=("audio",)))
    assert float(model.alignment_loss(torch.randn(5, 3, 16))) == 0.0
    model.calculate_loss(batch()).backward()
    assert model.user_preference["audio"].grad is not None


def test_id_view_enters_the_alignment_exactly_like_one_more_modality():
    """cl_views id_and_modalities: the ID slot is one more InfoNCE view. On one modality that gives the loss
    two modalities give (same rows in their modality slots), and its gradient reaches the ID embeddings."""
    torch.manual_seed(0)
    rows = torch.randn(6, 3, 24)
    one = SSR(ssr_config(cl_views="id_and_modalities"), TinyMultiModalDataset(modalities=("audio",)))
    two = SSR(ssr_config(), TinyMultiModalDataset(modalities=("audio", "image")))
    expected = two.alignment_loss(rows)
    assert float(one.alignment_loss(rows[..., 8:])) == pytest.approx(float(expected), rel=1e-6)
    assert float(one.alignment_loss(rows[..., :16])) != pytest.approx(float(expected), rel=1e-3)
    assert float(SSR(ssr_config(), TinyMultiModalDataset(modalities=("audio",))).alignment_loss(rows[..., :16])) == 0.0
    model = SSR(ssr_config(cl_views="id_and_modalities"), TinyMultiModalDataset(modalities=("audio",)))
    items = torch.arange(N_USERS, N_USERS + 6)
    model.alignment_loss(model.node_bands(items)).backward()
    assert float(model.item_embedding.weight.grad.abs().sum()) > 0


def test_three_modalities_use_equal_item_graph_weights_when_unnamed():
    model = SSR(ssr_config(), TinyMultiModalDataset(modalities=("a", "b", "c")))
    assert model.signal_dim == 4 * 8
    scores = model.full_sort_predict(Interaction({"user_id": torch.tensor([1, 2])}))
    assert scores.shape == (2 * N_ITEMS,)


def test_full_sort_predict_caches_and_training_clears_the_cache():
    model = SSR(ssr_config(), TinyMultiModalDataset())
    model.eval()
    users = Interaction({"user_id": torch.tensor([1, 2, 3])})
    first = model.full_sort_predict(users)
    cached = model._cached_embeddings
    assert torch.equal(model.full_sort_predict(users), first) and model._cached_embeddings is cached
    model.train()
    assert model._cached_embeddings is None
    assert first.shape == (3 * N_ITEMS,)


def test_checkpoint_reloads_with_weights_only_and_restores_the_borders():
    torch.manual_seed(0)
    dataset = TinyMultiModalDataset()
    model = SSR(ssr_config(), dataset)
    with torch.no_grad():
        model.user_embedding.weight.mul_(3.0)
    model.calibrate_bands()  # borders move with the signal
    model.eval()
    users = Interaction({"user_id": torch.arange(1, N_USERS)})
    expected = model.full_sort_predict(users)
    state = model.state_dict()
    assert set(state) == {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    torch.manual_seed(1)
    fresh = SSR(ssr_config(), dataset)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    fresh.eval()
    assert torch.allclose(fresh.full_sort_predict(users), expected, atol=1e-5)


def test_no_item_graph_and_fixed_split_switches():
    model = SSR(ssr_config(use_item_graph=False, band_method="fixed"), TinyMultiModalDataset())
    assert model.item_graph is None
    np.testing.assert_allclose(model.bands.borders_lambda(), ssr_config()["fixed_band_borders"], atol=1e-9)
    model.calculate_loss(batch()).backward()


def test_one_epoch_cli_run_on_ml100k_mm(workdir, capsys):
    code = cli_main([
        "--model=SSR", "--dataset=ml-100k-mm", "--epochs=1", "--use_gpu=False", "--state=WARNING",
        "--train_batch_size=8192", "--eval_batch_size=1000000", "--edge_keep_ratio=0.5",
    ])
    assert code == 0
    out = capsys.readouterr().out
    assert "test result" in out and "recall@20" in out


def test_wide_features_are_reduced_by_truncated_svd_keeping_inner_products():
    dataset = TinyMultiModalDataset()
    rng = np.random.default_rng(1)
    for j, m in enumerate(dataset.modalities):  # rank-3 features, 8 and 12 columns wide
        dataset.features[m] = (rng.normal(size=(N_ITEMS, 3)) @ rng.normal(size=(3, 8 + 4 * j))).astype(np.float32)
    model = SSR(ssr_config(feature_rank=4), dataset)
    for m in dataset.modalities:
        assert model.projection[m].in_features == 4 + 1  # rank + the bias column
        reduced, _ = dataset.reduced_features(m, 4)
        raw = torch.as_tensor(dataset.features[m])
        assert torch.allclose(reduced @ reduced.T, raw @ raw.T, atol=1e-3 * float((raw @ raw.T).abs().max()))
    model.calculate_loss(batch()).backward()


def test_tiktok_recipe_is_one_config_file_and_builds_the_gated_model(workdir):
    """properties/recipes/SSR-tiktok.yaml (chosen on TikTok's validation) is a complete config file: it passes the
    hyperparameter checks and gives the gated-bands, item-mean, full-graph model."""
    from recbole_spectral import paths
    from recbole_spectral.config import SpectralConfig

    config = SpectralConfig("SSR", "ml-100k-mm", [str(paths.recipe_file("SSR-tiktok.yaml"))], {"use_gpu": False})
    expected = {"modality_signal": "gated_bands", "user_modality": "item_mean", "edge_keep_ratio": 1.0,
                "loss_pairs": "all", "loss_type": "BPR", "n_layers": 3, "learning_rate": 0.002}
    assert {k: config[k] for k in expected} == expected
    model = SSR(ssr_config(**expected), TinyMultiModalDataset())
    assert model.gated_bands and len(model.user_preference) == 0 and model.learned_dim == 8


def test_read_recipe_gives_a_shipped_recipe_or_a_yaml_file_as_settings(tmp_path):
    """paths.read_recipe: the one reader of recipes for tools that lay them over their own settings."""
    from recbole_spectral import paths

    assert paths.read_recipe("SSR-tiktok.yaml")["modality_signal"] == "gated_bands"
    own = tmp_path / "mine.yaml"
    own.write_text("learning_rate: 0.01\n")
    assert paths.read_recipe(str(own)) == {"learning_rate": 0.01}
    with pytest.raises(FileNotFoundError, match="no-such.yaml"):
        paths.read_recipe("no-such.yaml")


# -- constraints between keys (SSR.check_hyperparameters) ------------------------------------------------
def ssr_settings(**overrides):
    """The merged settings check_model sees for SSR on a dataset with the modalities image and text."""
    return {**ssr_config(), "modalities": ["image", "text"], **overrides}


FIXED_3 = "2 increasing values strictly inside (0, 2) (band_method: fixed, n_bands: 3)"


@pytest.mark.parametrize("overrides,key,expected", [
    ({"band_method": "fixed", "n_bands": 3, "fixed_band_borders": [0.5]}, "fixed_band_borders", FIXED_3),
    ({"band_method": "fixed", "n_bands": 3, "fixed_band_borders": [0.5, 1.0, 1.5]}, "fixed_band_borders", FIXED_3),
    ({"band_method": "fixed", "n_bands": 3, "fixed_band_borders": [1.5, 0.5]}, "fixed_band_borders", FIXED_3),
    ({"band_method": "fixed", "n_bands": 3, "fixed_band_borders": [0.5, 0.5]}, "fixed_band_borders", FIXED_3),
    ({"band_method": "fixed", "n_bands": 3, "fixed_band_borders": [0.0, 1.0]}, "fixed_band_borders", FIXED_3),
    ({"band_method": "fixed", "n_bands": 3, "fixed_band_borders": [1.0, 2.0]}, "fixed_band_borders", FIXED_3),
    ({"band_method": "fixed", "n_bands": 2, "fixed_band_borders": [0.5, 1.0]}, "fixed_band_borders",
     "1 increasing values strictly inside (0, 2) (band_method: fixed, n_bands: 2)"),
    ({"use_modalities": False, "use_item_graph": True}, "use_item_graph",
     "False when use_modalities is False (the item-item graph is built from the modality features)"),
    ({"modality_signal": "gated_bands", "user_modality": "free"}, "user_modality",
     "'item_mean' when modality_signal is gated_bands (a user's gate is its items' mean gate)"),
    ({"loss_pairs": "held_out", "edge_keep_ratio": 1.0}, "loss_pairs",
     "'all' when edge_keep_ratio is 1.0 (held_out scores the pairs the pruned graph left out)"),
    ({"modality_weights": {"image": 0.0, "text": 0.0}}, "modality_weights",
     "weights with a positive sum over the dataset's modalities ['image', 'text']"),
])
def test_each_cross_key_constraint_is_refused_in_one_line_naming_its_key(overrides, key, expected):
    values = ssr_settings(**overrides)
    with pytest.raises(ConfigError) as err:
        check_model(SSR, values)
    assert str(err.value) == f"config key '{key}': expected {expected}, got {values[key]!r}"


@pytest.mark.parametrize("overrides", [
    {},  # the shipped settings
    {"band_method": "fixed", "n_bands": 3, "fixed_band_borders": [0.5, 1.5]},
    {"band_method": "fixed", "n_bands": 3, "fixed_band_borders": [0.001, 1.999]},
    {"band_method": "fixed", "n_bands": 1, "fixed_band_borders": []},
    {"band_method": "energy", "n_bands": 4, "fixed_band_borders": [1.5, 0.5]},  # the borders of another method
    {"use_modalities": False, "use_item_graph": False},
    {"modality_signal": "gated_bands", "user_modality": "item_mean"},
    {"modality_signal": "gated_id", "user_modality": "free"},
    {"loss_pairs": "held_out", "edge_keep_ratio": 0.5},
    {"modality_weights": {"image": 0.0, "text": 0.5}},
    {"modality_weights": {"image": 0.0}},  # not every modality named: equal weights
    {"modality_weights": None},
    {"modality_weights": {"image": 0.0, "text": 0.0}, "modalities": ["image", "text", "audio"]},
])
def test_valid_neighbours_of_each_constraint_are_accepted(overrides):
    assert SSR.check_hyperparameters(ssr_settings(**overrides)) is None
    check_model(SSR, ssr_settings(**overrides))


def test_held_out_pairs_without_an_edge_keep_ratio_are_refused():
    # settings without the key keep every edge (the shipped edge_keep_ratio 1.0): nothing is held out
    assert SSR.check_hyperparameters({"loss_pairs": "held_out"}) == (
        "loss_pairs", "'all' when edge_keep_ratio is 1.0 (held_out scores the pairs the pruned graph left out)")


# -- construction: every setting reaches the part it configures ---------------------------------------------
@pytest.mark.parametrize("overrides,expected", [
    ({"band_recalibrate_every": 1}, [1, 2, 3, 4, 5]),
    ({"band_recalibrate_every": 2}, [2, 4]),
    ({"band_recalibrate_every": 0}, []),
    ({"band_recalibrate_every": 1, "band_method": "fixed"}, []),  # fixed borders do not depend on the signal
])
def test_borders_are_recalibrated_every_band_recalibrate_every_epochs_after_the_first(overrides, expected):
    model = SSR(ssr_config(**overrides), TinyMultiModalDataset()).train()
    assert model.bands.adaptive == (overrides.get("band_method") != "fixed")
    epochs, calibrated = range(6), []
    model.calibrate_bands = lambda: calibrated.append(epoch)
    for epoch in epochs:
        model.on_train_epoch_start(epoch, None)
    assert calibrated == expected
    assert model.train_adj is None  # edge_keep_ratio 1: no training graph is drawn


@pytest.mark.parametrize("overrides,width", [
    ({"user_modality": "item_mean"}, 8),  # the feature part is fixed: only the ID branch is learned
    ({"user_modality": "free"}, 3 * 8),  # and each modality's free P_m
    ({"modality_signal": "gated_id", "user_modality": "item_mean"}, 3 * 8),
    ({"modality_signal": "gated_bands", "user_modality": "item_mean"}, 8),
    ({"use_modalities": False, "use_item_graph": False}, 8),
])
def test_the_learned_part_is_learned_dim_wide(overrides, width):
    model = SSR(ssr_config(**overrides), TinyMultiModalDataset())
    assert model.learned_dim == width
    with torch.no_grad():
        assert model.learned_input().shape == (N_USERS + N_ITEMS, width)


def test_mlp_encoder_is_linear_leaky_relu_linear_without_biases():
    """feature_encoder mlp: enc(x) = W_2 LeakyReLU(W_1 x) with no biases (the features' column of ones is the
    bias), so an all-zero band row stays zero."""
    torch.manual_seed(0)
    model = SSR(ssr_config(feature_encoder="mlp", mlp_hidden=5), TinyMultiModalDataset())
    for m in model.modalities:
        first, _, second = model.projection[m]
        x = torch.randn(7, first.in_features)
        assert first.weight.shape == (5, model.fixed_signal_input[m].shape[1]) and second.weight.shape == (8, 5)
        torch.testing.assert_close(model.projection[m](x), F.leaky_relu(x @ first.weight.T, 0.01) @ second.weight.T)
        assert torch.equal(model.projection[m](torch.zeros(2, first.in_features)), torch.zeros(2, 8))


def test_hsno_rank_and_context_scale_reach_both_released_operators():
    dataset = TinyMultiModalDataset()
    for overrides, rank, scaled in (({}, 4, True), ({"hsno_rank": 2, "hsno_context_scale": False}, 2, False)):
        model = SSR(ssr_config(**overrides), dataset)
        for operator in (model.hsno_user, model.hsno_item):
            assert operator.rank == rank and operator.query.shape == (model.n_bands, rank)
            assert (operator.scale_mlp is not None) == scaled


def test_the_item_graph_is_built_on_the_reduced_features():
    dataset = TinyMultiModalDataset()  # full-rank features 8 and 12 wide: 2 coordinates change the neighbours
    model = SSR(ssr_config(feature_rank=2), dataset)
    weights = ssr_config()["modality_weights"]
    torch.testing.assert_close(model.item_graph.to_dense(), dataset.item_graph(3, weights, 2).to_dense())
    assert not torch.allclose(model.item_graph.to_dense(), dataset.item_graph(3, weights, 0).to_dense())


@pytest.mark.parametrize("seed_setting,seed", [({"seed": 5}, 5), ({"seed": None}, 0), ({"seed": 0}, 0), ({}, 0)])
def test_the_pruned_graphs_are_drawn_from_the_config_seed(seed_setting, seed):
    dataset = TinyMultiModalDataset()
    model = SSR(ssr_config(edge_keep_ratio=0.5, **seed_setting), dataset)
    assert ("seed" in ssr_config(**seed_setting)) == bool(seed_setting)
    sampler, generator = DegreeSensitiveEdgePruning(model.interactions, 0.5), torch.Generator().manual_seed(seed)
    for _ in range(2):  # one generator for every epoch's draw
        assert (model.resample_training_graph() != sampler.sample_matrix(generator)).nnz == 0


def test_the_borders_buffer_holds_the_float64_borders_exactly():
    model = SSR(ssr_config(), TinyMultiModalDataset())
    assert model.band_borders.dtype == torch.float64
    np.testing.assert_array_equal(model.band_borders.numpy(), model.bands.borders)


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_item_features_are_centred_scaled_to_unit_mean_row_norm_with_a_bias_column(scale):
    dataset = TinyMultiModalDataset()
    for m in dataset.modalities:
        dataset.features[m] = (dataset.features[m] + 3.0) * np.float32(scale)
    model = SSR(ssr_config(), dataset)
    for m in model.modalities:
        x, raw = model.fixed_signal_input[m], torch.as_tensor(dataset.features[m])
        centred = raw[1:] - raw[1:].mean(0)
        torch.testing.assert_close(x[1:, :-1], centred / centred.norm(dim=1).mean())
        assert torch.equal(x[1:, -1], torch.ones(N_ITEMS - 1))  # the bias column
        assert torch.equal(x[0], torch.zeros(x.shape[1]))  # the padding item


def test_infonce_covers_at_most_cl_max_items_distinct_positive_items():
    """λ_cl · InfoNCE over one row per distinct positive item of the batch, the cl_max_items smallest ids."""
    torch.manual_seed(0)
    model = SSR(ssr_config(band_drop_prob=0.0, lambda_cl=0.0, cl_max_items=3), TinyMultiModalDataset())
    data = batch()
    items = torch.unique(data["item_id"])
    assert len(items) > 3
    without = model.calculate_loss(data).item()
    model.lambda_cl = 0.5
    with torch.no_grad():
        expected = 0.5 * float(model.alignment_loss(model.node_bands(items[:3] + N_USERS)))
    assert model.calculate_loss(data).item() - without == pytest.approx(expected, rel=1e-5)


def test_pref_reg_weight_regularises_only_free_preferences():
    torch.manual_seed(0)
    model = SSR(ssr_config(user_modality="item_mean", band_drop_prob=0.0), TinyMultiModalDataset())
    base = float(model.calculate_loss(batch()))
    model.pref_reg_weight = 0.5  # item_mean users have no P_m to regularise
    assert float(model.calculate_loss(batch())) == base


@pytest.mark.parametrize("normalize", [True, False])
def test_free_preferences_enter_row_normalised_only_with_pref_normalize(normalize):
    model = SSR(ssr_config(user_modality="free", pref_normalize=normalize), TinyMultiModalDataset())
    with torch.no_grad():
        z = model.learned_input()
    for j, m in enumerate(model.modalities):
        p = model.user_preference[m]
        torch.testing.assert_close(z[:N_USERS, 8 * (j + 1): 8 * (j + 2)], F.normalize(p, dim=1) if normalize else p)
        assert torch.equal(z[N_USERS:, 8 * (j + 1): 8 * (j + 2)], torch.zeros(N_ITEMS, 8))  # items: no free part


def test_the_learned_signal_propagates_over_the_graph_it_is_given():
    torch.manual_seed(0)
    model = SSR(ssr_config(edge_keep_ratio=0.5, use_item_graph=False), TinyMultiModalDataset()).train()
    model.on_train_epoch_start(0, None)
    a = model.train_adj.to_dense()
    with torch.no_grad():
        g = sum(torch.linalg.matrix_power(a, k) for k in range(model.n_layers + 1))
        torch.testing.assert_close(model.learned_signal(model.train_adj), g @ model.learned_input(), atol=1e-5, rtol=1e-5)
