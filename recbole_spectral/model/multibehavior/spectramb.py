r"""
SpectraMB
################################################

Reference:
    "Dynamic Spectral Denoising with Global-Context Attention for Multi-Behavior Recommendation."
    arXiv 2606.02417, KDD 2026. Official code: github.com/miaomiao-cai2/SpectraMB-KDD2026 (``model.py``,
    ``lightGCN.py``, ``main.py``, ``trainer.py``, ``data_set.py``, ``utils.py``).

What this file implements (d = embedding_size, even; E^(0) = [user; item] ID embeddings shared by all
views; Â_b the symmetric-normalised bipartite graph of behavior b's training interactions, Â_g the one
of the union of all behaviors):

1. Views. For every behavior b (auxiliary behaviors and the training target, funnel order) and for the
   global view g, LightGCN-style propagation with row L2-normalisation after each layer (official
   ``lightGCN.py``: layer outputs, input included, summed; ``layer_aggregation`` = sum | mean | last):

       E_b = AGG(S_b, norm(Â_b S_b), norm(Â_b norm(Â_b S_b)), ...),   E_g likewise from E^(0) on Â_g.

   ``view_mode`` chooses the start S_b:  parallel (official): S_b = E^(0) for every view;
   cascade: S_1 = E^(0), S_b = P_{b-1} (the previous behavior's *filtered* view, funnel order, as
   CRGCN / MB-CGCN pass each behavior's output to the next); cascade_global: as cascade, with S_1 = E_g.
   ``extra_views`` adds MuLe's target-related views of every auxiliary behavior b (graphs from training
   target rows only, :mod:`recbole_spectral.layers.multibehavior.target_views`): also_bought (b ∩ buy) and
   not_bought (b \ buy), each with its own filter and attention scorer; they start from E^(0) (parallel)
   or from P_b (cascade modes, as MuLe starts them from b's view).

2. Feature-level spectral filtering (rFFT along the feature dimension, orthonormal; W complex, d/2+1):

       G   = irFFT(rFFT(E_g) ⊙ W_g)                                  purified global
       P_b = irFFT(rFFT(E_b) ⊙ W_b)                                  ``filter_mode: static`` (official)
       P_b = irFFT(rFFT(E_b) ⊙ W_b ⊙ (1 + G M_b + m_b))              ``filter_mode: context`` (per node)

   ``filter_init``: identity (W = 1) | random (official: real and imaginary parts N(0, 1)).

3. Global-context attention fusion, query G; per view h_b = tanh(G W1_b + b1_b), s_b = h_b W2_b:

       F = mean_b(d · softmax_feat(s_b) ⊙ P_b)                       ``attention_softmax: feature`` (official)
       F = sum_b softmax_views(s)_b · P_b                            ``attention_softmax: view`` (paper)

4. Output and score:  E* = c_f · F + c_g · G + c_res · E_g,   ŷ(u, i) = <E*_u, E*_i>
   (``fused_weight`` c_f, ``global_weight`` c_g, ``residual_weight`` c_res).

5. Loss: BPR on target-behavior training pairs (RecBole's sampler)
   + reg_weight · EmbLoss(E^(0) rows of the batch) + final_reg_weight · EmbLoss(E* rows of the batch)
   (EmbLoss = Σ ||·||_F / batch, not squared, for the final rows as in the official ``utils.EmbLoss``),
   and RecBole's ``weight_decay`` (Adam's L2 on every parameter, as the official ``decay``).

6. BEYOND THE PAPER, off by default (``history_term: True``): ŷ(u, i) += h(u, i), the history term
   Σ_b α_b · 2σ(ρ_{u,b}) · 1[(u, i) ∈ b] over the auxiliary behaviors, a building block every
   multi-behavior model here offers (:mod:`recbole_spectral.layers.multibehavior.history_term`); and
   (``cascade_term: True``) ŷ(u, i) += c(u, i), the cascade term: a learned function of i's rank in
   CascadingRank's list for u (:mod:`recbole_spectral.layers.multibehavior.cascade_term`). The YAML
   defaults are the paper's model.

What the official code does (read from the files above), and how to get it here
(``properties/recipes/SpectraMB-official.yaml``, taobao preset; ``SpectraMB-official-tmall.yaml``):
- ID embeddings N(0, 0.1) (``init: normal``, ``init_std: 0.1``); filters ``torch.randn`` complex
  (``filter_init: random``); attention W1, W2 xavier-uniform, b1 = 0, hidden size d.
- 3 layers, sum over layers with the input, L2-normalise each layer; parallel views on E^(0); the
  global view on ``all.txt`` (the union).
- Fusion: ``mean_b(softmax_feat(s_b) ⊙ P_b)`` WITHOUT the factor d, then
  ``mean_agg_coeff · F + processed_global_coeff · G + content_coeff · E_g``; README presets:
  taobao (1, 0, 1.25), tmall (1, 0, 1), ml (1, 1, 1). Here c_f multiplies d · (...), so the official
  c_f is mean_agg_coeff / d (0.015625 for d = 64).
- Loss: BPR (−log(1e-10 + σ)) + reg_coeff 1e-3 · EmbLoss of the batch's final embeddings; Adam lr 1e-3,
  weight_decay 1e-3 on all parameters; batch 1024; up to 200 epochs, validation every epoch, early stop
  after 10 epochs without a better validation HR@10 (min 5 epochs).
Departures that remain, and why:
- Training schedule: batch 4096 and lr 2e-3 instead of 1024 / 1e-3 (a step costs about the same up to
  batch 4096 on 2 CPU cores); the fair-field studies tune lr and depth for this model like every other.
- Negatives: the official code draws one negative per training buy ONCE (``data_set.__get_train_data``)
  and reshuffles the same triples every epoch; RecBole draws fresh uniform negatives each epoch (its
  sampler; a fixed negative set is a quirk, not part of the method).
- The official attention init uses xavier on the stacked (views, d, d) tensors (fan = d², a ~6x smaller
  bound than xavier on each d x d matrix used here); both leave the feature softmax near uniform at init.
- Padding row 0 takes part in the official filters and graphs as an isolated node; RecBole's padding row
  is isolated here too, so it changes nothing.
- Evaluation: RecBole's full ranking with the user's training target items masked, as the official
  ``evaluate`` masks ``train_behavior_dict['buy']``.
- Training speed only (identical results): the filters, attention and output mix are computed for the
  batch's rows only in ``calculate_loss`` (they act node by node); propagation runs on the whole graphs.

Ablations: ``spectral_filter: False`` (all filters = identity), ``fusion: mean`` (F = mean_b P_b),
``residual_global: False`` (c_res = 0).
"""

from contextlib import contextmanager
from functools import partial

import numpy as np
import torch
import torch.nn as nn
from recbole.model.init import xavier_uniform_initialization
from recbole.model.loss import BPRLoss, EmbLoss

from recbole_spectral.hyperparameters import Bool, Choice, Float, Int, List
from recbole_spectral.layers.feature_fft import ContextSpectralFilter, SpectralFilter
from recbole_spectral.layers.graph import AGGREGATIONS, normalized_bipartite_graph, propagate
from recbole_spectral.layers.multibehavior.fusion import GlobalContextAttention
from recbole_spectral.layers.multibehavior.cascade_term import CASCADE_TERM_HYPERPARAMETERS
from recbole_spectral.layers.multibehavior.history_term import HISTORY_TERM_HYPERPARAMETERS
from recbole_spectral.layers.multibehavior.target_views import TARGET_VIEWS, target_view_matrices
from recbole_spectral.model.base import EmbeddingRecommender

FILTER_MODES = ("static", "context")
FUSIONS = ("attention", "mean")
VIEW_MODES = ("parallel", "cascade", "cascade_global")


class SpectraMB(EmbeddingRecommender):
    r"""Multi-behavior recommender with per-view feature-frequency filters and global-context attention."""

    dataset_kind = "multibehavior"
    hyperparameters = {
        "embedding_size": Int(low=2, even=True),
        "init": Choice("xavier", "normal"),
        "init_std": Float(low=0.0, low_open=True),
        "n_layers": Int(low=0),
        "layer_aggregation": Choice(*AGGREGATIONS),
        "l2_normalize": Bool(),
        "view_mode": Choice(*VIEW_MODES),
        "extra_views": List(Choice(*TARGET_VIEWS)),
        "reg_weight": Float(low=0.0),
        "require_pow": Bool(),
        "final_reg_weight": Float(low=0.0),
        "spectral_filter": Bool(),
        "filter_mode": Choice(*FILTER_MODES),
        "filter_init": Choice("identity", "random"),
        "fusion": Choice(*FUSIONS),
        "attention_softmax": Choice("feature", "view"),
        "attention_size": Int(low=1),
        "fused_weight": Float(),
        "global_weight": Float(),
        "residual_global": Bool(),
        "residual_weight": Float(),
        **HISTORY_TERM_HYPERPARAMETERS,
        **CASCADE_TERM_HYPERPARAMETERS,
    }

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # dataset facts: one graph per behavior (funnel order, target included) and one on their union

        # hyperparameters
        self.embedding_size = config["embedding_size"]
        self.n_layers = config["n_layers"]
        self.layer_aggregation = config["layer_aggregation"]
        self.l2_normalize = config["l2_normalize"]
        self.view_mode = config["view_mode"]
        self.extra_views = list(config["extra_views"] or [])
        self.reg_weight = config["reg_weight"]
        self.require_pow = config["require_pow"]
        self.final_reg_weight = config["final_reg_weight"]
        self.spectral_filter = config["spectral_filter"]
        self.filter_mode = config["filter_mode"]
        self.fusion = config["fusion"]
        self.fused_weight = config["fused_weight"]
        self.global_weight = config["global_weight"]
        self.residual_weight = config["residual_weight"] if config["residual_global"] else 0.0

        # views: (name, interaction matrix, base behavior whose filtered output starts it in cascade modes)
        views = [(b, dataset.behavior_matrix(b), None) for b in self.behaviors]
        views += [(name, m, base) for name, base, m in target_view_matrices(dataset, self.extra_views)]
        self._target_degree = np.asarray(dataset.behavior_matrix(self.target_behavior).sum(1)).ravel()  # for diagnose
        self._removed_view = None  # diagnose: a view removed at inference
        self.view_names = [name for name, _, _ in views]
        self.view_bases = [base for _, _, base in views]

        # layers
        self.user_embedding = nn.Embedding(self.n_users, self.embedding_size)
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size)
        view_filter = ContextSpectralFilter if self.filter_mode == "context" else SpectralFilter
        self.view_filters = nn.ModuleList(view_filter(self.embedding_size) for _ in views)
        self.global_filter = SpectralFilter(self.embedding_size)
        self.attention = GlobalContextAttention(
            self.embedding_size, len(views), config["attention_size"], config["attention_softmax"]
        )
        self.mf_loss = BPRLoss()
        self.reg_loss = EmbLoss()

        # graphs, normalised once (plain tensors, not buffers: they are data, not weights); CSR and the
        # symmetric product make CPU propagation several times faster than COO with autograd's transpose
        self.view_graphs = [normalized_bipartite_graph(m, self.device).to_sparse_csr() for _, m, _ in views]
        self.global_graph = normalized_bipartite_graph(dataset.all_behaviors_matrix(), self.device).to_sparse_csr()

        # init: ID embeddings (xavier like LightGCN, or N(0, init_std) as the official code); attention
        # xavier; filters at the identity or random complex N(0, 1) (official)
        if config["init"] == "normal":
            nn.init.normal_(self.user_embedding.weight, std=config["init_std"])
            nn.init.normal_(self.item_embedding.weight, std=config["init_std"])
        else:
            self.user_embedding.apply(xavier_uniform_initialization)
            self.item_embedding.apply(xavier_uniform_initialization)
        self.attention.apply(xavier_uniform_initialization)
        if config["filter_init"] == "random":
            with torch.no_grad():
                for f in [*self.view_filters, self.global_filter]:
                    f.weight.normal_()

    # -- views -------------------------------------------------------------------------------------
    def _propagate(self, graph, embeddings):
        return propagate(graph, embeddings, self.n_layers, self.layer_aggregation, self.l2_normalize, symmetric=True)

    def _filter(self, module, embeddings, context=None):
        return module(embeddings, context) if self.spectral_filter else embeddings

    def _views(self, rows=None):
        """(E_g, G, [P_b]) restricted to ``rows`` (indices into [users; items]) when given. Propagation
        always runs on the whole graphs; filters act node by node, so in parallel mode they run on the
        selected rows only (cascade modes filter every node: the next view starts from the filtered one)."""
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight], dim=0)
        raw_global = self._propagate(self.global_graph, ego)
        take = (lambda x: x) if rows is None else (lambda x: x[rows])
        if self.view_mode == "parallel":
            purified_global = self._filter(self.global_filter, take(raw_global))
            context = purified_global if self.filter_mode == "context" else None
            views = [self._filter(f, take(self._propagate(g, ego)), context)
                     for f, g in zip(self.view_filters, self.view_graphs)]
            return take(raw_global), purified_global, views
        full_global = self._filter(self.global_filter, raw_global)
        context = full_global if self.filter_mode == "context" else None
        previous = ego if self.view_mode == "cascade" else raw_global
        done = {}
        for name, base, f, g in zip(self.view_names, self.view_bases, self.view_filters, self.view_graphs):
            start = previous if base is None else done[base]
            done[name] = self._filter(f, self._propagate(g, start), context)
            if base is None:
                previous = done[name]
        return take(raw_global), take(full_global), [take(done[name]) for name in self.view_names]

    def _final(self, rows=None):
        raw_global, purified_global, views = self._views(rows)
        if self._removed_view is not None:  # diagnose: this view's purified signal removed at inference
            views = [torch.zeros_like(v) if i == self._removed_view else v for i, v in enumerate(views)]
        if self.fusion == "attention":
            fused = self.attention(purified_global, views)
        else:
            fused = torch.stack(views, dim=0).mean(0)
        return self.fused_weight * fused + self.global_weight * purified_global + self.residual_weight * raw_global

    def compute_embeddings(self):
        return torch.split(self._final(), [self.n_users, self.n_items])

    # -- diagnostics (recbole_spectral.diagnose) ---------------------------------------------------
    @contextmanager
    def _with_attributes(self, **values):
        """Plain attributes (e.g. ``_removed_view``, ``fused_weight``) set for the block, then restored."""
        saved = {name: getattr(self, name) for name in values}
        self.__dict__.update(values)
        self.clear_cache()
        try:
            yield
        finally:
            self.__dict__.update(saved)
            self.clear_cache()

    def inference_ablations(self):
        """View b removed at inference (its purified view P_b set to zero before the fusion), then the whole
        fused term (c_f = 0) and, when on, the history term."""
        ablations = {f"without {name}": partial(self._with_attributes, _removed_view=i) for i, name in enumerate(self.view_names)}
        ablations["without the fused views"] = partial(self._with_attributes, fused_weight=0.0)
        return {**ablations, **super().inference_ablations()}

    def view_shares(self):
        """Per node, each view's share ‖term_b‖ / Σ_b' ‖term_b'‖ of the fused representation, where term_b is
        the attention-weighted purified view (d·w_b ⊙ P_b, or w_b P_b with the view softmax): (n, views)."""
        _, purified_global, views = self._views()
        if self.fusion != "attention":
            terms = views
        elif self.attention.mode == "feature":
            terms = [self.embedding_size * w * v for w, v in zip(self.attention.weights(purified_global), views)]
        else:
            weights = self.attention.weights(purified_global)
            terms = [weights[:, b:b + 1] * v for b, v in enumerate(views)]
        norms = torch.stack([t.norm(dim=1) for t in terms], 1)
        return norms / norms.sum(1, keepdim=True).clamp_min(1e-12)

    def diagnostics(self):
        """Figure specs: filter magnitude responses, and the views' shares of the fused user representations
        (overall and by the user's number of training target interactions)."""
        d = self.embedding_size
        filters = {name: f.complex_weight() for name, f in zip(self.view_names, self.view_filters)}
        filters["global"] = self.global_filter.complex_weight()
        shares = self.view_shares()[1:self.n_users].cpu().numpy()  # users, padding excluded
        degree = self._target_degree[1:]
        buckets = {"cold (<= 5)": degree <= 5, "6-20": (degree > 5) & (degree <= 20), "> 20": degree > 20}
        return [{
            "name": "filter_response", "kind": "lines", "title": "learned filter magnitude |W(f)| per view",
            "xlabel": f"feature frequency (rFFT along the {d}-d embedding)", "ylabel": "|W|",
            "data": {name: w.abs().cpu().numpy() for name, w in filters.items()},
            "sentence": "Magnitude response of each behavior view's feature-frequency filter and of the global "
                        "filter: where a curve dips, that view's frequency component is suppressed (purified).",
        }, {
            "name": "view_shares", "kind": "box", "title": "share of each view in the fused user representation",
            "ylabel": "share", "data": {name: shares[:, i] for i, name in enumerate(self.view_names)},
            "sentence": "Distribution over users of each behavior view's share of the global-context attention "
                        "output (‖attention-weighted view‖ over the sum across views).",
        }, {
            "name": "view_shares_by_activity", "kind": "bars",
            "title": "mean view share by user activity (training target interactions)", "ylabel": "mean share",
            "data": {bucket: {name: float(shares[rows, i].mean()) if rows.any() else 0.0
                              for i, name in enumerate(self.view_names)} for bucket, rows in buckets.items()},
            "sentence": "The same shares averaged within user-activity buckets: how the attention leans on each "
                        "behavior for light and heavy buyers.",
        }]

    # -- scores and loss -------------------------------------------------------------------------
    def batch_embeddings(self, user, pos_item, neg_item):
        """Final embeddings of the batch's users, positives and negatives, computed for those rows only
        (equal to the rows of :meth:`compute_embeddings`)."""
        rows = torch.cat([user, self.n_users + pos_item, self.n_users + neg_item])
        unique, inverse = torch.unique(rows, return_inverse=True)
        final = self._final(unique)[inverse]
        return torch.split(final, [len(user), len(pos_item), len(neg_item)])

    def calculate_loss(self, interaction):
        user = interaction[self.USER_ID]
        pos_item = interaction[self.ITEM_ID]
        neg_item = interaction[self.NEG_ITEM_ID]

        u, pos, neg = self.batch_embeddings(user, pos_item, neg_item)
        pos_score = self.pair_scores(u, pos, user, pos_item)
        neg_score = self.pair_scores(u, neg, user, neg_item)
        loss = self.mf_loss(pos_score, neg_score)
        if self.reg_weight:
            loss = loss + self.reg_weight * self.reg_loss(
                self.user_embedding(user), self.item_embedding(pos_item), self.item_embedding(neg_item),
                require_pow=self.require_pow,
            )
        if self.final_reg_weight:
            loss = loss + self.final_reg_weight * self.reg_loss(u, pos, neg)
        return loss
