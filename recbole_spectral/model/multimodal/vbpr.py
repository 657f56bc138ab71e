r"""VBPR: Visual Bayesian Personalized Ranking from implicit feedback.

Reference: Ruining He and Julian McAuley, "VBPR: Visual Bayesian Personalized Ranking from Implicit
Feedback", AAAI 2016. Recipe as in MMRec (enoche/MMRec, src/models/vbpr.py, configs/model/VBPR.yaml), the
implementation the multimodal field benchmarks against.

    f_i = [f_i^(m1) ; f_i^(m2) ; ...]              the item's modality features side by side (dataset order)
    ŷ_ui = ⟨[p_u ; θ_u], [q_i ; W f_i + b]⟩         p_u, q_i, θ_u ∈ R^d;  W ∈ R^{d × Σ_m dim_m}
    L = −mean log σ(ŷ_ui − ŷ_uj) + λ (‖[p_u;θ_u]‖ + ‖[q_i;W f_i+b]‖ + ‖[q_j;W f_j+b]‖) / |batch|

(‖·‖ is the Frobenius norm of the batch's rows, MMRec's ``EmbLoss``.) Initialisation as in MMRec: p, θ, q
Xavier-uniform, W Xavier-normal, b = 0.

Departures, deliberate:
  * like MMRec, no item bias β_i and no visual bias β'ᵀ f_i of the paper (the scores are a pure inner product,
    so the full-sort cache serves them);
  * features are used as the dataset gives them (MMRec does the same); with more than two modalities they are
    concatenated in the dataset's modality order (MMRec hard-codes [text ; image]);
  * the training loss projects only the batch's items (same value as projecting every item, as MMRec does).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_spectral.hyperparameters import Float, Int
from recbole_spectral.model.base import EmbeddingRecommender


class VBPR(EmbeddingRecommender):
    dataset_kind = "multimodal"
    hyperparameters = {
        "embedding_size": Int(low=1),
        "reg_weight": Float(low=0.0),
    }

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        d = self.embedding_size = config["embedding_size"]
        self.reg_weight = config["reg_weight"]
        # f_i side by side: a plain tensor (data, not a parameter; never in the checkpoint)
        self.item_raw_features = torch.cat(
            [torch.as_tensor(dataset.item_features(m), dtype=torch.float32) for m in self.modalities], 1
        ).to(self.device)
        self.user_embedding = nn.Parameter(torch.empty(self.n_users, 2 * d))  # [p_u ; θ_u]
        self.item_embedding = nn.Parameter(torch.empty(self.n_items, d))      # q_i
        self.item_linear = nn.Linear(self.item_raw_features.shape[1], d)      # W, b
        nn.init.xavier_uniform_(self.user_embedding)
        nn.init.xavier_uniform_(self.item_embedding)
        nn.init.xavier_normal_(self.item_linear.weight)
        nn.init.zeros_(self.item_linear.bias)

    def item_vectors(self, items=None):
        """[q_i ; W f_i + b] for ``items`` (all items if None)."""
        if items is None:
            return torch.cat([self.item_embedding, self.item_linear(self.item_raw_features)], 1)
        return torch.cat([self.item_embedding[items], self.item_linear(self.item_raw_features[items])], 1)

    def compute_embeddings(self):
        return self.user_embedding, self.item_vectors()

    def calculate_loss(self, interaction):
        user = interaction[self.USER_ID]
        pos = interaction[self.ITEM_ID]
        neg = interaction[self.NEG_ITEM_ID]
        u = self.user_embedding[user]
        p, q = self.item_vectors(pos), self.item_vectors(neg)
        loss = -F.logsigmoid((u * p).sum(1) - (u * q).sum(1)).mean()
        reg = (u.norm() + p.norm() + q.norm()) / user.shape[0]
        return loss + self.reg_weight * reg
