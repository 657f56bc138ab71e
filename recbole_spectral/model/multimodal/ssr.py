r"""SSR: Structured Spectral Reasoning for frequency-adaptive multimodal recommendation.

Reference: "Structured Spectral Reasoning for Frequency-Adaptive Multimodal Recommendation",
Wei Yang et al., arXiv 2512.01372 (2025). Where the paper is vague this follows its released code
(an MMRec-based library, src/models/ssr.py); differences are stated below.

What this class computes (N = |U| + |I| nodes, users first; Â the symmetric-normalised user–item
graph, L̃ = −Â its shifted Laplacian; S = Σ_m w_m S_m the mixed item–item modality kNN graph):

Backbone (branches β ∈ {id} ∪ modalities, each d wide):
    Z_id = [E_U ; (I + Σ_{t=1..T} S^t) E_I]                  ID embeddings, items smoothed over S
    Z_m  = [P_m ; (I + Σ_{t=1..T} S^t) [F_m, 1] W_m]           user preference P_m, item features F_m
                                                               projected by W_m (linear, bias as a 1 column)
    X_β  = g(Â) Z_β,  g(Â) = (1/(L+1)) Σ_{l=0..L} Â^l          LightGCN propagation (layer mean)
    X    = [X_id | X_m1 | ...]                                  the node signal, branches side by side
Stage 1, bands (recbole_spectral.layers.graph_bands): B_b = f_b(L̃) X, b = 1..M, Σ_b B_b = X exactly;
    f_b damped Chebyshev approximations (order K) of interval indicators, borders placed so each band
    carries 1/M of the energy of X (recalibrated every ``band_recalibrate_every`` epochs), last band the
    residual; exact eigen-projectors on graphs with ≤ ``exact_max_nodes`` nodes; or a fixed split.
Stage 2, band masking (training): keep_b ~ Bernoulli(1−p) per node of the batch and band, ≥ 1 kept,
    kept bands scaled by 1/(1−p); L_mask = mean_n ‖z_n(masked) − stopgrad(z_n(full))‖².
Stage 3, G-HSNO (recbole_spectral.layers.multimodal.hsno): z_n = GHSNO(B_1[n], ..., B_M[n]) with kernel
    softmax(Q Kᵀ/(√r τ)), per-rank gains V, node-dependent norm-preserving gate; L_reg its regulariser.
    (``fusion: sum`` replaces it by z_n = Σ_b B_b[n] = X[n].)
Stage 4, alignment: for every pair of modalities and every band b, InfoNCE with temperature τ between
    the same item's two modality slices of B_b; negatives = other items of the batch in band b and the
    same item in the other bands. Skipped with one modality.
Score ŷ_ui = ⟨z_u, z_i⟩; loss = BCE (or BPR) + λ_mask L_mask + λ_reg L_reg + λ_cl L_cl.

Cost. Every graph operator here is a polynomial in Â (and S on the item side), so it commutes with the
learned projections, which act on the feature dimension. Hence:
  * the fixed part [0; (I + ΣS^t)[F_m, 1]] is smoothed, propagated and split into bands once per
    calibration (stored as M × N × (r_f+1)); a batch only gathers its rows and multiplies by W_m;
  * the learned part (E_U, E_I, P_m) needs one Chebyshev basis of degree K + L per batch (f_b·g is one
    polynomial), and bands are formed only for the batch's rows;
  * item features wider than ``feature_rank`` are reduced once by a truncated SVD (the learned W_m acts
    on the top-r_f singular coordinates; the captured energy is logged), and their kNN graph is built on
    those coordinates (cosine top-k, cached; ~raw-dim/r_f times cheaper than on 4,096-d rows).
    ``feature_rank: 0`` keeps every dimension and uses the dataset's kNN graph of the raw features.
Difference from the summary of the released code: the item–item smoothing is applied to the item inputs
(before the user–item propagation) so that the whole graph part stays one polynomial per batch, and the
item-feature projection is linear (an MLP's non-linearity would not commute with the graph filters).
"""
from logging import getLogger

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_spectral.hyperparameters import Bool, Choice, Dict, Float, Int, List
from recbole_spectral.layers.graph import normalized_bipartite_graph, propagate
from recbole_spectral.layers.graph_bands import BAND_METHODS, SpectralBands, energy_imbalance, power_to_chebyshev_in_laplacian
from recbole_spectral.layers.multimodal.hsno import GHSNO, band_keep_mask
from recbole_spectral.model.base import EmbeddingRecommender

FUSIONS = ("hsno", "sum")
LOSSES = ("BCE", "BPR")


class SSR(EmbeddingRecommender):
    dataset_kind = "multimodal"
    hyperparameters = {
        "embedding_size": Int(low=1),
        "n_layers": Int(low=0),
        "loss_type": Choice(*LOSSES),
        "n_bands": Int(low=1),
        "chebyshev_order": Int(low=1),
        "band_method": Choice(*BAND_METHODS),
        "fixed_band_borders": List(Float(low=0.0, high=2.0)),
        "exact_max_nodes": Int(low=0),
        "band_recalibrate_every": Int(low=0),
        "band_drop_prob": Float(low=0.0, high=1.0, high_open=True),
        "lambda_mask": Float(low=0.0),
        "fusion": Choice(*FUSIONS),
        "hsno_rank": Int(low=1),
        "temperature": Float(low=0.0, low_open=True),
        "lambda_reg": Float(low=0.0),
        "lambda_cl": Float(low=0.0),
        "cl_max_items": Int(low=2),
        "use_item_graph": Bool(),
        "knn_k": Int(low=1),
        "knn_layers": Int(low=0),
        "modality_weights": Dict(Float(low=0.0), nullable=True),
        "feature_rank": Int(low=0),
    }

    @classmethod
    def check_hyperparameters(cls, values):
        """Constraints between keys (after each key passed its declaration): ``band_method: fixed`` needs
        ``n_bands - 1`` increasing borders strictly inside (0, 2); ``modality_weights`` naming every
        modality of the dataset must not all be 0 (the mixed item graph would be empty)."""
        if values.get("band_method") == "fixed":
            n_bands, borders = values.get("n_bands"), values.get("fixed_band_borders")
            inside = borders is not None and all(0.0 < b < 2.0 for b in borders)
            increasing = borders is not None and all(a < b for a, b in zip(borders, borders[1:]))
            if borders is None or len(borders) != n_bands - 1 or not inside or not increasing:
                return ("fixed_band_borders",
                        f"{n_bands - 1} increasing values strictly inside (0, 2) (band_method: fixed, n_bands: {n_bands})")
        weights, modalities = values.get("modality_weights"), values.get("modalities") or []
        if weights and modalities and all(m in weights for m in modalities) and sum(weights[m] for m in modalities) <= 0:
            return "modality_weights", f"weights with a positive sum over the dataset's modalities {list(modalities)}"
        return None

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.logger = getLogger()

        # dataset facts
        self.modalities = list(dataset.modalities)
        interactions = dataset.inter_matrix(form="csr").astype(np.float32)
        self.n_nodes = self.n_users + self.n_items

        # hyperparameters
        self.embedding_size = config["embedding_size"]
        self.n_layers = config["n_layers"]
        self.n_bands = config["n_bands"]
        self.chebyshev_order = config["chebyshev_order"]
        self.band_method = config["band_method"]
        self.band_drop_prob = config["band_drop_prob"]
        self.temperature = config["temperature"]
        self.rank = config["hsno_rank"]
        self.fusion = config["fusion"]
        self.loss_type = config["loss_type"]
        self.lambda_cl, self.lambda_mask, self.lambda_reg = config["lambda_cl"], config["lambda_mask"], config["lambda_reg"]
        self.use_item_graph = config["use_item_graph"]
        self.knn_k, self.knn_layers = config["knn_k"], config["knn_layers"]
        self.feature_rank = config["feature_rank"]
        self.cl_max_items = config["cl_max_items"]
        self.band_recalibrate_every = config["band_recalibrate_every"]
        d = self.embedding_size
        self.signal_dim = d * (1 + len(self.modalities))

        # layers
        self.user_embedding = nn.Embedding(self.n_users, d)
        self.item_embedding = nn.Embedding(self.n_items, d)
        self.user_preference = nn.ParameterDict(
            {m: nn.Parameter(torch.empty(self.n_users, d)) for m in self.modalities})
        rank = self.feature_rank
        features = {m: self._projection_input(dataset.reduced_features(m, rank)[0]) for m in self.modalities}
        self.projection = nn.ModuleDict(
            {m: nn.Linear(features[m].shape[1], d, bias=False) for m in self.modalities})
        self.hsno = GHSNO(self.n_bands, self.signal_dim, self.rank, self.temperature) if self.fusion == "hsno" else None

        # caches (plain tensors, never parameters; rebuilt from data and the band borders)
        self.norm_adj = normalized_bipartite_graph(interactions, self.device)
        self.item_graph = (dataset.item_graph(self.knn_k, config["modality_weights"], rank).to(self.device)
                           if self.use_item_graph else None)
        self.fixed_signal = {m: self._fixed_signal(features[m]) for m in self.modalities}
        prefilter = power_to_chebyshev_in_laplacian([1.0 / (self.n_layers + 1)] * (self.n_layers + 1))
        self.bands = SpectralBands(
            self.norm_adj, self.n_bands, self.chebyshev_order, method=self.band_method,
            exact_max_nodes=config["exact_max_nodes"], fixed_borders=config["fixed_band_borders"], prefilter=prefilter,
        )
        self.register_buffer("band_borders", torch.zeros(max(self.n_bands - 1, 0), dtype=torch.float64))
        self.fixed_bands = {}
        self._cached_borders = None

        # init
        for weight in (self.user_embedding.weight, self.item_embedding.weight, *self.user_preference.values()):
            nn.init.xavier_uniform_(weight)
        for layer in self.projection.values():
            nn.init.xavier_uniform_(layer.weight)
        self.calibrate_bands()

    # ------------------------------------------------------------------------------------------
    # preprocessing
    # ------------------------------------------------------------------------------------------
    def _projection_input(self, x):
        """Item feature rows (raw, or the dataset's truncated-SVD coordinates when wider than
        ``feature_rank``) centred, scaled to unit mean row norm, with a column of ones (the bias)."""
        x = x.clone()
        x = x - x[1:].mean(0, keepdim=True)
        x[0] = 0.0  # padding item
        x = x / x[1:].norm(dim=1).mean().clamp_min(1e-12)
        ones = torch.ones(x.shape[0], 1)
        ones[0] = 0.0
        return torch.cat([x, ones], 1).to(self.device)

    def _smooth_items(self, items):
        """(I + Σ_{t=1..T} S^t) applied to item rows."""
        if self.item_graph is None:
            return items
        out, current = items, items
        for _ in range(self.knn_layers):
            current = torch.sparse.mm(self.item_graph, current)
            out = out + current
        return out

    def _fixed_signal(self, item_features):
        """[0; (I + ΣS^t)[F, 1]] on all nodes."""
        users = torch.zeros(self.n_users, item_features.shape[1], device=self.device)
        return torch.cat([users, self._smooth_items(item_features)], 0)

    # ------------------------------------------------------------------------------------------
    # signal and bands
    # ------------------------------------------------------------------------------------------
    def learned_signal(self):
        """Z for the learned part: [E_U; smoothed E_I] | [P_m; 0] for every modality (N × (1+|mod|)d)."""
        ids = torch.cat([self.user_embedding.weight, self._smooth_items(self.item_embedding.weight)], 0)
        zeros = torch.zeros(self.n_items, self.embedding_size, device=self.device)
        prefs = [torch.cat([self.user_preference[m], zeros], 0) for m in self.modalities]
        return torch.cat([ids] + prefs, 1)

    @torch.no_grad()
    def calibrate_bands(self):
        """Place the band borders on the current signal X = g(Â)Z (+ fixed part) and rebuild the
        fixed part's bands. Called at construction and by the trainer on its schedule."""
        d = self.embedding_size
        signal = propagate(self.norm_adj, self.learned_signal(), self.n_layers, aggregation="mean")
        for j, m in enumerate(self.modalities):
            fixed = propagate(self.norm_adj, self.fixed_signal[m], self.n_layers, aggregation="mean")
            signal[:, d * (j + 1): d * (j + 2)] += self.projection[m](fixed)
        shares = self.bands.calibrate(signal)
        self.band_borders.copy_(torch.as_tensor(self.bands.borders, dtype=torch.float64))
        self._rebuild_fixed_bands()
        self.logger.info(
            f"SSR bands ({'exact' if self.bands.exact else 'Chebyshev K=%d' % self.chebyshev_order}, {self.band_method}): "
            f"borders λ = {np.round(self.bands.borders_lambda(), 4).tolist()}, energy shares "
            f"{np.round(shares, 4).tolist()} (imbalance {energy_imbalance(shares):.2%})")

    @torch.no_grad()
    def _rebuild_fixed_bands(self):
        self.fixed_bands = {m: torch.stack(self.bands.bands(self.fixed_signal[m]), 0) for m in self.modalities}
        self._cached_borders = self.band_borders.clone()
        self.clear_cache()

    def _sync_borders(self):
        """After a checkpoint reload the borders buffer may differ from the caches: rebuild them."""
        if self._cached_borders is None or not torch.equal(self._cached_borders, self.band_borders):
            self.bands.set_borders(self.band_borders.cpu().numpy())
            self._rebuild_fixed_bands()

    def node_bands(self, rows=None):
        """Bands of X at node ``rows`` (all nodes if None): (n, M, (1+|mod|)d)."""
        self._sync_borders()
        learned = self.bands.bands(self.learned_signal(), rows)
        d = self.embedding_size
        out = []
        for b, band in enumerate(learned):
            parts = [band[:, :d]]
            for j, m in enumerate(self.modalities):
                fixed = self.fixed_bands[m][b] if rows is None else self.fixed_bands[m][b][rows]
                parts.append(band[:, d * (j + 1): d * (j + 2)] + self.projection[m](fixed))
            out.append(torch.cat(parts, 1))
        return torch.stack(out, 1)

    def fuse(self, bands, keep=None):
        if self.hsno is None:
            return (bands if keep is None else bands * keep.unsqueeze(-1)).sum(1)
        return self.hsno(bands, keep)[0]

    # ------------------------------------------------------------------------------------------
    # losses
    # ------------------------------------------------------------------------------------------
    def alignment_loss(self, item_bands):
        """Stage 4 InfoNCE per band between every pair of modalities (item_bands: n × M × D)."""
        n_mod = len(self.modalities)
        if n_mod < 2:
            return item_bands.new_zeros(())
        d, m_bands = self.embedding_size, self.n_bands
        slices = [F.normalize(item_bands[:, :, d * (j + 1): d * (j + 2)], dim=-1) for j in range(n_mod)]
        target = torch.arange(item_bands.shape[0], device=item_bands.device)
        losses = []
        for a in range(n_mod):
            for c in range(n_mod):
                if a == c:
                    continue
                for b in range(m_bands):
                    anchor = slices[a][:, b]
                    other_items = anchor @ slices[c][:, b].T / self.temperature
                    other_bands = (anchor.unsqueeze(1) * slices[c][:, [x for x in range(m_bands) if x != b]]).sum(-1)
                    logits = torch.cat([other_items, other_bands / self.temperature], 1)
                    losses.append(F.cross_entropy(logits, target))
        return torch.stack(losses).mean()

    def on_train_epoch_start(self, epoch_idx, train_data):
        """Recalibrate the band borders every ``band_recalibrate_every`` epochs."""
        every = self.band_recalibrate_every
        if every and epoch_idx > 0 and epoch_idx % every == 0:
            self.calibrate_bands()

    def calculate_loss(self, interaction):
        user = interaction[self.USER_ID]
        pos = interaction[self.ITEM_ID]
        neg = interaction[self.NEG_ITEM_ID]
        n = user.shape[0]
        rows = torch.cat([user, pos + self.n_users, neg + self.n_users])
        nodes, where = torch.unique(rows, return_inverse=True)  # each node of the batch once
        bands = self.node_bands(nodes)

        keep = band_keep_mask(bands.shape[0], self.n_bands, self.band_drop_prob, device=bands.device)
        z = self.fuse(bands, keep)
        u, p, q = z[where[:n]], z[where[n:2 * n]], z[where[2 * n:]]
        pos_scores, neg_scores = (u * p).sum(1), (u * q).sum(1)
        if self.loss_type == "BCE":
            loss = F.softplus(-pos_scores).mean() + F.softplus(neg_scores).mean()
        else:
            loss = F.softplus(neg_scores - pos_scores).mean()

        if self.lambda_mask > 0 and self.band_drop_prob > 0:
            with torch.no_grad():
                full = self.fuse(bands.detach())
            loss = loss + self.lambda_mask * (z - full).pow(2).sum(1).mean()
        if self.lambda_reg > 0 and self.hsno is not None:
            loss = loss + self.lambda_reg * self.hsno.regularizer()
        if self.lambda_cl > 0 and len(self.modalities) > 1:
            items, inverse = torch.unique(pos, return_inverse=True)
            first = torch.full((items.shape[0],), n, dtype=torch.long, device=pos.device)
            first = first.scatter_reduce(0, inverse, torch.arange(n, device=pos.device), reduce="amin")
            item_rows = bands[where[n:2 * n][first[: self.cl_max_items]]]  # one row per distinct positive item
            loss = loss + self.lambda_cl * self.alignment_loss(item_rows)
        return loss

    # ------------------------------------------------------------------------------------------
    # prediction
    # ------------------------------------------------------------------------------------------
    def compute_embeddings(self):
        z = self.fuse(self.node_bands())
        return z[: self.n_users], z[self.n_users:]
