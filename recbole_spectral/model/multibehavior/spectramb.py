r"""
SpectraMB
################################################

Reference:
    "Dynamic Spectral Denoising with Global-Context Attention for Multi-Behavior Recommendation."
    arXiv 2606.02417, KDD 2026.

What this file implements (d = embedding_size, even; E^(0) = [user; item] ID embeddings shared by all
views; Â_b the symmetric-normalised bipartite graph of behavior b's training interactions, Â_g the one
of the union of all behaviors):

1. Views. For every behavior b (auxiliary behaviors and the training target) and for the global view g,
   LightGCN-style propagation with row L2-normalisation after each layer (published code: 3 layers,
   layer outputs summed; ``layer_aggregation`` = sum | mean | last):

       E_b = AGG(E^(0), norm(Â_b E^(0)), norm(Â_b norm(Â_b E^(0))), ...),   E_g likewise on Â_g.

2. Feature-level spectral filtering (rFFT along the feature dimension, orthonormal; W complex, d/2+1):

       G   = irFFT(rFFT(E_g) ⊙ W_g)                                  purified global
       P_b = irFFT(rFFT(E_b) ⊙ W_b)                                  ``filter_mode: static`` (published code)
       P_b = irFFT(rFFT(E_b) ⊙ W_b ⊙ (1 + G M_b + m_b))              ``filter_mode: context`` (per node)

3. Global-context attention fusion, query G; per view h_b = tanh(G W1_b + b1_b), s_b = h_b W2_b:

       F = mean_b(d · softmax_feat(s_b) ⊙ P_b)                       ``attention_softmax: feature`` (published code)
       F = sum_b softmax_views(s)_b · P_b                            ``attention_softmax: view`` (paper)

4. Output and score:  E* = F + c_g · G + c_res · E_g,   ŷ(u, i) = <E*_u, E*_i>.

5. Loss: BPR on target-behavior training pairs (RecBole's sampler) + reg_weight · ||E^(0)_{u,i,j}||².

Ablations: ``spectral_filter: False`` (all filters = identity), ``fusion: mean`` (F = mean_b P_b),
``residual_global: False`` (c_res = 0).
"""

import torch
import torch.nn as nn
from recbole.model.init import xavier_uniform_initialization
from recbole.model.loss import BPRLoss, EmbLoss

from recbole_spectral.hyperparameters import Bool, Choice, Float, Int
from recbole_spectral.layers.multibehavior.fusion import GlobalContextAttention
from recbole_spectral.layers.graph import AGGREGATIONS, normalized_bipartite_graph, propagate
from recbole_spectral.layers.feature_fft import ContextSpectralFilter, SpectralFilter
from recbole_spectral.model.base import EmbeddingRecommender

FILTER_MODES = ("static", "context")
FUSIONS = ("attention", "mean")


class SpectraMB(EmbeddingRecommender):
    r"""Multi-behavior recommender with per-view feature-frequency filters and global-context attention."""

    dataset_kind = "multibehavior"
    hyperparameters = {
        "embedding_size": Int(low=2, even=True),
        "n_layers": Int(low=0),
        "layer_aggregation": Choice(*AGGREGATIONS),
        "l2_normalize": Bool(),
        "reg_weight": Float(low=0.0),
        "require_pow": Bool(),
        "spectral_filter": Bool(),
        "filter_mode": Choice(*FILTER_MODES),
        "fusion": Choice(*FUSIONS),
        "attention_softmax": Choice("feature", "view"),
        "attention_size": Int(low=1),
        "global_weight": Float(),
        "residual_global": Bool(),
        "residual_weight": Float(),
    }

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # dataset facts: one graph per behavior (funnel order, target included) and one on their union
        self.behaviors = list(dataset.behaviors)
        self.target_behavior = dataset.target_behavior

        # hyperparameters
        self.embedding_size = config["embedding_size"]
        self.n_layers = config["n_layers"]
        self.layer_aggregation = config["layer_aggregation"]
        self.l2_normalize = config["l2_normalize"]
        self.reg_weight = config["reg_weight"]
        self.require_pow = config["require_pow"]
        self.spectral_filter = config["spectral_filter"]
        self.filter_mode = config["filter_mode"]
        self.fusion = config["fusion"]
        self.global_weight = config["global_weight"]
        self.residual_weight = config["residual_weight"] if config["residual_global"] else 0.0

        # layers
        self.user_embedding = nn.Embedding(self.n_users, self.embedding_size)
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size)
        view_filter = ContextSpectralFilter if self.filter_mode == "context" else SpectralFilter
        self.view_filters = nn.ModuleList(view_filter(self.embedding_size) for _ in self.behaviors)
        self.global_filter = SpectralFilter(self.embedding_size)
        self.attention = GlobalContextAttention(
            self.embedding_size, len(self.behaviors), config["attention_size"], config["attention_softmax"]
        )
        self.mf_loss = BPRLoss()
        self.reg_loss = EmbLoss()

        # graphs, normalised once (plain tensors, not buffers: they are data, not weights); CSR and the
        # symmetric product make CPU propagation several times faster than COO with autograd's transpose
        self.view_graphs = [
            normalized_bipartite_graph(dataset.behavior_matrix(b), self.device).to_sparse_csr() for b in self.behaviors
        ]
        self.global_graph = normalized_bipartite_graph(dataset.all_behaviors_matrix(), self.device).to_sparse_csr()

        # init: ID embeddings and attention like LightGCN; filters start at the identity
        self.user_embedding.apply(xavier_uniform_initialization)
        self.item_embedding.apply(xavier_uniform_initialization)
        self.attention.apply(xavier_uniform_initialization)

    def _propagate(self, graph, embeddings):
        return propagate(graph, embeddings, self.n_layers, self.layer_aggregation, self.l2_normalize, symmetric=True)

    def _filter(self, module, embeddings, context=None):
        return module(embeddings, context) if self.spectral_filter else embeddings

    def compute_embeddings(self):
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight], dim=0)
        raw_global = self._propagate(self.global_graph, ego)
        purified_global = self._filter(self.global_filter, raw_global)
        context = purified_global if self.filter_mode == "context" else None
        views = [
            self._filter(view_filter, self._propagate(graph, ego), context)
            for view_filter, graph in zip(self.view_filters, self.view_graphs)
        ]
        if self.fusion == "attention":
            fused = self.attention(purified_global, views)
        else:
            fused = torch.stack(views, dim=0).mean(0)
        final = fused + self.global_weight * purified_global + self.residual_weight * raw_global
        return torch.split(final, [self.n_users, self.n_items])

    def calculate_loss(self, interaction):
        user = interaction[self.USER_ID]
        pos_item = interaction[self.ITEM_ID]
        neg_item = interaction[self.NEG_ITEM_ID]

        user_e, item_e = self.compute_embeddings()
        u, pos, neg = user_e[user], item_e[pos_item], item_e[neg_item]
        mf_loss = self.mf_loss((u * pos).sum(-1), (u * neg).sum(-1))
        reg_loss = self.reg_loss(
            self.user_embedding(user), self.item_embedding(pos_item), self.item_embedding(neg_item),
            require_pow=self.require_pow,
        )
        return mf_loss + self.reg_weight * reg_loss
