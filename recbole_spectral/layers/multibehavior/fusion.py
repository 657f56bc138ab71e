"""Global-context attention fusion of several views of the same nodes.

The query is a context representation g of each node (n x d); each view b has its own scorer

    h_b = tanh(g W1_b + b1_b),   s_b = h_b W2_b

and the views V_b (n x d) are combined with weights from a softmax, in one of two ways:

- ``feature`` (the published SpectraMB code): s_b is n x d, a softmax over the feature dimension gives
  per-feature weights a_b, and the output is mean_b(d · a_b ⊙ V_b). The factor d makes uniform
  weights (a_b = 1/d) leave a view unchanged, so the fused output keeps the scale of the views.
- ``view`` (reliability-aware weighting, the paper's description): s_b is n x 1, a softmax across the
  views gives one weight α_b per node and view, and the output is sum_b α_b V_b.
"""
import torch
import torch.nn as nn


ATTENTION_MODES = ("feature", "view")


class GlobalContextAttention(nn.Module):
    def __init__(self, dim, n_views, hidden_size, mode):
        super().__init__()
        if mode not in ATTENTION_MODES:
            raise ValueError(f"attention mode must be one of {ATTENTION_MODES}, got {mode!r}")
        self.dim = dim
        self.mode = mode
        out = dim if mode == "feature" else 1
        self.hidden = nn.ModuleList(nn.Linear(dim, hidden_size) for _ in range(n_views))   # W1_b, b1_b
        self.score = nn.ModuleList(nn.Linear(hidden_size, out, bias=False) for _ in range(n_views))  # W2_b

    def weights(self, query):
        """Attention weights: a list (per view) of n x d (``feature``) or one n x n_views tensor (``view``)."""
        scores = [score(torch.tanh(hidden(query))) for hidden, score in zip(self.hidden, self.score)]
        if self.mode == "feature":
            return [torch.softmax(s, dim=-1) for s in scores]
        return torch.softmax(torch.cat(scores, dim=-1), dim=-1)

    def forward(self, query, views):
        weights = self.weights(query)
        if self.mode == "feature":
            return torch.stack([self.dim * w * v for w, v in zip(weights, views)], dim=0).mean(0)
        return (weights.unsqueeze(-1) * torch.stack(views, dim=1)).sum(1)
