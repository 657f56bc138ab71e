"""Observed (user, item) pairs of one behavior as torch index structures, for score terms that look up
whether a user interacted with an item: membership of a batch of pairs (or the stored value of each pair),
and the observed items of a batch of users as flat (row, item) indices — without a dense users x items matrix.
"""
import numpy as np
import scipy.sparse as sp
import torch


class ObservedPairs:
    """The non-zero pattern of a users x items matrix: CSR row pointers, column indices, their values and
    sorted keys user * n_items + item (plain tensors; data, not weights)."""

    def __init__(self, matrix, device=None):
        m = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
        m.sum_duplicates()
        m.eliminate_zeros()
        m.sort_indices()
        self.n_users, self.n_items = m.shape
        self.indptr = torch.from_numpy(m.indptr.astype(np.int64)).to(device)
        self.indices = torch.from_numpy(m.indices.astype(np.int64)).to(device)
        self.data = torch.from_numpy(m.data.astype(np.float32)).to(device)
        rows = np.repeat(np.arange(self.n_users, dtype=np.int64), np.diff(m.indptr))
        self.keys = torch.from_numpy(rows * self.n_items + m.indices.astype(np.int64)).to(device)  # sorted

    @property
    def nnz(self):
        return int(self.indices.numel())

    def contains(self, users, items):
        """Bool tensor: whether each (users[k], items[k]) is observed."""
        if self.keys.numel() == 0:
            return torch.zeros(users.shape, dtype=torch.bool, device=users.device)
        query = users.long() * self.n_items + items.long()
        pos = torch.searchsorted(self.keys, query).clamp_(max=self.keys.numel() - 1)
        return self.keys[pos] == query

    def values(self, users, items):
        """Float tensor: the stored value of each (users[k], items[k]), 0 where the pair is not observed."""
        if self.keys.numel() == 0:
            return torch.zeros(users.shape, dtype=self.data.dtype, device=users.device)
        query = users.long() * self.n_items + items.long()
        pos = torch.searchsorted(self.keys, query).clamp_(max=self.keys.numel() - 1)
        return torch.where(self.keys[pos] == query, self.data[pos], torch.zeros((), dtype=self.data.dtype, device=users.device))

    def entries(self, users):
        """(row, item, value): :meth:`rows` with each pair's stored value."""
        row, offsets = self._offsets(users)
        return row, self.indices[offsets], self.data[offsets]

    def rows(self, users):
        """(row, item): for every observed item of ``users[row]``, its position in ``users`` and the item id."""
        row, offsets = self._offsets(users)
        return row, self.indices[offsets]

    def _offsets(self, users):
        """(row, offset into indices) of every observed pair of ``users``."""
        users = users.long()
        starts, ends = self.indptr[users], self.indptr[users + 1]
        counts = ends - starts
        row = torch.repeat_interleave(torch.arange(len(users), device=users.device), counts)
        first = torch.repeat_interleave(starts - (torch.cumsum(counts, 0) - counts), counts)
        return row, torch.arange(int(counts.sum()), device=users.device) + first
