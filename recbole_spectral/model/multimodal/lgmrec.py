r"""LGMRec: local and global graph learning for multimodal recommendation.

Reference: Zhiqiang Guo, Jianjun Li, Guohui Li, Chaoyang Wang, Si Shi, Bin Ruan, "LGMRec: Local and Global
Graph Learning for Multimodal Recommendation", AAAI 2024. Recipe as in the authors' code
(georgeguo-cn/LGMRec, integrated in enoche/MMRec: src/models/lgmrec.py, configs/model/LGMRec.yaml).

With Â the symmetric-normalised user–item graph, R the binary interactions, F_m the item features of
modality m (fixed), N_u the items of user u:

  collaborative (CGE)   E_c = (1/(L+1)) Σ_{l=0..L} Â^l [E_U ; E_I]                      LightGCN, layer mean
  local modality (MGE)  X_m = [ (1/|N_u|) Σ_{i∈N_u} F_m[i] W_m ; F_m W_m ]               users = mean of their items'
                        E_m = Â^{L_m} X_m   (last layer)                                 projections (no free user part)
  local                 E_l = E_c + Σ_m normalize(E_m)
  global (GHE)          H_i^m = σ_G(F_m V_m),  H_u^m = σ_G(R F_m V_m)                     Gumbel-softmax (τ = 0.2) over
                                                                                          the h hyperedges, dropout
                        Λ_m = H_i^mᵀ E_c[items];  [G_u^m ; G_i^m] = [H_u^m Λ_m ; H_i^m Λ_m]  (n_hyper_layer rounds,
                                                                                          item side fed back)
  final                 E = E_l + α normalize(Σ_m G^m);   ŷ_ui = ⟨e_u, e_i⟩
  loss                  BPR + λ_cl Σ_{a<b} [InfoNCE_τ(G_u^a[u], G_u^b[u]; all G_u^b) + InfoNCE_τ(G_i^a[i], G_i^b[i]; all G_i^b)]
                        + λ_reg (‖e_u‖ + ‖e_i‖ + ‖e_j‖) / |batch|

(normalize = row L2 normalisation; InfoNCE summed over the batch as released; ‖·‖ the Frobenius norm of the
batch's rows.) Initialisation as released: E_U, E_I, W_m, V_m Xavier-uniform.

Departures, deliberate:
  * any modality set: the released code needs exactly image + text (with one modality it silently falls back to
    the collaborative part alone); here every modality adds its local and global branch, and the
    contrastive term runs over every pair of modalities (a before b in the dataset's order; for two modalities
    it is exactly the released pair). With one modality there is no contrastive term;
  * evaluation is deterministic: the hyperedge memberships use softmax(logits / τ) without Gumbel noise and
    without dropout (the released code also samples the noise when scoring, so its test scores are random).
"""
import itertools

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_spectral.hyperparameters import Float, Int
from recbole_spectral.layers.contrastive import info_nce
from recbole_spectral.layers.graph import FixedSparse, normalized_bipartite_graph, propagate, to_torch_sparse
from recbole_spectral.model.base import EmbeddingRecommender


class LGMRec(EmbeddingRecommender):
    dataset_kind = "multimodal"
    hyperparameters = {
        "embedding_size": Int(low=1),
        "n_ui_layers": Int(low=0),
        "n_mm_layers": Int(low=0),
        "n_hyper_layer": Int(low=1),
        "hyper_num": Int(low=1),
        "keep_rate": Float(low=0.0, high=1.0, low_open=True),
        "alpha": Float(low=0.0),
        "tau": Float(low=0.0, low_open=True),
        "cl_weight": Float(low=0.0),
        "reg_weight": Float(low=0.0),
    }

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        d = self.embedding_size = config["embedding_size"]
        self.n_ui_layers, self.n_mm_layers = config["n_ui_layers"], config["n_mm_layers"]
        self.n_hyper_layer, self.hyper_num = config["n_hyper_layer"], config["hyper_num"]
        self.keep_rate, self.alpha, self.tau = config["keep_rate"], config["alpha"], config["tau"]
        self.cl_weight, self.reg_weight = config["cl_weight"], config["reg_weight"]

        interactions = sp.csr_matrix(dataset.inter_matrix(form="csr").astype(np.float32))
        interactions.sum_duplicates()
        interactions.data[:] = 1.0
        degree = np.asarray(interactions.sum(1)).ravel()
        inv = np.where(degree > 0, 1.0 / np.maximum(degree, 1), 0.0)
        # plain tensor attributes (never in the checkpoint)
        self.norm_adj = normalized_bipartite_graph(interactions, self.device).to_sparse_csr()  # Â (CSR: faster on CPU)
        self.adj = FixedSparse(to_torch_sparse(interactions, self.device))                        # R
        self.mean_adj = FixedSparse(to_torch_sparse(sp.diags(inv) @ interactions, self.device))  # D_u^{-1} R
        self.features = {m: torch.as_tensor(dataset.item_features(m), dtype=torch.float32).to(self.device)
                         for m in self.modalities}

        self.user_embedding = nn.Embedding(self.n_users, d)
        self.item_embedding = nn.Embedding(self.n_items, d)
        self.projection = nn.ParameterDict(
            {m: nn.Parameter(torch.empty(self.features[m].shape[1], d)) for m in self.modalities})  # W_m
        self.hyper = nn.ParameterDict(
            {m: nn.Parameter(torch.empty(self.features[m].shape[1], self.hyper_num)) for m in self.modalities})  # V_m
        self.drop = nn.Dropout(p=1.0 - self.keep_rate)
        for weight in (self.user_embedding.weight, self.item_embedding.weight, *self.projection.values(),
                       *self.hyper.values()):
            nn.init.xavier_uniform_(weight)

    # ------------------------------------------------------------------------------------------
    def memberships(self, logits):
        """Gumbel-softmax over hyperedges while training; its noiseless softmax(logits/τ) otherwise."""
        if self.training:
            return F.gumbel_softmax(logits, tau=self.tau, dim=1, hard=False)
        return torch.softmax(logits / self.tau, dim=1)

    def modality_local(self, m):
        items = self.features[m] @ self.projection[m]
        users = self.mean_adj @ items
        return propagate(self.norm_adj, torch.cat([users, items], 0), self.n_mm_layers, aggregation="last",
                         symmetric=True)

    def modality_global(self, m, item_collab):
        item_logits = self.features[m] @ self.hyper[m]
        user_logits = self.adj @ item_logits
        h_i = self.drop(self.memberships(item_logits))
        h_u = self.drop(self.memberships(user_logits))
        items = item_collab
        for _ in range(self.n_hyper_layer):
            latent = h_i.T @ items
            items = h_i @ latent
            users = h_u @ latent
        return users, items

    def forward(self):
        """(final embeddings of all nodes, [(G_u^m, G_i^m) per modality])."""
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight], 0)
        collab = propagate(self.norm_adj, ego, self.n_ui_layers, aggregation="mean", symmetric=True)
        local = collab + sum(F.normalize(self.modality_local(m), dim=1) for m in self.modalities)
        hyper = [self.modality_global(m, collab[self.n_users:]) for m in self.modalities]
        global_ = sum(torch.cat([u, i], 0) for u, i in hyper)
        return local + self.alpha * F.normalize(global_, dim=1), hyper

    def compute_embeddings(self):
        out, _ = self.forward()
        return out[: self.n_users], out[self.n_users:]

    def calculate_loss(self, interaction):
        user = interaction[self.USER_ID]
        pos = interaction[self.ITEM_ID]
        neg = interaction[self.NEG_ITEM_ID]
        out, hyper = self.forward()
        u, p, q = out[user], out[self.n_users + pos], out[self.n_users + neg]
        loss = -F.logsigmoid((u * p).sum(1) - (u * q).sum(1)).mean()
        if self.cl_weight > 0:
            cl = 0.0
            for a, b in itertools.combinations(range(len(self.modalities)), 2):
                (ua, ia), (ub, ib) = hyper[a], hyper[b]
                cl = cl + info_nce(ua[user], ub[user], ub, tau=self.tau) + info_nce(ia[pos], ib[pos], ib, tau=self.tau)
            loss = loss + self.cl_weight * cl
        return loss + self.reg_weight * (u.norm() + p.norm() + q.norm()) / user.shape[0]
