r"""SSR: Structured Spectral Reasoning for frequency-adaptive multimodal recommendation.

Reference: "Structured Spectral Reasoning for Frequency-Adaptive Multimodal Recommendation",
Wei Yang et al., arXiv 2512.01372 (2025), and its released code (an MMRec-based library,
Jinfeng-Xu/Multimodal-Recommendation-Library, src/models/ssr.py at 7fdf93c, read again at df1768a, which differs
only in cache handling; config arkina3931/Frequency src/configs/model/SSR.yaml and src/configs/overall.yaml at
ca295b0). docs/ssr.md gives the line of the released code behind every default.

What the released code does (read from the source, not the paper)
-----------------------------------------------------------------
* Branches: one ``GCN`` per branch β ∈ {id, image, text}. Modality branch: x = normalize_rows([P_m ;
  MLP(F_m)]) with P_m a free per-user parameter (n_users × 64) and MLP = Linear(raw → 256) → LeakyReLU →
  Linear(256 → 64) on *trainable* features (``nn.Embedding.from_pretrained(feat, freeze=False)``); ID
  branch x = normalize_rows([P_id ; E_I]) (``user_id_embedding`` is never used). Propagation over the
  full user–item graph, layer *sum* (``num_layers: 2``). The edge-dropped graphs it builds are never used
  in ``forward`` (no edge regularisation). Users: the three branch outputs scaled by per-user softmax
  weights (``weight_u``) and concatenated; items: concatenated (192 columns).
* Item–item graph (``forward``): S = 0.1 S_image + 0.9 S_text (kNN k = 10, D^{-1/2}AD^{-1/2}); after the
  propagation item_new = S^n item_rep (``n_mm_layers: 1``), user_new = [P_id | P_image | P_text] (raw).
  Bands are taken of [rep | new] and summed band by band, i.e. bands of (rep + new): the item graph enters
  at full weight *after* the user–item propagation (like FREEDOM), and users get their raw P's again.
* Bands (``SpectralGraphSignalProcessor._wavelet_band``): graphs with > 5,000 nodes (TikTok, Amazon; not
  ml100k-text's 2,625) use *fixed* Chebyshev filters in L̃ = L_sym − I: low = T_0 − 0.5 T_1, mid = 0.8 T_2 + 0.3 T_3, high =
  the residual (``_cheb_mband_with_transformation``); smaller graphs use the full eigendecomposition with
  equal-energy cuts recomputed on every forward. Here that rule is ``band_method: energy_or_fixed_chebyshev``
  with ``exact_max_nodes: 5000`` (cuts recomputed every ``band_recalibrate_every`` epochs).
* Stage 2 (``SpectralCalculateOperator.forward``, ``masked_consistency_mse``): the main BCE loss is computed
  on the *unmasked* output; a band-masked copy (each band of each node dropped with p = 0.1, band 0 kept
  when all drop, kept bands / (1 − p)) enters only ``F.mse_loss(masked, full.detach())`` (an element mean)
  with weight ``ma_weight`` 0.001 (``mask_semantics: consistency_only``).
* Stage 3: separate user and item operators (``HyperSpectralOperator`` + ``GraphSpectWeightModule``) that
  stay near the identity: column-softmax band mixing, gains exp(0.1 tanh V) ∈ [0.90, 1.11], a sigmoid
  context scale, band weights 1 + 0.1 tanh(·) (±10 %), norm kept (:class:`ReleasedHSNO`,
  ``hsno_mode: near_identity``); output ``aggr`` = sum of the bands (``out_mode: aggr``).
* Stage 4 (``cl_contrast_loss``): InfoNCE between the image and text slices of every (node, band) row of
  the un-fused bands, for the batch's users and positive items, τ = 0.2, weight 1e-4.
* Loss: BCE-with-logits over the 2n logits [positives ; sampled negatives] (a mean, so half the per-pair sum)
  + 0.1 · reg + 0.001 · consistency + 1e-4 · InfoNCE; no other L2 term; Adam, lr 1e-4, batch 2048.

``properties/model/SSR.yaml`` sets every key to the released value except the learning rate (a CPU schedule,
10× the released 1e-4); ``--model=SSR`` is the paper's model as released, with the departures listed at the end.

What this class computes (N = |U| + |I| nodes, users first; Â the symmetric-normalised user–item graph,
L̃ = −Â its shifted Laplacian; S = Σ_m w_m S_m the mixed item–item kNN graph, w_m by modality name;
g(Â) = Σ_{l≤L} Â^l, the released layer sum (``layer_aggregation: sum``), or LightGCN's layer mean
(1/(L+1)) Σ_{l≤L} Â^l (``mean``)):

Backbone, branches β ∈ {id} ∪ modalities, each d wide (``use_modalities: False``: the ID branch alone — no
encoders, no P_m, no item–item graph, no InfoNCE; a control for what the content adds, not the paper's model):
    Z_id = [E_U ; E_I]
    Z_m  = [U_m ; [F_m, 1]] ∘ enc_m                     item features F_m (raw, or SVD-reduced with ``feature_rank``
                                                         > 0; centred, scaled, a bias column), enc_m an MLP (released;
                                                         applied after banding) or a linear W_m
      user_modality: free       user rows of branch m are a free P_m (n_users × d; released) in the output space
                                (not through enc_m), row-normalised when ``pref_normalize`` (released), with an
                                optional L2 term ``pref_reg_weight`` on the batch's rows (0: the released code has none)
                     item_mean  U_m = D_u^{-1} R [F_m, 1]  (beyond the paper: the mean of the user's training items'
                                rows; no free per-user parameters, as LGMRec and SMORE derive it)
    modality_signal: features   as above (the paper: branch m carries the encoded item features)
                     gated_id   Z_m = [U_m ; E_I ⊙ σ(enc_m([F_m, 1]))] — the item ID embeddings gated by the item's
                                features (SMORE's item signal; beyond the paper), U_m = D_u^{-1} R (item rows)
                                with item_mean (over the epoch's kept edges while training) or P_m with free; every
                                branch is then learned and banded per batch (no fixed feature part)
                     gated_bands only the ID branch is propagated and banded; band b of branch m is the ID band gated
                                per node, B_b^m = B_b^id ⊙ G_m with G_m = [D_u^{-1} R σ(enc_m([F_m, 1])) ; σ(enc_m([F_m, 1]))]
                                (items: their own gate; users: the mean of their items' gates, over the kept edges
                                while training; needs item_mean). Beyond the paper and SMORE (which gates before the
                                propagation): the gate is diagonal per node, so only d columns are banded per batch
    X = g(Â_train) Z, then the item graph:
      item_graph_mode: late     X_I ← X_I + S^T X_I      (full weight after the propagation: released, FREEDOM)
                       early    Z_I ← (I + Σ_{t≤T} S^t) Z_I before the propagation (enters with weight 1/(L+1))
    Â_train: with ``edge_keep_ratio`` < 1 (beyond the paper), a degree-sensitive sample of the edges (∝ 1/sqrt(d_u d_i),
    :mod:`recbole_spectral.layers.edge_pruning`), renormalised, redrawn every epoch in
    ``on_train_epoch_start``; in training the whole model uses it (the learned part, the feature part —
    user means over the kept edges, so a positive's own features are often absent from its user's mean —
    and the band filters); evaluation and band calibration use the full graph.
Stage 1, bands (recbole_spectral.layers.graph_bands): B_b = f_b(L̃) X, b = 1..M, Σ_b B_b = X exactly.
    band_method: energy    damped Chebyshev (order K) interval indicators, borders at equal energy of X
                           (recalibrated every ``band_recalibrate_every`` epochs); exact eigen-projectors on
                           graphs with ≤ ``exact_max_nodes`` nodes
                 fixed     the same filters at hand-set borders ``fixed_band_borders`` (equal width by default)
                 energy_or_fixed_chebyshev  the released rule: ``energy`` with exact eigen-projectors on graphs with
                           ≤ ``exact_max_nodes`` nodes, the released fixed filters above on larger graphs (degree 3
                           for M = 3; no borders, nothing recalibrated)
    The modality encoder acts per band: band b of branch m = enc_m(f_b(L̃) X_m^feat) — for the linear W_m
    this equals f_b(L̃)(X_m^feat W_m) (filters commute with the feature map); an MLP does not commute, so it
    is applied after banding, to the precomputed filtered feature bands.
Stage 2, band masking (training): keep_b ~ Bernoulli(1−p) per node and band, ≥ 1 kept, kept / (1−p).
    mask_semantics: consistency_only  score from the unmasked output; λ_mask · mean_elements (z_mask − sg(z))²
                                      (released)
                    score_masked      score from the masked output;   λ_mask · mean_nodes ‖z_mask − sg(z)‖²
Stage 3: fusion: hsno with hsno_mode near_identity (released; :class:`ReleasedHSNO`, one operator for users,
    one for items; ``hsno_context_scale: False`` drops its context scale, beyond the released code) or
    softmax_gate (:class:`GHSNO`: softmax kernel, per-rank gains, softmax band gate, norm kept; beyond the
    released code); or ``fusion: sum`` (z = Σ_b B_b = X).
Stage 4, alignment: for every ordered pair of modalities and every band, InfoNCE (τ) between the same item's
    two modality slices of B_b; negatives = other items of the batch in that band and the same item in the
    other bands. Skipped with one modality. ``cl_views: id_and_modalities`` (beyond the paper) adds the ID
    branch's slice as one more view, so that one modality is aligned with the ID branch.
Score ŷ_ui = ⟨z_u, z_i⟩; loss = BCE (mean over the 2n logits, released) or BPR + λ_mask L_mask + λ_reg L_reg
+ λ_cl L_cl (+ pref L2, off by default).

Cost (per batch). Only what is learned is banded per batch: the fixed feature part X_m^feat (smoothing,
propagation, late item graph, bands) is computed once per calibration on the full graph and stored
(M × N × (r_f+1) per modality); a batch gathers its rows and applies enc_m. The learned part is E_U, E_I
(and P_m with ``user_modality: free``): L sparse products for g, T item-graph products (late), and a
Chebyshev basis of degree deg f_b (K, or 3 for the fixed filters at M = 3) on the training graph, forward and backward;
with ``item_mean`` that is d = 64 columns instead of d(1 + |mod|); ``gated_id`` bands d(1 + |mod|) learned
columns, ``gated_bands`` d (its gates cost one encoder pass over the items and one user-mean product per
modality). With ``feature_rank`` > 0 (beyond the paper; 0 = the raw features, released) wider item features are
reduced once by a truncated SVD to that many coordinates (energy logged) and their kNN graph built on them.

Differences from the released code, on purpose (the defaults keep every released value, these are the
computations that differ): features stay frozen so that the feature part can be precomputed, and the MLP
encoder is applied to each band of the filtered features (it does not commute with the filters; released:
MLP, then propagation and bands) without biases (the features' column of ones is the first layer's bias); the
ID branch's rows are not row-normalised before the propagation (released: F.normalize of [P_id ; E_I]); the
per-user branch weights ``weight_u`` and the re-added raw P's are not reproduced; InfoNCE covers the batch's
distinct positive items only (released: users too, duplicates kept), per band, with band negatives (released:
all (node, band) rows of both modalities); equal-energy cuts are recomputed once per epoch, not on every
forward; no ``out_mode: spec/mix`` (their score equals ``aggr`` up to a band-wise split); the learning rate
(1e-3, released 1e-4) is a CPU schedule.

Beyond the paper and the released code, as options (all off by default): degree-sensitive edge pruning
(``edge_keep_ratio`` < 1), ``loss_pairs: held_out``, ``user_modality: item_mean``, ``modality_signal:
gated_id | gated_bands``, ``cl_views: id_and_modalities``, ``feature_rank`` > 0 (truncated SVD of the features),
``hsno_mode: softmax_gate``, ``mask_semantics: score_masked``, ``hsno_context_scale: False`` and the
content-free control ``use_modalities: False``. The TikTok recipe (``properties/recipes/SSR-tiktok.yaml``)
combines several of them and is beyond the paper.
"""
from contextlib import contextmanager
from functools import partial
from logging import getLogger

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_spectral.hyperparameters import Bool, Choice, Dict, Float, Int, List
from recbole_spectral.layers.graph import FixedSparse, normalized_bipartite_graph, symmetric_spmm, to_torch_sparse
from recbole_spectral.layers.graph_bands import BAND_METHODS, SpectralBands, energy_imbalance, shifted_laplacian
from recbole_spectral.layers.edge_pruning import DegreeSensitiveEdgePruning
from recbole_spectral.layers.multimodal.hsno import GHSNO, ReleasedHSNO, band_keep_mask
from recbole_spectral.model.base import EmbeddingRecommender

FUSIONS = ("hsno", "sum")
LOSSES = ("BCE", "BPR")
ITEM_GRAPH_MODES = ("late", "early")
USER_MODALITY = ("item_mean", "free")
FEATURE_ENCODERS = ("linear", "mlp")
MASK_SEMANTICS = ("consistency_only", "score_masked")
HSNO_MODES = ("near_identity", "softmax_gate")
LAYER_AGGREGATIONS = ("sum", "mean")
LOSS_PAIRS = ("all", "held_out")
MODALITY_SIGNALS = ("features", "gated_id", "gated_bands")
CL_VIEWS = ("modalities", "id_and_modalities")


class SSR(EmbeddingRecommender):
    dataset_kind = "multimodal"
    hyperparameters = {
        "embedding_size": Int(low=1),
        "n_layers": Int(low=0),
        "layer_aggregation": Choice(*LAYER_AGGREGATIONS),
        "use_modalities": Bool(),
        "loss_type": Choice(*LOSSES),
        "n_bands": Int(low=1),
        "chebyshev_order": Int(low=1),
        "band_method": Choice(*BAND_METHODS),
        "fixed_band_borders": List(Float(low=0.0, high=2.0)),
        "exact_max_nodes": Int(low=0),
        "band_recalibrate_every": Int(low=0),
        "band_drop_prob": Float(low=0.0, high=1.0, high_open=True),
        "lambda_mask": Float(low=0.0),
        "mask_semantics": Choice(*MASK_SEMANTICS),
        "fusion": Choice(*FUSIONS),
        "hsno_mode": Choice(*HSNO_MODES),
        "hsno_rank": Int(low=1),
        "hsno_context_scale": Bool(),
        "temperature": Float(low=0.0, low_open=True),
        "lambda_reg": Float(low=0.0),
        "lambda_cl": Float(low=0.0),
        "cl_max_items": Int(low=2),
        "cl_views": Choice(*CL_VIEWS),
        "use_item_graph": Bool(),
        "item_graph_mode": Choice(*ITEM_GRAPH_MODES),
        "knn_k": Int(low=1),
        "knn_layers": Int(low=0),
        "modality_weights": Dict(Float(low=0.0), nullable=True),
        "feature_rank": Int(low=0),
        "feature_encoder": Choice(*FEATURE_ENCODERS),
        "mlp_hidden": Int(low=1),
        "user_modality": Choice(*USER_MODALITY),
        "pref_normalize": Bool(),
        "pref_reg_weight": Float(low=0.0),
        "edge_keep_ratio": Float(low=0.0, high=1.0, low_open=True),
        "loss_pairs": Choice(*LOSS_PAIRS),
        "modality_signal": Choice(*MODALITY_SIGNALS),
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
        if values.get("use_modalities") is False and values.get("use_item_graph"):
            return "use_item_graph", "False when use_modalities is False (the item-item graph is built from the modality features)"
        if values.get("modality_signal") == "gated_bands" and values.get("user_modality") == "free":
            return "user_modality", "'item_mean' when modality_signal is gated_bands (a user's gate is its items' mean gate)"
        if values.get("loss_pairs") == "held_out" and values.get("edge_keep_ratio", 1.0) >= 1.0:
            return "loss_pairs", "'all' when edge_keep_ratio is 1.0 (held_out scores the pairs the pruned graph left out)"
        weights, modalities = values.get("modality_weights"), values.get("modalities") or []
        if weights and modalities and all(m in weights for m in modalities) and sum(weights[m] for m in modalities) <= 0:
            return "modality_weights", f"weights with a positive sum over the dataset's modalities {list(modalities)}"
        return None

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.logger = getLogger()
        if not config["use_modalities"]:  # the content-free control: the ID branch alone
            self.modalities = []

        # dataset facts
        self.interactions = sp.csr_matrix(dataset.inter_matrix(form="csr"), dtype=np.float32, copy=True)
        self.interactions.sum_duplicates()
        self.interactions.data[:] = 1.0  # binary: a user's mean is over distinct items

        # hyperparameters
        self.embedding_size = d = config["embedding_size"]
        self.n_layers = config["n_layers"]
        self.layer_aggregation = config["layer_aggregation"]
        self.n_bands = config["n_bands"]
        self.chebyshev_order = config["chebyshev_order"]
        self.band_method = config["band_method"]
        self.band_drop_prob = config["band_drop_prob"]
        self.mask_semantics = config["mask_semantics"]
        self.temperature = config["temperature"]
        self.rank = config["hsno_rank"]
        self.fusion = config["fusion"]
        self.hsno_mode = config["hsno_mode"]
        self.loss_type = config["loss_type"]
        self.lambda_cl, self.lambda_mask, self.lambda_reg = config["lambda_cl"], config["lambda_mask"], config["lambda_reg"]
        self.use_item_graph = config["use_item_graph"]
        self.item_graph_mode = config["item_graph_mode"]
        self.knn_k, self.knn_layers = config["knn_k"], config["knn_layers"]
        self.feature_rank = config["feature_rank"]
        self.feature_encoder = config["feature_encoder"]
        self.user_modality = config["user_modality"]
        self.pref_normalize = config["pref_normalize"]
        self.pref_reg_weight = config["pref_reg_weight"]
        self.edge_keep_ratio = config["edge_keep_ratio"]
        self.loss_pairs = config["loss_pairs"]
        self.modality_signal = config["modality_signal"]
        self.cl_max_items = config["cl_max_items"]
        # the InfoNCE views: branch slots of the band rows (0 = the ID branch, 1 + j = modality j)
        self.cl_views = ([0] if config["cl_views"] == "id_and_modalities" else []) + [1 + j for j in range(len(self.modalities))]
        self.band_recalibrate_every = config["band_recalibrate_every"]
        self.signal_dim = d * (1 + len(self.modalities))
        self.feature_part = self.modality_signal == "features"  # a fixed, precomputed feature part per modality
        self.gated_input = self.modality_signal == "gated_id"  # modality branches learned and propagated
        self.gated_bands = self.modality_signal == "gated_bands"  # modality branches = gated ID bands
        learned_modalities = self.gated_input or (self.feature_part and self.user_modality == "free")
        self.learned_dim = d * (1 + (len(self.modalities) if learned_modalities else 0))

        # layers
        self.user_embedding = nn.Embedding(self.n_users, d)
        self.item_embedding = nn.Embedding(self.n_items, d)
        self.user_preference = nn.ParameterDict(
            {m: nn.Parameter(torch.empty(self.n_users, d)) for m in self.modalities} if self.user_modality == "free" else {})
        features = {m: self._projection_input(dataset.reduced_features(m, self.feature_rank)[0]) for m in self.modalities}
        if self.feature_encoder == "linear":
            self.projection = nn.ModuleDict({m: nn.Linear(features[m].shape[1], d, bias=False) for m in self.modalities})
        else:  # no biases: an all-zero band row stays zero (the bias is the features' column of ones)
            hidden = config["mlp_hidden"]
            self.projection = nn.ModuleDict({m: nn.Sequential(
                nn.Linear(features[m].shape[1], hidden, bias=False), nn.LeakyReLU(),
                nn.Linear(hidden, d, bias=False)) for m in self.modalities})
        self.hsno = self.hsno_user = self.hsno_item = None
        if self.fusion == "hsno" and self.hsno_mode == "softmax_gate":
            self.hsno = GHSNO(self.n_bands, self.signal_dim, self.rank, self.temperature)
        elif self.fusion == "hsno":
            scale = config["hsno_context_scale"]
            self.hsno_user = ReleasedHSNO(self.n_bands, self.signal_dim, self.rank, context_scale=scale)
            self.hsno_item = ReleasedHSNO(self.n_bands, self.signal_dim, self.rank, context_scale=scale)

        # graphs (plain tensors, never parameters)
        self.norm_adj = normalized_bipartite_graph(self.interactions, self.device).to_sparse_csr()
        self.item_graph = None
        if self.use_item_graph:
            self.item_graph = FixedSparse(dataset.item_graph(self.knn_k, config["modality_weights"], self.feature_rank)
                                          .to(self.device))
        self.train_adj = self.train_laplacian = None  # the pruned graph of the current epoch
        self.fixed_bands_train = {}  # the feature part's bands on it
        self._kept_keys = None  # sorted user * n_items + item of its edges (loss_pairs: held_out)
        self._prune_generator = torch.Generator().manual_seed(int(config["seed"] or 0) if "seed" in config else 0)
        self.bands = SpectralBands(
            self.norm_adj.to_sparse_coo(), self.n_bands, self.chebyshev_order, method=self.band_method,
            exact_max_nodes=config["exact_max_nodes"], fixed_borders=config["fixed_band_borders"],
        )
        self.register_buffer("band_borders", torch.zeros(max(self.n_bands - 1, 0), dtype=torch.float64))

        # the fixed (feature) signal, propagated once: [U_m ; item rows] → g(Â) → late item graph
        self.fixed_signal_input = features  # [F_m, 1] item rows (padding row 0 = zeros)
        self.fixed_signal = {m: self._fixed_signal(features[m]) for m in self.modalities} if self.feature_part else {}
        self.user_mean = self.user_item_mean() if not self.feature_part and self.user_modality == "item_mean" else None
        self.user_mean_train = None  # the same over the epoch's pruned graph
        self.fixed_bands = {}
        self._cached_borders = None
        self._removed_band = None  # diagnose: a band removed at inference
        self._pruning = None  # the edge sampler, built on the first draw

        # init
        for weight in (self.user_embedding.weight, self.item_embedding.weight, *self.user_preference.values()):
            nn.init.xavier_uniform_(weight)
        for module in self.projection.values():
            for layer in module.modules():
                if isinstance(layer, nn.Linear):
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

    def _item_graph_mm(self, items):
        return self.item_graph @ items

    def _smooth_items_early(self, items):
        """(I + Σ_{t=1..T} S^t) applied to item rows (item_graph_mode: early)."""
        if self.item_graph is None or self.item_graph_mode != "early":
            return items
        out, current = items, items
        for _ in range(self.knn_layers):
            current = self._item_graph_mm(current)
            out = out + current
        return out

    def _late_item_graph(self, signal):
        """X_I ← X_I + S^T X_I on the item rows of a propagated signal (item_graph_mode: late)."""
        if self.item_graph is None or self.item_graph_mode != "late" or self.knn_layers == 0:
            return signal
        items = signal[self.n_users:]
        smoothed = items
        for _ in range(self.knn_layers):
            smoothed = self._item_graph_mm(smoothed)
        return torch.cat([signal[: self.n_users], items + smoothed], 0)

    def _propagate(self, signal, graph):
        """g(Â)Z = Σ_l Â^l Z (layer sum, released) or (1/(L+1)) Σ_l Â^l Z (layer mean) on a symmetric graph."""
        out, current = signal, signal
        for _ in range(self.n_layers):
            current = symmetric_spmm(graph, current)
            out = out + current
        return out if self.layer_aggregation == "sum" else out / (self.n_layers + 1)

    def user_item_mean(self, interactions=None):
        """D_u^{-1} R: each user's row averages the rows of the user's training items (users × items)."""
        interactions = self.interactions if interactions is None else interactions
        counts = np.asarray(interactions.sum(axis=1)).ravel()
        inv = np.where(counts > 0, 1.0 / np.maximum(counts, 1e-12), 0.0).astype(np.float32)
        return to_torch_sparse(sp.diags(inv) @ interactions, self.device)

    @torch.no_grad()
    def _fixed_signal(self, item_features, interactions=None, graph=None):
        """The fixed part of modality branch m before its encoder, by default on the full graph:
        g(Â)[U_m ; (I + ΣS^t) F] (early) or g(Â)[U_m ; F] + late item graph; U_m = 0 (free) or the mean of the
        user's items' rows (item_mean). ``interactions``/``graph``: a pruned training graph instead."""
        items = self._smooth_items_early(item_features)
        if self.user_modality == "item_mean":
            users = torch.sparse.mm(self.user_item_mean(interactions), items)
        else:
            users = torch.zeros(self.n_users, items.shape[1], device=self.device)
        signal = self._propagate(torch.cat([users, items], 0), self.norm_adj if graph is None else graph)
        return self._late_item_graph(signal)

    # ------------------------------------------------------------------------------------------
    # edge pruning (training graph)
    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def resample_training_graph(self):
        """Draw this epoch's pruned user–item graph (edge_keep_ratio < 1) and the feature part's bands on it
        (user means over the kept edges, propagation and band filters on the pruned graph; current borders)."""
        if self._pruning is None:
            self._pruning = DegreeSensitiveEdgePruning(self.interactions, self.edge_keep_ratio)
        kept = self._pruning.sample_matrix(self._prune_generator)
        coo = kept.tocoo()
        self._kept_keys = torch.from_numpy(np.sort(coo.row.astype(np.int64) * self.n_items + coo.col)).to(self.device)
        self.train_adj = normalized_bipartite_graph(kept, self.device).to_sparse_csr()
        self.train_laplacian = shifted_laplacian(self.train_adj.to_sparse_coo())
        self._sync_borders()
        self.fixed_bands_train = {
            m: self.bands.stacked_bands(self._fixed_signal(self.fixed_signal_input[m], kept, self.train_adj),
                                        laplacian=self.train_laplacian).contiguous()
            for m in self.fixed_signal}
        if self.user_mean is not None:
            self.user_mean_train = self.user_item_mean(kept)
        return kept

    def _pruned(self):
        return self.training and self.edge_keep_ratio < 1.0 and self.train_adj is not None

    def _graph(self):
        """(Â, L̃) for the learned part: the pruned graph while training (when drawn), else the full one."""
        if self._pruned():
            return self.train_adj, self.train_laplacian
        return self.norm_adj, None  # None: the decomposition's own (full-graph) Laplacian

    # ------------------------------------------------------------------------------------------
    # signal and bands
    # ------------------------------------------------------------------------------------------
    def learned_input(self):
        """Z of the learned part: [E_U ; E_I (early: smoothed)] and, per modality, [P_m ; 0] (free user signals,
        feature branches), [U_m ; E_I ⊙ σ(enc_m([F_m, 1]))] (gated_id; U_m = P_m or the item mean) (N × learned_dim)."""
        ids = torch.cat([self.user_embedding.weight, self._smooth_items_early(self.item_embedding.weight)], 0)
        if self.user_modality != "free" and not self.gated_input:
            return ids
        zeros = torch.zeros(self.n_items, self.embedding_size, device=self.device)
        branches = []
        for m in self.modalities:
            items = zeros
            if self.gated_input:  # E_I ⊙ σ(enc_m([F_m, 1])), then the early item graph
                items = self._smooth_items_early(self.item_embedding.weight * self.item_gate(m))
            if self.user_modality == "free":
                users = F.normalize(self.user_preference[m], dim=1) if self.pref_normalize else self.user_preference[m]
            else:  # item_mean of the gated item rows, over the epoch's kept edges while training
                users = torch.sparse.mm(self._user_mean(), items)
            branches.append(torch.cat([users, items], 0))
        return torch.cat([ids] + branches, 1)

    def item_gate(self, m):
        """σ(enc_m([F_m, 1])): modality m's gate of every item (n_items × d)."""
        return torch.sigmoid(self.projection[m](self.fixed_signal_input[m]))

    def _user_mean(self):
        """D_u^{-1} R over the epoch's kept edges while training (when pruning), over all edges otherwise."""
        return self.user_mean_train if self._pruned() and self.user_mean_train is not None else self.user_mean

    def node_gates(self, m, rows=None):
        """gated_bands: modality m's gate of every node at ``rows`` — items σ(enc_m([F_m, 1])), users the mean of
        their items' gates (n × d)."""
        items = self.item_gate(m)
        if rows is None:
            return torch.cat([torch.sparse.mm(self._user_mean(), items), items], 0)
        # only the batch's users are averaged (one sparse row gather instead of every user's mean)
        is_user = rows < self.n_users
        gates = items.new_empty(rows.shape[0], items.shape[1])
        gates[is_user] = torch.sparse.mm(self._user_mean().index_select(0, rows[is_user]), items)
        gates[~is_user] = items[rows[~is_user] - self.n_users]
        return gates

    def learned_signal(self, graph=None):
        """X of the learned part: g(Â)Z, then the late item graph."""
        graph = self.norm_adj if graph is None else graph
        return self._late_item_graph(self._propagate(self.learned_input(), graph))

    def _encoder_linear_part(self, m):
        """The linear map the calibration applies to the feature part (the encoder, or the MLP's first layer)."""
        return self.projection[m] if self.feature_encoder == "linear" else self.projection[m][0]

    @torch.no_grad()
    def full_signal(self):
        """The signal the borders are placed on (full graph): the learned part with each modality's
        feature part mapped by its encoder added in (linear encoder: exactly the model's X), or, for the MLP
        encoder, the feature parts mapped by the MLP's first (linear) layer placed beside the learned part."""
        signal = self.learned_signal()
        if not self.feature_part:  # gated signals: the borders sit on what is banded, the learned signal
            return signal
        d = self.embedding_size
        mapped = {m: self._encoder_linear_part(m)(self.fixed_signal[m]) for m in self.modalities}
        if self.feature_encoder == "mlp":
            return torch.cat([signal] + [mapped[m] for m in self.modalities], 1)
        parts = [signal[:, :d]]
        for j, m in enumerate(self.modalities):
            parts.append(mapped[m] + signal[:, d * (j + 1): d * (j + 2)] if self.user_modality == "free" else mapped[m])
        return torch.cat(parts, 1)

    @torch.no_grad()
    def calibrate_bands(self):
        """Place the band borders on the current signal (full graph) and rebuild the fixed part's bands
        when they moved. Called at construction and by the trainer on its schedule."""
        shares = self.bands.calibrate(self.full_signal())
        self.band_borders.copy_(torch.as_tensor(self.bands.borders, dtype=torch.float64))
        if self._cached_borders is None or not torch.equal(self._cached_borders, self.band_borders):
            self._rebuild_fixed_bands()
        self.clear_cache()
        kind = "exact" if self.bands.exact else f"Chebyshev degree {self.bands.degree}"
        borders = "released fixed Chebyshev filters" if not self.bands.adaptive and self.band_method != "fixed" else \
            f"borders λ = {np.round(self.bands.borders_lambda(), 4).tolist()}"
        self.logger.info(f"SSR bands ({kind}, {self.band_method}): {borders}, energy shares "
                         f"{np.round(shares, 4).tolist()} (imbalance {energy_imbalance(shares):.2%})")

    @torch.no_grad()
    def _rebuild_fixed_bands(self):
        self.fixed_bands = {m: self.bands.stacked_bands(signal).contiguous() for m, signal in self.fixed_signal.items()}
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
        graph, laplacian = self._graph()
        learned = self.bands.stacked_bands(self.learned_signal(graph), rows, laplacian=laplacian)  # (n, M, w)
        if self.gated_input:  # every branch is learned
            return learned
        if self.gated_bands:  # branch m = the ID bands, each node's row gated by its modality-m gate
            return torch.cat([learned] + [learned * self.node_gates(m, rows).unsqueeze(1) for m in self.modalities], -1)
        d = self.embedding_size
        parts = [learned[..., :d]]
        fixed_bands = self.fixed_bands_train if self._pruned() else self.fixed_bands
        for j, m in enumerate(self.modalities):  # (n, M, r+1) → encoder on every band at once
            part = self.projection[m](fixed_bands[m] if rows is None else fixed_bands[m][rows])
            if self.user_modality == "free":
                part = part + learned[..., d * (j + 1): d * (j + 2)]
            parts.append(part)
        return torch.cat(parts, -1)

    def fuse(self, bands, keep, n_user_rows):
        """Stage 3 on (n, M, D) bands whose first ``n_user_rows`` rows are users (the released operators
        are per node type)."""
        return self.fuse_many(bands, [keep], n_user_rows)[0]

    def fuse_many(self, bands, keeps, n_user_rows):
        """:meth:`fuse` under every mask of ``keeps`` (None = unmasked), sharing what does not depend on it."""
        if self.fusion == "sum":
            return [(bands if keep is None else bands * keep.unsqueeze(-1)).sum(1) for keep in keeps]
        if self.hsno is not None:
            return [self.hsno(bands, keep)[0] for keep in keeps]
        parts = []
        for op, rows in ((self.hsno_user, slice(0, n_user_rows)), (self.hsno_item, slice(n_user_rows, None))):
            if bands[rows].shape[0]:
                parts.append([z for z, _ in op.forward_many(bands[rows], [k if k is None else k[rows] for k in keeps])])
        return [torch.cat([p[i] for p in parts], 0) for i in range(len(keeps))]

    def fusion_regularizer(self):
        if self.fusion != "hsno":
            return torch.zeros(())
        if self.hsno is not None:
            return self.hsno.regularizer()
        return self.hsno_user.regularizer() + self.hsno_item.regularizer()

    # ------------------------------------------------------------------------------------------
    # losses
    # ------------------------------------------------------------------------------------------
    def alignment_loss(self, item_bands):
        """Stage 4 InfoNCE per band between every ordered pair of views (``cl_views``: the modalities, or the ID
        branch and the modalities) of the same items (item_bands: n × M × D)."""
        views = self.cl_views
        if len(views) < 2:
            return item_bands.new_zeros(())
        d, m_bands = self.embedding_size, self.n_bands
        slices = [F.normalize(item_bands[:, :, d * v: d * (v + 1)], dim=-1) for v in views]
        target = torch.arange(item_bands.shape[0], device=item_bands.device)
        losses = []
        for a in range(len(views)):
            for c in range(len(views)):
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
        """Recalibrate the band borders every ``band_recalibrate_every`` epochs (equal-energy splits only: the
        other splits do not depend on the signal), then redraw the pruned training graph (edge_keep_ratio < 1)."""
        every = self.band_recalibrate_every
        if self.bands.adaptive and every and epoch_idx > 0 and epoch_idx % every == 0:
            self.calibrate_bands()
        if self.edge_keep_ratio < 1.0:
            self.resample_training_graph()

    def calculate_loss(self, interaction):
        user = interaction[self.USER_ID]
        pos = interaction[self.ITEM_ID]
        neg = interaction[self.NEG_ITEM_ID]
        n = user.shape[0]
        rows = torch.cat([user, pos + self.n_users, neg + self.n_users])
        nodes, where = torch.unique(rows, return_inverse=True)  # each node of the batch once
        bands = self.node_bands(nodes)
        n_user_rows = int((nodes < self.n_users).sum())  # torch.unique sorts: users first

        masking = self.band_drop_prob > 0 and self.n_bands > 1
        keep = band_keep_mask(bands.shape[0], self.n_bands, self.band_drop_prob, device=bands.device) if masking else None
        consistency = None
        if self.mask_semantics == "consistency_only":
            if masking and self.lambda_mask > 0:
                z, masked = self.fuse_many(bands, [None, keep], n_user_rows)
                consistency = F.mse_loss(masked, z.detach())
            else:
                z = self.fuse(bands, None, n_user_rows)
        else:
            z = self.fuse(bands, keep, n_user_rows)
            if masking and self.lambda_mask > 0:
                with torch.no_grad():
                    full = self.fuse(bands.detach(), None, n_user_rows)
                consistency = (z - full).pow(2).sum(1).mean()

        u, p, q = z[where[:n]], z[where[n:2 * n]], z[where[2 * n:]]
        pos_scores, neg_scores = (u * p).sum(1), (u * q).sum(1)
        if self.loss_type == "BCE":  # mean over the 2n logits (released: BCE-with-logits on [pos ; neg])
            pair_loss = 0.5 * (F.softplus(-pos_scores) + F.softplus(neg_scores))
        else:
            pair_loss = F.softplus(neg_scores - pos_scores)
        if self.loss_pairs == "held_out" and self._pruned():
            # only the pairs whose edge this epoch's graph left out: their user's signal does not contain them
            held_out = ~torch.isin(user * self.n_items + pos, self._kept_keys)
            loss = (pair_loss * held_out).sum() / held_out.sum().clamp_min(1)
        else:
            loss = pair_loss.mean()

        if consistency is not None:
            loss = loss + self.lambda_mask * consistency
        if self.lambda_reg > 0 and self.fusion == "hsno":
            loss = loss + self.lambda_reg * self.fusion_regularizer()
        if self.lambda_cl > 0 and len(self.cl_views) > 1:
            items, inverse = torch.unique(pos, return_inverse=True)
            first = torch.full((items.shape[0],), n, dtype=torch.long, device=pos.device)
            first = first.scatter_reduce(0, inverse, torch.arange(n, device=pos.device), reduce="amin")
            item_rows = bands[where[n:2 * n][first[: self.cl_max_items]]]  # one row per distinct positive item
            loss = loss + self.lambda_cl * self.alignment_loss(item_rows)
        if self.pref_reg_weight > 0 and self.user_modality == "free":
            batch_users = torch.unique(user)
            loss = loss + self.pref_reg_weight * sum(
                self.user_preference[m][batch_users].pow(2).sum(1).mean() for m in self.modalities)
        return loss

    # ------------------------------------------------------------------------------------------
    # prediction
    # ------------------------------------------------------------------------------------------
    def compute_embeddings(self):
        bands = self.node_bands()
        if self._removed_band is not None:  # diagnose: this band's signal removed at inference
            bands = bands.clone()
            bands[:, self._removed_band] = 0.0
        z = self.fuse(bands, None, self.n_users)
        return z[: self.n_users], z[self.n_users:]

    # ------------------------------------------------------------------------------------------
    # diagnostics (recbole_spectral.diagnose)
    # ------------------------------------------------------------------------------------------
    @contextmanager
    def _without_band(self, band):
        self._removed_band = band
        self.clear_cache()
        try:
            yield
        finally:
            self._removed_band = None
            self.clear_cache()

    def inference_ablations(self):
        """Band b removed at inference: B_b set to zero for every node before the fusion."""
        return {f"without band {b + 1}": partial(self._without_band, b) for b in range(self.n_bands)}

    def diagnostics(self):
        """Figure specs: band energy shares and borders, the band-mixing kernel(s), per-band alignment."""
        borders = [0.0, *np.asarray(self.bands.borders_lambda(), dtype=float).tolist(), 2.0]
        labels = [f"band {b + 1}: λ {borders[b]:.2f}-{borders[b + 1]:.2f}" for b in range(self.n_bands)]
        shares = np.asarray(self.bands.shares, dtype=float)
        figures = [{
            "name": "band_energy", "kind": "bars", "title": "energy share of each band (training graph)",
            "xlabel": "band (borders on the eigenvalue axis λ of the normalised Laplacian)", "ylabel": "share of ‖X‖²",
            "data": {label: {"share": float(share)} for label, share in zip(labels, shares)},
            "borders_lambda": borders[1:-1],
            "sentence": "Each band's share ⟨X, B_b⟩/‖X‖² of the signal energy at the last calibration (they sum to 1) "
                        "and where its borders sit on the graph's eigenvalue axis λ ∈ [0, 2].",
        }]
        operators = [("", self.hsno)] if self.hsno is not None else [
            (" (users)", self.hsno_user), (" (items)", self.hsno_item)] if self.hsno_user is not None else []
        for suffix, operator in operators:
            figures.append({
                "name": "band_mixing" + (f"_{suffix.strip(' ()')}" if suffix else ""),
                "kind": "heatmap", "title": f"G-HSNO band-mixing kernel{suffix}",
                "data": operator.kernel().detach().cpu().numpy(), "labels": [f"B{b + 1}" for b in range(self.n_bands)],
                "sentence": f"How much each input band (column) feeds each output band (row) in the learned operator{suffix}.",
            })
        if len(self.modalities) > 1:
            bands = self.node_bands()[self.n_users + 1:]  # items, padding row excluded
            d = self.embedding_size
            slices = [F.normalize(bands[..., d * (j + 1): d * (j + 2)], dim=-1) for j in range(len(self.modalities))]
            pair = f"{self.modalities[0]}–{self.modalities[1]}"
            cosine = (slices[0] * slices[1]).sum(-1).mean(0)
            figures.append({
                "name": "band_alignment", "kind": "bars", "title": f"cross-modal alignment per band ({pair})",
                "ylabel": "mean cosine", "data": {f"band {b + 1}": {"cosine": float(c)} for b, c in enumerate(cosine)},
                "sentence": f"Mean cosine between each item's {self.modalities[0]} and {self.modalities[1]} slices "
                            "in every band (what the per-band InfoNCE aligns).",
            })
        return figures
