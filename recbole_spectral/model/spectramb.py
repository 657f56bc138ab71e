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
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.model.init import xavier_uniform_initialization
from recbole.model.loss import BPRLoss, EmbLoss
from recbole.utils import InputType

from recbole_spectral.errors import ConfigError
from recbole_spectral.layers.fusion import GlobalContextAttention
from recbole_spectral.layers.graph import AGGREGATIONS, normalized_bipartite_graph, propagate
from recbole_spectral.layers.spectral import ContextSpectralFilter, SpectralFilter, n_frequencies

FILTER_MODES = ("static", "context")
FUSIONS = ("attention", "mean")


def _choice(config, key, allowed):
    value = config[key]
    if value not in allowed:
        raise ConfigError(f"config key '{key}': expected one of {list(allowed)}, got {value!r}")
    return value


class SpectraMB(GeneralRecommender):
    r"""Multi-behavior recommender with per-view feature-frequency filters and global-context attention."""

    input_type = InputType.PAIRWISE

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # dataset facts: one graph per behavior (funnel order, target included) and one on their union
        if not hasattr(dataset, "behavior_matrix"):
            raise ConfigError(
                f"SpectraMB needs a multi-behavior dataset (YAML keys 'behaviors' and 'target_behavior'); "
                f"dataset '{config['dataset']}' has none"
            )
        self.behaviors = list(dataset.behaviors)
        self.target_behavior = dataset.target_behavior

        # hyperparameters
        self.embedding_size = config["embedding_size"]
        n_frequencies(self.embedding_size)  # refuses an odd size with a one-line ConfigError
        self.n_layers = config["n_layers"]
        self.layer_aggregation = _choice(config, "layer_aggregation", AGGREGATIONS)
        self.l2_normalize = config["l2_normalize"]
        self.reg_weight = config["reg_weight"]
        self.require_pow = config["require_pow"]
        self.spectral_filter = config["spectral_filter"]
        self.filter_mode = _choice(config, "filter_mode", FILTER_MODES)
        self.fusion = _choice(config, "fusion", FUSIONS)
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

        # caches for full-sort evaluation (plain tensors, never nn.Parameters)
        self.restore_user_e = None
        self.restore_item_e = None

        # init: ID embeddings and attention like LightGCN; filters start at the identity
        self.user_embedding.apply(xavier_uniform_initialization)
        self.item_embedding.apply(xavier_uniform_initialization)
        self.attention.apply(xavier_uniform_initialization)

    def _propagate(self, graph, embeddings):
        return propagate(graph, embeddings, self.n_layers, self.layer_aggregation, self.l2_normalize, symmetric=True)

    def _filter(self, module, embeddings, context=None):
        return module(embeddings, context) if self.spectral_filter else embeddings

    def forward(self):
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
        self.clear_cache()
        user = interaction[self.USER_ID]
        pos_item = interaction[self.ITEM_ID]
        neg_item = interaction[self.NEG_ITEM_ID]

        user_e, item_e = self.forward()
        u, pos, neg = user_e[user], item_e[pos_item], item_e[neg_item]
        mf_loss = self.mf_loss((u * pos).sum(-1), (u * neg).sum(-1))
        reg_loss = self.reg_loss(
            self.user_embedding(user), self.item_embedding(pos_item), self.item_embedding(neg_item),
            require_pow=self.require_pow,
        )
        return mf_loss + self.reg_weight * reg_loss

    def predict(self, interaction):
        user_e, item_e = self.forward()
        return (user_e[interaction[self.USER_ID]] * item_e[interaction[self.ITEM_ID]]).sum(-1)

    def full_sort_predict(self, interaction):
        if self.restore_user_e is None or self.restore_item_e is None:
            user_e, item_e = self.forward()
            self.restore_user_e, self.restore_item_e = user_e.detach(), item_e.detach()
        return (self.restore_user_e[interaction[self.USER_ID]] @ self.restore_item_e.T).view(-1)

    # -- cache hygiene: embeddings cached for evaluation are stale once weights change ----------------
    def clear_cache(self):
        self.restore_user_e, self.restore_item_e = None, None

    def train(self, mode=True):
        self.clear_cache()
        return super().train(mode)

    def load_state_dict(self, state_dict, strict=True, **kwargs):
        self.clear_cache()  # the trainer reloads the best weights before testing
        return super().load_state_dict(state_dict, strict=strict, **kwargs)
