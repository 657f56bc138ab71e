"""Forward pass and loss of every multimodal model (VBPR, FREEDOM, LGMRec, SMORE, SSR) against a dense,
independent float64 reference written from the paper's / authors' equations (tests/reference.py): the
reference reads the model's parameters and the dataset's raw matrices only. Tiny in-test dataset
(149 users × 99 items, two modalities)."""
import numpy as np
import pytest
import torch
from recbole.data.interaction import Interaction

from recbole_spectral.model.multimodal import ssr as ssr_module
from recbole_spectral.model.multimodal.freedom import FREEDOM
from recbole_spectral.model.multimodal.lgmrec import LGMRec
from recbole_spectral.model.multimodal.smore import SMORE
from recbole_spectral.model.multimodal.ssr import SSR
from recbole_spectral.model.multimodal.vbpr import VBPR
from tests import reference as ref
from tests.helpers import TinyMultiModalDataset, model_config, pairwise_batch
from tests.test_reference_blocks import ghsno_reference

N_USERS, N_ITEMS = TinyMultiModalDataset.n_users, TinyMultiModalDataset.n_items


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(cls, **overrides):
    torch.manual_seed(0)
    dataset = TinyMultiModalDataset()
    model = cls(model_config(cls.__name__, **{"embedding_size": 8, "knn_k": 3, **overrides}), dataset)
    return model, dataset


def batch(n=24, seed=3):
    return pairwise_batch(N_USERS, N_ITEMS, n, seed)


def indices(b):
    return b["user_id"].numpy(), b["item_id"].numpy(), b["neg_item_id"].numpy()


def scores_of(model):
    model.eval()
    users = Interaction({"user_id": torch.arange(N_USERS)})
    with torch.no_grad():
        return model.full_sort_predict(users).view(N_USERS, N_ITEMS)


# -- VBPR ---------------------------------------------------------------------------------------------
def vbpr_reference(p, dataset, b, reg):
    f = np.concatenate([dataset.features[m].astype(np.float64) for m in dataset.modalities], 1)
    items = np.concatenate([p["item_embedding"], ref.linear(p, "item_linear", f)], 1)  # [q_i ; W f_i + b]
    users = p["user_embedding"]                                                      # [p_u ; θ_u]
    u, i, j = indices(b)
    up, ip, iq = users[u], items[i], items[j]
    loss = ref.bpr((up * ip).sum(1), (up * iq).sum(1))
    loss += reg * (np.linalg.norm(up) + np.linalg.norm(ip) + np.linalg.norm(iq)) / len(u)
    return users @ items.T, loss


def test_vbpr_forward_and_loss_equal_the_reference():
    model, dataset = build(VBPR, reg_weight=0.3)
    ref.randomise(model)
    b = batch()
    scores, loss = vbpr_reference(ref.weights(model), dataset, b, 0.3)
    ref.assert_close(scores_of(model), scores)
    model.train()
    ref.assert_close(model.calculate_loss(b), loss)


# -- FREEDOM ------------------------------------------------------------------------------------------
def freedom_reference(p, dataset, adj, b, n_ui, n_mm, weights, reg):
    s = sum(w * ref.dense(dataset.knn_graph(m, 3)) for m, w in weights.items())  # S = Σ w_m Ŝ_m
    ego = np.concatenate([p["user_embedding.weight"], p["item_embedding.weight"]])
    out = ref.layer_mean(adj, ego, n_ui)
    users, items = out[:N_USERS], out[N_USERS:] + ref.matrix_power_apply(s, p["item_embedding.weight"], n_mm)
    u, i, j = indices(b)
    loss = ref.bpr((users[u] * items[i]).sum(1), (users[u] * items[j]).sum(1))
    for m in dataset.modalities:  # λ Σ_m BPR(e_u, W_m f_i, W_m f_j)
        proj = dataset.features[m].astype(np.float64) @ p[f"projection.{m}.weight"].T
        loss += reg * ref.bpr((users[u] * proj[i]).sum(1), (users[u] * proj[j]).sum(1))
    return users @ items.T, loss


def test_freedom_forward_and_loss_equal_the_reference_on_the_full_and_the_pruned_graph():
    weights = {"image": 0.3, "text": 0.7}
    model, dataset = build(FREEDOM, n_ui_layers=2, n_mm_layers=2, modality_weights=weights, reg_weight=0.4, dropout=0.5)
    ref.randomise(model)
    b = batch()
    full = ref.bipartite(ref.binary(dataset.inter_matrix()))
    scores, loss = freedom_reference(ref.weights(model), dataset, full, b, 2, 2, weights, 0.4)
    ref.assert_close(scores_of(model), scores)
    ref.assert_close(model.calculate_loss(b), loss)  # evaluation mode: the full graph
    model.train()
    model.on_train_epoch_start(0, None)
    pruned = model.masked_adj.to_dense().double().numpy()
    _, loss = freedom_reference(ref.weights(model), dataset, pruned, b, 2, 2, weights, 0.4)
    ref.assert_close(model.calculate_loss(b), loss)


# -- LGMRec -------------------------------------------------------------------------------------------
def lgmrec_reference(p, dataset, b, c):
    """Guo et al., AAAI'24 (georgeguo-cn/LGMRec): CGE + MGE (local) + GHE (global hypergraph), evaluation
    memberships softmax(logits/τ)."""
    r = ref.binary(dataset.inter_matrix())
    adj = ref.bipartite(r)
    ego = np.concatenate([p["user_embedding.weight"], p["item_embedding.weight"]])
    collab = ref.layer_mean(adj, ego, c["n_ui_layers"])
    local = collab.copy()
    hyper = []
    for m in dataset.modalities:
        f = dataset.features[m].astype(np.float64)
        items = f @ p[f"projection.{m}"]
        x = np.concatenate([ref.row_mean(r) @ items, items])
        local += ref.normalize(ref.matrix_power_apply(adj, x, c["n_mm_layers"]))
        item_logits = f @ p[f"hyper.{m}"]
        h_i = ref.softmax(item_logits / c["tau"], 1)
        h_u = ref.softmax((r @ item_logits) / c["tau"], 1)
        e_i = collab[N_USERS:]
        for _ in range(c["n_hyper_layer"]):
            latent = h_i.T @ e_i
            e_i, e_u = h_i @ latent, h_u @ latent
        hyper.append((e_u, e_i))
    glob = sum(np.concatenate([gu, gi]) for gu, gi in hyper)
    out = local + c["alpha"] * ref.normalize(glob)
    users, items = out[:N_USERS], out[N_USERS:]
    u, i, j = indices(b)
    loss = ref.bpr((users[u] * items[i]).sum(1), (users[u] * items[j]).sum(1))
    for a in range(len(hyper)):  # every pair of modalities, a before b (none with one modality)
        for (ua, ia), (ub, ib) in ((hyper[a], other) for other in hyper[a + 1:]):
            loss += c["cl_weight"] * (ref.info_nce(ua[u], ub[u], ub, c["tau"]) + ref.info_nce(ia[i], ib[i], ib, c["tau"]))
    loss += c["reg_weight"] * (np.linalg.norm(users[u]) + np.linalg.norm(items[i]) + np.linalg.norm(items[j])) / len(u)
    return users @ items.T, loss


@pytest.mark.parametrize("modalities", [("image", "text"), ("audio",), ("image", "text", "audio")])
def test_lgmrec_forward_and_loss_equal_the_reference(modalities):
    c = {"n_ui_layers": 2, "n_mm_layers": 2, "n_hyper_layer": 2, "hyper_num": 4, "tau": 0.5, "alpha": 0.7,
         "cl_weight": 0.3, "reg_weight": 0.2}
    torch.manual_seed(0)
    dataset = TinyMultiModalDataset(modalities)
    dataset.matrix = dataset.matrix.tolil()
    dataset.matrix[1, :] = 0
    dataset.matrix[1, 5] = 2  # user 1: one item (a duplicated row), for the user means
    dataset.matrix = dataset.matrix.tocsr()
    dataset.matrix.eliminate_zeros()
    model = LGMRec(model_config("LGMRec", **{"embedding_size": 8, **c}), dataset)
    ref.randomise(model)
    b = batch()
    scores, loss = lgmrec_reference(ref.weights(model), dataset, b, c)
    ref.assert_close(scores_of(model), scores)
    ref.assert_close(model.calculate_loss(b), loss)  # evaluation mode: noiseless memberships, no dropout


def test_lgmrec_training_memberships_are_the_gumbel_softmax_at_temperature_tau():
    """H = softmax((logits + g)/τ) with g = −log(Exp(1)) noise (torch's draw, reproduced under the same seed)."""
    model, _ = build(LGMRec, tau=0.3)
    model.train()
    logits = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(9)
    noise = -torch.empty_like(logits).exponential_().log()
    torch.manual_seed(9)
    ref.assert_close(model.memberships(logits), ref.softmax((logits + noise).double().numpy() / 0.3, 1))


# -- SMORE --------------------------------------------------------------------------------------------
def smore_reference(p, dataset, b, c):
    """Ong & Khong, WSDM'25, as the official kennethorq/SMORE src/models/smore.py computes it (forward,
    bpr_loss, InfoNCE, calculate_loss), generalised to the modality list; kNN graphs from the dataset."""
    mods = dataset.modalities
    r = ref.binary(dataset.inter_matrix())
    adj = ref.bipartite(r)
    r_hat = adj[:N_USERS, N_USERS:]                                            # D_u^{-1/2} R D_i^{-1/2}
    item_id = p["item_embedding.weight"]
    graphs = {m: ref.dense(dataset.knn_graph(m, 3)) for m in mods}
    fusion_graph = np.maximum.reduce([graphs[m] for m in mods])                # max pooling
    proj = {m: ref.linear(p, f"projection.{m}", dataset.features[m].astype(np.float64)) for m in mods}
    spectra = {m: np.fft.rfft(proj[m], axis=1, norm="ortho") for m in mods}
    d = item_id.shape[1]

    def view(graph, items):
        items = ref.matrix_power_apply(graph, items, c["n_layers"])
        return np.concatenate([r_hat @ items, items])

    views = {m: view(graphs[m], item_id * ref.sigmoid(ref.linear(
        p, f"item_gate.{m}.0", ref.spectral(proj[m], ref.complex_weight(p[f"filter.{m}.weight"]))))) for m in mods}
    fused = np.fft.irfft(np.prod([spectra[m] for m in mods], axis=0) * ref.complex_weight(p["fusion_filter.weight"]),
                         n=d, axis=1, norm="ortho")
    fusion_view = view(fusion_graph, item_id * ref.sigmoid(ref.linear(p, "fusion_item_gate.0", fused)))
    content = ref.layer_mean(adj, np.concatenate([p["user_embedding.weight"], item_id]), c["n_ui_layers"])
    sides = []
    for m in mods:
        att = ref.softmax(np.tanh(ref.linear(p, f"query.{m}.0", fusion_view)) @ p[f"query.{m}.2.weight"].T, -1)  # no bias
        sides.append(ref.sigmoid(ref.linear(p, f"preference.{m}.0", content)) * att * views[m])
    sides.append(ref.sigmoid(ref.linear(p, "fusion_preference.0", content)) * fusion_view)
    side = np.mean(sides, axis=0)
    out = content + side
    users, items = out[:N_USERS], out[N_USERS:]
    u, i, j = indices(b)
    up, ip, iq = users[u], items[i], items[j]
    loss = ref.bpr((up * ip).sum(1), (up * iq).sum(1))
    loss += c["reg_weight"] * 0.5 * ((up ** 2).sum() + (ip ** 2).sum() + (iq ** 2).sum()) / len(u)
    cl = (ref.info_nce(side[N_USERS + i], content[N_USERS + i], tau=c["temperature"], reduction="mean")
          + ref.info_nce(side[u], content[u], tau=c["temperature"], reduction="mean"))
    return users @ items.T, loss + c["cl_loss"] * cl


@pytest.mark.parametrize("modalities", [("image", "text"), ("image", "text", "audio")])
def test_smore_forward_and_loss_equal_the_official_equations(modalities):
    """(Official τ 0.2; 0.5 here so that a dropped temperature shows.) The last item has no interaction."""
    c = {"n_ui_layers": 2, "n_layers": 2, "reg_weight": 0.3, "cl_loss": 0.5, "temperature": 0.5, "dropout_rate": 0.0}
    torch.manual_seed(0)
    dataset = TinyMultiModalDataset(modalities)
    dataset.matrix = dataset.matrix.tolil()
    dataset.matrix[:, N_ITEMS - 1] = 0
    dataset.matrix = dataset.matrix.tocsr()
    dataset.matrix.eliminate_zeros()
    model = SMORE(model_config("SMORE", **{"embedding_size": 8, "knn_k": 3, **c}), dataset)
    ref.randomise(model)
    b = batch()
    scores, loss = smore_reference(ref.weights(model), dataset, b, c)
    ref.assert_close(scores_of(model), scores)
    model.train()  # dropout 0: training and evaluation compute the same
    ref.assert_close(model.calculate_loss(b), loss)


# -- SSR ----------------------------------------------------------------------------------------------
BORDERS = [0.55, 1.35]  # interior band borders in λ, away from the tiny graph's eigenvalues


def ssr_features(x):
    """Released preprocessing: centred and scaled over the real items (row 0 = padding stays 0), then a
    column of ones (the bias)."""
    x = x.astype(np.float64).copy()
    x = x - x[1:].mean(0)
    x[0] = 0.0
    x = x / np.linalg.norm(x[1:], axis=1).mean()
    ones = np.ones((len(x), 1))
    ones[0] = 0.0
    return np.concatenate([x, ones], 1)


def ssr_reference(p, model, dataset, c):
    """Bands of X by exact eigen-projectors of L = I − Â at fixed borders; X per the SSR docstring (user
    modality free, late item graph, linear encoder commuting with the bands); (n, M, (1+|mod|)d) bands."""
    mods = dataset.modalities
    r = ref.binary(dataset.inter_matrix())
    adj = ref.bipartite(r)
    s = sum(w * ref.dense(dataset.knn_graph(m, 3)) for m, w in zip(mods, (0.25, 0.75)))

    def backbone(x):  # g(Â) X then X_I ← X_I + S X_I
        x = ref.layer_mean(adj, x, c["n_layers"]) * (c["n_layers"] + 1 if c["layer_aggregation"] == "sum" else 1)
        return np.concatenate([x[:N_USERS], x[N_USERS:] + s @ x[N_USERS:]])

    parts = [backbone(np.concatenate([p["user_embedding.weight"], p["item_embedding.weight"]]))]
    for m in mods:
        f = ssr_features(dataset.features[m])
        feature_part = backbone(np.concatenate([np.zeros((N_USERS, f.shape[1])), f])) @ p[f"projection.{m}.weight"].T
        prefs = ref.normalize(p[f"user_preference.{m}"])
        parts.append(feature_part + backbone(np.concatenate([prefs, np.zeros((N_ITEMS, prefs.shape[1]))])))
    x = np.concatenate(parts, 1)
    evals, evecs = np.linalg.eigh(np.eye(len(adj)) - adj)
    edges = [-np.inf, *BORDERS, np.inf]
    bands = []
    for lo, hi in zip(edges, edges[1:]):
        u = evecs[:, (evals >= lo) & (evals < hi)]
        bands.append(u @ (u.T @ x))
    return np.stack(bands, 1)


SSR_CONFIG = {"n_layers": 2, "layer_aggregation": "mean", "use_modalities": True, "band_method": "fixed", "fixed_band_borders": BORDERS, "exact_max_nodes": 1000,
              "hsno_mode": "near_identity", "fusion": "hsno", "user_modality": "free", "pref_normalize": True,
              "modality_signal": "features", "item_graph_mode": "late", "knn_layers": 1, "feature_encoder": "linear",
              "modality_weights": {"image": 0.25, "text": 0.75}, "edge_keep_ratio": 1.0, "temperature": 0.5,
              "lambda_reg": 0.3, "lambda_cl": 0.2, "lambda_mask": 0.7, "band_drop_prob": 0.3, "pref_reg_weight": 0.05,
              "mask_semantics": "consistency_only", "hsno_rank": 2}


def ssr_fuse(p, c, bands, keep, is_user):
    """Stage 3 by the options: the released operators per node type, G-HSNO (softmax_gate, one operator), or the sum."""
    if c["fusion"] == "sum":
        return (bands if keep is None else bands * keep[:, :, None]).sum(1)
    if c["hsno_mode"] == "softmax_gate":
        return ghsno_reference({k[len("hsno."):]: v for k, v in p.items() if k.startswith("hsno.")}, bands, keep,
                               c["temperature"])[0]
    users = ref.released_hsno(p, "hsno_user", bands[is_user], None if keep is None else keep[is_user])
    items = ref.released_hsno(p, "hsno_item", bands[~is_user], None if keep is None else keep[~is_user])
    return np.concatenate([users, items])


def ssr_loss_reference(p, bands, b, keep, c):
    """BPR/BCE on the operator output (mask_semantics consistency_only: unmasked, + λ_mask mean_elements (z_mask − z)²;
    score_masked: masked, + λ_mask mean_nodes ‖z_mask − z‖²) + λ_reg (the operators' regularisers) + λ_cl per-band InfoNCE
    (image ↔ text slices, negatives: the batch's other items in the band and the same item in the other bands)
    + pref L2 on the batch's users."""
    u, i, j = indices(b)
    nodes = np.unique(np.concatenate([u, N_USERS + i, N_USERS + j]))
    is_user = nodes < N_USERS
    full, masked = ssr_fuse(p, c, bands[nodes], None, is_user), ssr_fuse(p, c, bands[nodes], keep, is_user)
    z = full if c["mask_semantics"] == "consistency_only" else masked
    row = {node: k for k, node in enumerate(nodes)}
    zu, zi, zj = (z[[row[n] for n in rows]] for rows in (u, N_USERS + i, N_USERS + j))
    pos, neg = (zu * zi).sum(1), (zu * zj).sum(1)
    # BCE as released: binary_cross_entropy_with_logits over the 2n logits [pos ; neg], labels [1 ; 0]
    loss = np.concatenate([ref.softplus(-pos), ref.softplus(neg)]).mean() if c["loss_type"] == "BCE" else ref.softplus(neg - pos).mean()
    if c["mask_semantics"] == "consistency_only":
        loss += c["lambda_mask"] * ((masked - full) ** 2).mean()
    else:
        loss += c["lambda_mask"] * ((masked - full) ** 2).sum(1).mean()
    if c["fusion"] == "hsno" and c["hsno_mode"] == "near_identity":
        loss += c["lambda_reg"] * (ref.released_hsno_reg(p, "hsno_user") + ref.released_hsno_reg(p, "hsno_item"))
    elif c["fusion"] == "hsno":
        q, k, gains = p["hsno.query"], p["hsno.key"], p["hsno.gains"]
        loss += c["lambda_reg"] * (((q @ k.T) ** 2).sum() / q.shape[0] ** 2 + (gains ** 2).sum() / gains.size)
    d, n_bands = p["user_embedding.weight"].shape[1], bands.shape[1]
    items = bands[N_USERS + np.unique(i)]  # distinct positives, ascending
    slices = [ref.normalize(items[:, :, d * v: d * (v + 1)]) for v in (1, 2)]
    terms = []
    for a, other in ((0, 1), (1, 0)):
        for band in range(n_bands):
            anchor = slices[a][:, band]
            logits = np.concatenate(
                [anchor @ slices[other][:, band].T,
                 np.einsum("nd,nbd->nb", anchor, slices[other][:, [x for x in range(n_bands) if x != band]])], 1) / c["temperature"]
            logp = logits - logits.max(1, keepdims=True)
            logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
            terms.append(-np.diag(logp[:, : len(items)]).mean())
    loss += c["lambda_cl"] * np.mean(terms)
    loss += c["pref_reg_weight"] * sum((p[f"user_preference.{m}"][np.unique(u)] ** 2).sum(1).mean() for m in ("image", "text"))
    return loss


@pytest.mark.parametrize("loss_type,options", [
    ("BPR", {}), ("BCE", {}), ("BPR", {"hsno_mode": "softmax_gate", "mask_semantics": "score_masked"}),
    ("BPR", {"fusion": "sum", "mask_semantics": "score_masked"}), ("BCE", {"fusion": "sum"}),
    ("BCE", {"layer_aggregation": "sum"})])
def test_ssr_forward_and_loss_equal_the_reference(loss_type, options, monkeypatch):
    c = {**SSR_CONFIG, "loss_type": loss_type, **options}
    model, dataset = build(SSR, **c)
    ref.randomise(model, std=0.3)
    b = batch()
    p = ref.weights(model)
    bands = ref_bands = ssr_reference(p, model, dataset, c)
    users, items = N_USERS, N_ITEMS
    z = ssr_fuse(p, c, bands, None, np.arange(users + N_ITEMS) < users)
    ref.assert_close(scores_of(model), z[:users] @ z[users:].T, rtol=1e-4, atol=1e-5)

    n_nodes = len(np.unique(np.concatenate([b["user_id"].numpy(), N_USERS + b["item_id"].numpy(), N_USERS + b["neg_item_id"].numpy()])))
    keep = ((np.arange(n_nodes * 3).reshape(n_nodes, 3) % 4 != 1) / (1 - c["band_drop_prob"]))
    monkeypatch.setattr(ssr_module, "band_keep_mask", lambda n, m, prob, generator=None, device=None:
                        torch.as_tensor(keep, dtype=torch.float32))
    model.train()
    ref.assert_close(model.calculate_loss(b), ssr_loss_reference(p, ref_bands, b, keep, c), rtol=1e-4, atol=1e-5)
