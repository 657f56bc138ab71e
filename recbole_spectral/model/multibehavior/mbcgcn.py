r"""
MBCGCN
################################################

Reference:
    Zhiyong Cheng, Sai Han, Fan Liu, Lei Zhu, Zan Gao and Yuxin Peng. "Multi-Behavior Recommendation
    with Cascading Graph Convolution Networks." WWW 2023. Public code: SS-00-SS/MBCGCN (TensorFlow; read
    to learn the details; this is an independent implementation).

Behaviors b_1, ..., b_K in funnel order (target last); Â_b the symmetric-normalised bipartite graph of b
(no self-loops); LGC_b^L(X) = mean(X, Â_b X, ..., Â_b^L X) (LightGCN, layer mean, L = ``n_layers[k]``).
Cascade with a feature transformation between stages (separate maps for users and items, no bias):

    S^1 = LGC_{b_1}(E^0)                          E^0 = [user; item] ID embeddings
    S^k = LGC_{b_k}([S^{k-1}_U W_u^{k-1}; S^{k-1}_I W_i^{k-1}])      k = 2..K
    E   = Σ_k S^k,        ŷ(u, i) = ⟨E_u, E_i⟩

Loss: BPR on the target (RecBole's (u, i, j): j outside u's training target items)

    L = mean -log σ(ŷ(u, i) - ŷ(u, j)) + reg_weight · (‖E^0_u‖² + ‖E^0_i‖² + ‖E^0_j‖² + Σ ‖W‖²) / (2 · batch)

Warm-up (the paper initialises E^0 from a LightGCN trained on the first behavior): before the first
training epoch (``on_train_epoch_start(0, …)``) E^0 is trained for ``warmup_epochs`` epochs as a LightGCN
(``warmup_layers`` layers, layer mean) on b_1 alone, BPR + the same L2 term, with its own Adam
(``warmup_learning_rate``), batches of ``warmup_batch_size`` b_1 pairs (each pair once per epoch, shuffled)
and negatives outside the user's b_1 items. The main optimiser then starts from those weights.

Departures from the public code:
- the public code pre-trains a separate LightGCN run (its own early stopping) and loads its embeddings;
  here the warm-up is a fixed number of epochs inside the run (``warmup_epochs``; 0 = random init);
- the public warm-up samples random users per batch (NGCF sampler); here each b_1 pair is used once per
  warm-up epoch;
- ``n_layers`` is a list in funnel order (public command for this data: view 2, cart 4, buy 3); a single
  value applies to every stage.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_spectral.errors import ConfigError
from recbole_spectral.hyperparameters import Float, Int, List
from recbole_spectral.layers.csr import CSRRows
from recbole_spectral.layers.graph import normalized_bipartite_graph, propagate
from recbole_spectral.layers.multibehavior.cascade_term import CASCADE_TERM_HYPERPARAMETERS
from recbole_spectral.layers.multibehavior.history_term import HISTORY_TERM_HYPERPARAMETERS
from recbole_spectral.model.base import EmbeddingRecommender


class MBCGCN(EmbeddingRecommender):
    r"""Cascading LightGCN blocks in funnel order with feature transformations; stage outputs summed."""

    dataset_kind = "multibehavior"
    hyperparameters = {
        "embedding_size": Int(low=1),
        "n_layers": List(Int(low=0), min_len=1),
        "reg_weight": Float(low=0.0),
        "init_std": Float(low=0.0, low_open=True),
        "warmup_epochs": Int(low=0),
        "warmup_layers": Int(low=0),
        "warmup_batch_size": Int(low=1),
        "warmup_learning_rate": Float(low=0.0, low_open=True),
        **HISTORY_TERM_HYPERPARAMETERS,
        **CASCADE_TERM_HYPERPARAMETERS,
    }

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # dataset facts: behaviors in funnel order (target last)
        n_stages = len(self.behaviors)

        # hyperparameters (the layer list must match this dataset's number of behaviors)
        self.embedding_size = config["embedding_size"]
        layers = list(config["n_layers"])
        if len(layers) not in (1, n_stages):
            raise ConfigError(f"config key 'n_layers': expected 1 value or one per behavior {self.behaviors}, got {layers}")
        self.n_layers = layers * n_stages if len(layers) == 1 else layers
        self.reg_weight = config["reg_weight"]
        self.warmup_epochs = config["warmup_epochs"]
        self.warmup_layers = config["warmup_layers"]
        self.warmup_batch_size = config["warmup_batch_size"]
        self.warmup_learning_rate = config["warmup_learning_rate"]

        # layers: ID embeddings (E^0) and one user map and one item map per transition
        d = self.embedding_size
        self.user_embedding = nn.Embedding(self.n_users, d)
        self.item_embedding = nn.Embedding(self.n_items, d)
        self.user_maps = nn.ParameterList(nn.Parameter(torch.empty(d, d)) for _ in range(n_stages - 1))
        self.item_maps = nn.ParameterList(nn.Parameter(torch.empty(d, d)) for _ in range(n_stages - 1))

        # graphs (plain tensors) and the first behavior's rows for the warm-up sampler
        self.graphs = [
            normalized_bipartite_graph(dataset.behavior_matrix(b), self.device).to_sparse_csr() for b in self.behaviors
        ]
        self.first_rows = CSRRows(dataset.behavior_matrix(self.behaviors[0]), self.device)
        self.warmed_up = False

        # init: N(0, init_std) for everything (public code: 0.01)
        for p in [self.user_embedding.weight, self.item_embedding.weight, *self.user_maps, *self.item_maps]:
            nn.init.normal_(p, std=config["init_std"])

    # -- propagation ---------------------------------------------------------------------------------
    def _lightgcn(self, k, embeddings, n_layers=None):
        """LightGCN (layer mean) on behavior k's graph; ``n_layers`` defaults to stage k's."""
        layers = self.n_layers[k] if n_layers is None else n_layers
        return propagate(self.graphs[k], embeddings, layers, "mean", symmetric=True)

    def compute_embeddings(self):
        current = torch.cat([self.user_embedding.weight, self.item_embedding.weight], dim=0)
        total = None
        for k in range(len(self.behaviors)):
            if k > 0:
                users, items = torch.split(current, [self.n_users, self.n_items])
                current = torch.cat([users @ self.user_maps[k - 1], items @ self.item_maps[k - 1]], dim=0)
            current = self._lightgcn(k, current)
            total = current if total is None else total + current
        return torch.split(total, [self.n_users, self.n_items])

    def _l2(self, *tensors, batch):
        return sum(t.pow(2).sum() for t in tensors) / (2.0 * batch)

    def calculate_loss(self, interaction):
        user, pos_item, neg_item = interaction[self.USER_ID], interaction[self.ITEM_ID], interaction[self.NEG_ITEM_ID]
        mf_loss = self.bpr_loss(interaction)
        reg = self._l2(self.user_embedding(user), self.item_embedding(pos_item), self.item_embedding(neg_item),
                       *self.user_maps, *self.item_maps, batch=len(user))
        return mf_loss + self.reg_weight * reg

    # -- warm-up: LightGCN on the first behavior, run by the trainer before epoch 0 -------------------
    def on_train_epoch_start(self, epoch_idx, train_data):
        if epoch_idx != 0 or self.warmed_up or self.warmup_epochs == 0:
            return
        self.warmup()

    def warmup(self):
        """Train E^0 as a LightGCN on the first behavior for ``warmup_epochs`` epochs; returns the mean
        BPR loss of each epoch."""
        from logging import getLogger

        logger = getLogger()
        params = [self.user_embedding.weight, self.item_embedding.weight]
        optimizer = torch.optim.Adam(params, lr=self.warmup_learning_rate)
        rows = self.first_rows
        pair_users = torch.repeat_interleave(torch.arange(self.n_users, device=rows.indices.device), rows.degrees())
        pair_items = rows.indices
        was_training = self.training
        self.train()
        losses = []
        for epoch in range(self.warmup_epochs):
            order = torch.randperm(len(pair_users), device=pair_users.device)
            total, steps = 0.0, 0
            for start in range(0, len(order), self.warmup_batch_size):
                batch = order[start:start + self.warmup_batch_size]
                user, pos = pair_users[batch], pair_items[batch]
                neg = rows.sample_outside(user)
                ego = torch.cat(params, dim=0)
                user_e, item_e = torch.split(self._lightgcn(0, ego, self.warmup_layers), [self.n_users, self.n_items])
                u = user_e[user]
                loss = F.softplus((u * item_e[neg]).sum(-1) - (u * item_e[pos]).sum(-1)).mean()
                loss = loss + self.reg_weight * self._l2(params[0][user], params[1][pos], params[1][neg], batch=len(user))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total, steps = total + loss.item(), steps + 1
            losses.append(total / max(steps, 1))
            logger.info(f"MBCGCN warm-up epoch {epoch + 1}/{self.warmup_epochs} on '{self.behaviors[0]}': loss {losses[-1]:.4f}")
        self.warmed_up = True
        self.clear_cache()
        self.train(was_training)
        return losses
