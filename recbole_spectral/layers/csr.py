"""Row access to a sparse users x items matrix held as plain tensors: dense rows for a batch of users,
one random column per row, and membership tests — all vectorised (no Python loop over rows).

Used by the multi-behavior models to sample auxiliary positives and negatives inside ``calculate_loss``
and by the training-free baselines to score a batch of users.
"""
import numpy as np
import scipy.sparse as sp
import torch


class CSRRows:
    """A scipy CSR matrix as ``indptr``/``indices``/``values`` tensors (sorted column indices per row)."""

    def __init__(self, matrix, device=None):
        m = sp.csr_matrix(matrix, dtype=np.float32)
        m.sum_duplicates()
        m.sort_indices()
        self.shape = m.shape
        self.indptr = torch.from_numpy(m.indptr.astype(np.int64)).to(device)
        self.indices = torch.from_numpy(m.indices.astype(np.int64)).to(device)
        self.values = torch.from_numpy(m.data.astype(np.float32)).to(device)
        # row-major keys row * n_cols + col: sorted, so membership is a binary search
        rows = torch.repeat_interleave(torch.arange(self.shape[0], device=device), self.degrees())
        self.keys = rows * self.shape[1] + self.indices

    def degrees(self, rows=None):
        """Stored entries per row (of ``rows``, or of every row)."""
        d = self.indptr[1:] - self.indptr[:-1]
        return d if rows is None else d[rows]

    def _gather(self, rows):
        """(position in ``rows``, flat index into indices/values) of every entry of the given rows."""
        starts, counts = self.indptr[rows], self.degrees(rows)
        owner = torch.repeat_interleave(torch.arange(len(rows), device=rows.device), counts)
        offsets = torch.arange(int(counts.sum()), device=rows.device) - torch.repeat_interleave(
            torch.cumsum(counts, 0) - counts, counts)
        return owner, torch.repeat_interleave(starts, counts) + offsets

    def entries(self, rows):
        """(position in ``rows``, column, value) of every stored entry of the given rows, row by row."""
        owner, flat = self._gather(rows)
        return owner, self.indices[flat], self.values[flat]

    def dense(self, rows, dtype=torch.float32):
        """The given rows as a dense len(rows) x n_cols tensor."""
        out = torch.zeros(len(rows), self.shape[1], dtype=dtype, device=rows.device)
        owner, cols, values = self.entries(rows)
        out[owner, cols] = values.to(dtype)
        return out

    def sample(self, rows):
        """One uniformly drawn stored column per row, and a mask of rows that have any (others get 0)."""
        counts = self.degrees(rows)
        has = counts > 0
        if len(self.indices) == 0:
            return torch.zeros_like(rows), has
        pick = (torch.rand(len(rows), device=rows.device) * counts).long()
        pick = torch.minimum(pick, (counts - 1).clamp(min=0))
        flat = (self.indptr[rows] + pick).clamp(max=len(self.indices) - 1)
        return torch.where(has, self.indices[flat], torch.zeros_like(rows)), has

    def contains(self, rows, cols):
        """Whether (rows[k], cols[k]) is a stored entry, for every k."""
        if len(self.keys) == 0:
            return torch.zeros(len(rows), dtype=torch.bool, device=rows.device)
        keys = rows * self.shape[1] + cols
        pos = torch.searchsorted(self.keys, keys).clamp(max=len(self.keys) - 1)
        return self.keys[pos] == keys

    def sample_outside(self, rows, low=1, max_rounds=20):
        """A uniform column in [low, n_cols) per row that is not stored in that row: rejection sampling,
        redrawing only the rejected entries; rows still rejected after ``max_rounds`` (nearly full rows) draw
        exactly from their dense complement. A row with no free column keeps its last draw."""
        cols = torch.randint(low, self.shape[1], (len(rows),), device=rows.device)
        for _ in range(max_rounds):
            bad = self.contains(rows, cols)
            if not bool(bad.any()):
                return cols
            cols[bad] = torch.randint(low, self.shape[1], (int(bad.sum()),), device=rows.device)
        bad = self.contains(rows, cols)
        if bool(bad.any()):
            free = 1.0 - self.dense(rows[bad]).clamp(max=1.0)
            free[:, :low] = 0.0
            some = free.sum(1) > 0
            if bool(some.any()):
                idx = torch.nonzero(bad).squeeze(1)[some]
                cols[idx] = torch.multinomial(free[some], 1).squeeze(1)
        return cols
