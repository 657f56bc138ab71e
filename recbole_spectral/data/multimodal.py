"""Multimodal dataset: RecBole's Dataset plus per-modality item features aligned to internal item ids.

Atomic layout of a multimodal dataset ``<name>`` in ``<data_dir>/<name>/``::

    <name>.inter                         interactions (or, with ``benchmark_filename: [train, valid, test]``,
    <name>.train.inter ...               the pre-split files RecBole reads in that order)
    <name>.<modality>.npy                one float matrix per modality: row r = features of one item
    <name>.<modality>.items.txt          optional sidecar: the item token of row r on line r
    <name>.feature_items.txt             shared sidecar, used by every modality without its own
    <name>.yaml                          ``modalities: [image, text]`` and the dataset's other properties

Features are read with ``np.load(..., allow_pickle=False)`` after RecBole's id remapping, cast to
float32 and aligned so that row j of ``item_features(m)`` is the item with internal id j (row 0 =
RecBole's padding item, all zeros). They never enter ``inter_feat``/``item_feat``, so they are never
joined into training batches. Sidecar tokens that RecBole never saw in an interaction file get no
internal id; their rows are unused (count logged). Items without a feature row are filled with the
mean of the aligned rows or zeros (``feature_fill: mean|zeros``; count logged).

The dataset owns every derived item structure, so models never load or cache them themselves:
``reduced_features(modality, rank)`` (truncated SVD of wide features), ``knn_graph(modality, k, rank)``
(see :mod:`recbole_spectral.layers.knn`) and ``item_graph(k, weights, rank)`` (the modality graphs mixed
by ``modality_weights``, keyed by modality name) and ``max_item_graph(k, modality_k, rank)`` (their
element-wise maximum). kNN graphs are exact or approximate (``knn_method``, ``knn_exact_max_items``; see
:mod:`recbole_spectral.layers.knn`) and cached at
``<knn_cache_dir or data_path/knn_cache>/<name>.<modality>.<feature_fill>.k<k>[.svd<rank>].npz``; when
that folder is not writable the cache goes to ``<checkpoint_dir>/knn_cache/``.
"""
import os
import re
import time

import numpy as np
import torch
from recbole.data.dataset import Dataset

from recbole_spectral.data.features import feature_file, first_non_finite_row, iter_row_chunks, load_feature_matrix, read_sidecar, sidecar_file
from recbole_spectral.errors import ConfigError, DataError
from recbole_spectral.layers.knn import KNN_METHODS, knn_graph

FEATURE_FILLS = ("mean", "zeros")
_MODALITY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")


def modality_options(config):
    """(modalities, feature_fill) of ``config``, checked (one-line ConfigError naming the key); read from the
    configuration alone, so a run checks them before it loads any data."""
    modalities = config["modalities"]
    if isinstance(modalities, str):
        modalities = [modalities]
    if not isinstance(modalities, (list, tuple)) or not modalities:
        raise ConfigError(f"config key 'modalities': expected a non-empty list of names, got {modalities!r}")
    for modality in modalities:
        if not isinstance(modality, str) or not _MODALITY_NAME.match(modality):
            raise ConfigError(
                f"config key 'modalities': '{modality}' is not a valid modality name "
                "(letters, digits, '_' or '-')"
            )
    if len(set(modalities)) != len(modalities):
        raise ConfigError(f"config key 'modalities': repeated name in {list(modalities)}")
    fill = config["feature_fill"]
    if fill not in FEATURE_FILLS:
        raise ConfigError(f"config key 'feature_fill': expected one of {FEATURE_FILLS}, got {fill!r}")
    return list(modalities), fill


class ItemStructures:
    """Derived item structures of a multimodal dataset, built once and shared by every model that asks.

    Needs ``modalities``, ``item_features(modality)``, ``logger`` and ``knn_cache_file(modality, k, rank)``
    (None: no disk cache), and ``_reduced`` / ``_knn_graphs`` dicts; ``knn_method`` / ``knn_exact_max_items``
    are exact graphs unless the dataset sets them (MultiModalDataset: from the config).
    """

    knn_method, knn_exact_max_items = "exact", 0

    def reduced_features(self, modality, rank):
        """(rows, kept energy share): the rows of ``modality`` on their top ``rank`` right singular vectors
        (truncated SVD, uncentred, so inner products and cosines are kept as well as that rank allows), as a
        float32 torch tensor; the raw rows and 1.0 when they are not wider than ``rank`` or ``rank`` is 0.
        Computed once per (modality, rank) and shared by every model that asks."""
        key = (modality, int(rank or 0))
        if key not in self._reduced:
            x = torch.as_tensor(np.asarray(self.item_features(modality), dtype=np.float32))
            if rank and x.shape[1] > rank:
                u, s, _ = torch.svd_lowrank(x, q=int(rank) + 8, niter=1)
                kept = float((s[:rank] ** 2).sum() / (x ** 2).sum().clamp_min(1e-30))
                self.logger.info(f"modality {modality}: {x.shape[1]}-d features reduced to {rank} singular "
                                 f"coordinates ({kept:.1%} of the energy)")
                x = u[:, :rank] * s[:rank]
            else:
                kept = 1.0
            self._reduced[key] = (x, kept)
        return self._reduced[key]

    def knn_graph(self, modality, k, rank=0):
        """Cosine top-k item-item graph of ``modality`` (item_num x item_num torch sparse, normalised).

        With ``rank`` > 0 and features wider than it, the graph is built on the truncated-SVD coordinates
        of :meth:`reduced_features` (about dim/rank times cheaper on wide image features). Built once per
        (modality, k, rank) and cached on disk; see :mod:`recbole_spectral.layers.knn`.
        """
        key = (modality, int(k), int(rank or 0))
        if key not in self._knn_graphs:
            features, _ = self.reduced_features(modality, rank)
            cache_file = self.knn_cache_file(modality, k, rank)
            start = time.time()
            self._knn_graphs[key] = knn_graph(features, int(k), cache_file=cache_file, method=self.knn_method,
                                              exact_max_items=self.knn_exact_max_items)
            self.logger.info(f"modality {modality}: kNN graph (k={k}) ready in {time.time() - start:.2f} s ({cache_file})")
        return self._knn_graphs[key]

    def modality_weights(self, weights=None):
        """Normalised mixing weights, one per modality in ``modalities`` order. ``weights`` maps modality
        names to weights; unless it names every modality of the dataset, all modalities weigh the same."""
        weights = weights or {}
        if not isinstance(weights, dict):
            raise ConfigError(f"config key 'modality_weights': expected a mapping modality -> weight, got {weights!r}")
        if all(m in weights for m in self.modalities):
            w = np.array([float(weights[m]) for m in self.modalities])
        else:
            w = np.ones(len(self.modalities))
            self.logger.info(f"modality_weights {weights} does not name every modality of {self.modalities}; equal weights")
        if np.any(w < 0) or w.sum() <= 0:
            raise ConfigError(f"config key 'modality_weights': expected non-negative weights with a positive sum, got {weights!r}")
        return w / w.sum()

    def item_graph(self, k, weights=None, rank=0):
        """The mixed item-item graph S = Σ_m w_m kNN_k(modality m) (torch sparse, coalesced)."""
        graph = None
        for modality, w in zip(self.modalities, self.modality_weights(weights)):
            g = self.knn_graph(modality, k, rank).coalesce() * float(w)
            graph = g if graph is None else graph + g
        return graph.coalesce()

    def max_item_graph(self, k, modality_k=None, rank=0):
        """The element-wise maximum of the modality graphs, S[i, j] = max_m kNN_{k_m}(modality m)[i, j]
        (SMORE's max-pooled fusion graph), torch sparse, coalesced. ``k_m`` = ``modality_k[m]`` where
        given, else ``k``. Cheap to form from the cached kNN graphs, so it is not cached itself."""
        modality_k = modality_k or {}
        graphs = [self.knn_graph(m, int(modality_k.get(m, k)), rank).coalesce() for m in self.modalities]
        n = graphs[0].shape[0]
        keys = torch.cat([g.indices()[0] * n + g.indices()[1] for g in graphs])
        values = torch.cat([g.values() for g in graphs])
        unique, inverse = torch.unique(keys, return_inverse=True)
        pooled = torch.full((len(unique),), float("-inf"), dtype=values.dtype)
        pooled = pooled.scatter_reduce(0, inverse, values, reduce="amax")
        indices = torch.stack([unique // n, unique % n])
        return torch.sparse_coo_tensor(indices, pooled, (n, n)).coalesce().to(graphs[0].device)


class MultiModalDataset(ItemStructures, Dataset):
    """RecBole Dataset whose items carry one feature matrix per modality (``modalities`` in the YAML).

    Attributes shared by every copy RecBole makes in ``build()``: ``modalities`` and the aligned features.
    """

    def _data_processing(self):
        super()._data_processing()
        self._load_item_features()

    # -- loading -------------------------------------------------------------------------------
    def _load_item_features(self):
        self.modalities, self.feature_fill = modality_options(self.config)
        self.knn_method, self.knn_exact_max_items = self.config["knn_method"], self.config["knn_exact_max_items"]
        if self.knn_method not in KNN_METHODS:
            raise ConfigError(f"config key 'knn_method': expected one of {KNN_METHODS}, got {self.knn_method!r}")
        if isinstance(self.knn_exact_max_items, bool) or not isinstance(self.knn_exact_max_items, int) or self.knn_exact_max_items < 0:
            raise ConfigError(f"config key 'knn_exact_max_items': expected an integer >= 0, got {self.knn_exact_max_items!r}")
        self._item_features = {}
        self._knn_graphs = {}
        self._reduced = {}
        for modality in self.modalities:
            start = time.time()
            self._item_features[modality] = self._align_modality(modality)
            self.logger.info(f"modality {modality}: features loaded in {time.time() - start:.2f} s")

    def _align_modality(self, modality):
        path = feature_file(self.dataset_path, self.dataset_name, modality)
        if not os.path.isfile(path):
            raise DataError(
                f"dataset '{self.dataset_name}': modality '{modality}' is listed in 'modalities' "
                f"but its feature file {path} does not exist"
            )
        sidecar = sidecar_file(self.dataset_path, self.dataset_name, modality)
        tokens = read_sidecar(sidecar)
        source = load_feature_matrix(path)
        if source.shape[0] != len(tokens):
            raise DataError(
                f"{path} has {source.shape[0]} rows but its sidecar {sidecar} names {len(tokens)} items: "
                "expected one row per item token"
            )
        token_id = self.field2token_id[self.iid_field]
        ids = np.fromiter((token_id.get(t, -1) for t in tokens), dtype=np.int64, count=len(tokens))
        known = ids > 0
        aligned = np.zeros((self.item_num, source.shape[1]), dtype=np.float32)
        total = np.zeros(source.shape[1], dtype=np.float64)  # for the mean fill, without a copy of the rows
        for start, rows in iter_row_chunks(source, path):
            bad = first_non_finite_row(rows)
            if bad is not None:
                row = start + bad
                raise DataError(f"{path} row {row} (item '{tokens[row]}') holds NaN or inf: expected finite values")
            cast = rows.astype(np.float32, copy=False)
            bad = first_non_finite_row(cast)
            if bad is not None:  # float64 beyond the float32 range
                raise DataError(f"{path} row {start + bad} holds values outside the float32 range: expected finite float32 values")
            chunk_ids = ids[start:start + rows.shape[0]]
            keep = chunk_ids > 0
            aligned[chunk_ids[keep]] = cast[keep]
            total += cast[keep].sum(axis=0, dtype=np.float64)
        del source  # the memory-map: its pages were never read

        has_row = np.zeros(self.item_num, dtype=bool)
        has_row[ids[known]] = True
        missing = np.flatnonzero(~has_row[1:]) + 1  # row 0 is RecBole's padding item
        unused = int((~known).sum())
        if missing.size:
            if self.feature_fill == "mean" and known.any():
                aligned[missing] = (total / known.sum()).astype(np.float32)
            # "zeros": the rows are already zero
        self.logger.info(
            f"modality {modality}: {len(tokens)} rows x {aligned.shape[1]} from {os.path.basename(path)}; "
            f"{unused} rows unused (items never seen in an interaction file); "
            f"{missing.size} of {self.item_num - 1} items without a feature row filled with {self.feature_fill}"
        )
        if missing.size:
            self.logger.warning(
                f"modality {modality}: {missing.size} items have no feature row; filled with {self.feature_fill}"
            )
        return aligned

    # -- public API ----------------------------------------------------------------------------
    def item_features(self, modality):
        """float32 array (item_num x dim) of ``modality``; row j = internal item id j, row 0 = padding.

        The array is shared by every copy of the dataset: treat it as read-only.
        """
        if modality not in self._item_features:
            raise DataError(
                f"dataset '{self.dataset_name}' has no modality '{modality}'; modalities: {', '.join(self.modalities)}"
            )
        return self._item_features[modality]

    def knn_cache_file(self, modality, k, rank=0):
        folder = self.config["knn_cache_dir"] or os.path.join(self.dataset_path, "knn_cache")
        try:
            os.makedirs(folder, exist_ok=True)
            writable = os.access(folder, os.W_OK)
        except OSError:
            writable = False
        if not writable:
            folder = os.path.join(self.config["checkpoint_dir"], "knn_cache")
            os.makedirs(folder, exist_ok=True)
        reduced = f".svd{int(rank)}" if rank and self.item_features(modality).shape[1] > rank else ""
        return os.path.join(folder, f"{self.dataset_name}.{modality}.{self.feature_fill}.k{int(k)}{reduced}.npz")

    def __str__(self):
        text = super().__str__()
        dims = ", ".join(f"{m} {self._item_features[m].shape[1]}-d" for m in self.modalities)
        return f"{text}\nModalities: {dims}"
