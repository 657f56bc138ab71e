"""Helpers shared by the tests: paths, fast run settings, the CLI in a subprocess, model configs from the shipped
YAML, and tiny in-memory datasets that implement the multi-behavior and multimodal Dataset contracts (what models read
from a dataset), for model tests that need no files."""
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
import yaml
from recbole.data.interaction import Interaction

from recbole_spectral import paths, registry
from recbole_spectral.data.multimodal import ItemStructures

ROOT = Path(__file__).resolve().parents[1]

# small, fast settings for end-to-end runs on CPU
FAST = {"epochs": 1, "use_gpu": False, "show_progress": False, "state": "WARNING"}

# the shipped dataset each kind of model runs on by default (built on demand, nothing downloaded)
DEFAULT_DATASET = {"any": "ml-100k", "multibehavior": "ml-100k-mb", "multimodal": "ml-100k-mm"}


def default_dataset(model_name):
    return DEFAULT_DATASET[getattr(registry.get_model(model_name), "dataset_kind", "any")]


def run_cli(*args, cwd):
    """``run_recbole_spectral.py *args`` in a subprocess (cwd: where log/ and saved/ go)."""
    return subprocess.run([sys.executable, str(ROOT / "run_recbole_spectral.py"), *args],
                          cwd=cwd, capture_output=True, text=True, timeout=600)


def model_config(model, **overrides):
    """A plain dict config for constructing ``model`` directly: its shipped YAML, RecBole's field names,
    CPU, plus ``overrides``."""
    with open(paths.model_properties_file(model)) as f:
        config = yaml.safe_load(f)
    config.update({"USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "NEG_PREFIX": "neg_",
                   "device": torch.device("cpu"), "dataset": "tiny"})
    config.update(overrides)
    return config


def pairwise_batch(n_users, n_items, n=16, seed=0):
    """A BPR batch of random (user, positive, negative) ids (0 is RecBole's padding id: never drawn)."""
    g = torch.Generator().manual_seed(seed)
    return Interaction({
        "user_id": torch.randint(1, n_users, (n,), generator=g),
        "item_id": torch.randint(1, n_items, (n,), generator=g),
        "neg_item_id": torch.randint(1, n_items, (n,), generator=g),
    })


def assert_term_adds_to_every_score(on, off, term, n_users, n_items):
    """A model with a score term (``on``) scores exactly ``off``'s scores + ``term`` (n_users x n_items) in full
    sort, and ``predict`` on every pair equals its full sort; returns (on's, off's) full-sort scores."""
    users = torch.arange(n_users)
    with torch.no_grad():
        full_on = on.full_sort_predict({"user_id": users}).view(n_users, n_items)
        full_off = off.full_sort_predict({"user_id": users}).view(n_users, n_items)
        torch.testing.assert_close(full_on - full_off, term)
        pair_users, pair_items = users.repeat_interleave(n_items), torch.arange(n_items).repeat(n_users)
        pointwise = on.predict({"user_id": pair_users, "item_id": pair_items}).view(n_users, n_items)
    torch.testing.assert_close(pointwise, full_on)
    return full_on, full_off


class TinyMultiBehaviorDataset:
    """view / cart / buy on 6 users x 8 items (+ padding), buy = training target."""

    n_users, n_items = 7, 9  # id 0 is RecBole's padding row

    behaviors = ["view", "cart", "buy"]
    target_behavior = "buy"
    auxiliary_behaviors = ["view", "cart"]

    def __init__(self):
        rng = np.random.default_rng(0)
        self.matrices = {}
        for behavior, density in (("view", 0.6), ("cart", 0.3), ("buy", 0.2)):
            dense = (rng.random((self.n_users, self.n_items)) < density).astype(np.float32)
            dense[0, :] = dense[:, 0] = 0
            self.matrices[behavior] = sp.csr_matrix(dense)

    def num(self, field):
        return self.n_users if field == "user_id" else self.n_items

    def behavior_matrix(self, behavior):
        return self.matrices[behavior]

    def inter_matrix(self, form="csr"):
        """RecBole's interaction matrix of a multi-behavior dataset: the training target."""
        return self.matrices[self.target_behavior].asformat(form)

    def all_behaviors_matrix(self):
        union = sum(self.matrices.values()).tocsr()
        union.data[:] = 1
        return union


class TinyMultiModalDataset(ItemStructures):
    """The contract SSR relies on: num(), inter_matrix(), modalities, item_features() and the
    MultiModalDataset's item structures (SVD coordinates, kNN graphs, mixed item graph; no disk cache)."""

    logger = logging.getLogger(__name__)

    n_users, n_items = 150, 100  # RecBole counts include the padding id 0

    def __init__(self, modalities=("image", "text")):
        self._reduced, self._knn_graphs = {}, {}
        rng = np.random.default_rng(0)
        users = np.repeat(np.arange(1, self.n_users), 6)
        items = rng.integers(1, self.n_items, len(users))
        self.matrix = sp.csr_matrix((np.ones(len(users)), (users, items)), shape=(self.n_users, self.n_items))
        self.modalities = list(modalities)
        self.features = {m: rng.normal(size=(self.n_items, 8 + 4 * j)).astype(np.float32) for j, m in enumerate(modalities)}

    def num(self, field):
        return self.n_users if field == "user_id" else self.n_items

    def inter_matrix(self, form="csr"):
        return self.matrix.asformat(form)

    def item_features(self, modality):
        return self.features[modality]

    def knn_cache_file(self, modality, k, rank=0):
        return None


# toy MMRec data: 4 users, items 0..7; item 7 has feature rows but no interaction.
# The first interaction is item 5, so RecBole's internal ids differ from the MMRec itemIDs.
TOY_INTER = [  # userID, itemID, x_label
    (0, 5, 0), (0, 1, 0), (0, 2, 0), (0, 3, 1), (0, 0, 2),
    (1, 2, 0), (1, 4, 0), (1, 6, 0), (1, 5, 1), (1, 1, 2),
    (2, 0, 0), (2, 3, 0), (2, 6, 0), (2, 4, 1), (2, 2, 2),
    (3, 1, 0), (3, 4, 0), (3, 0, 0), (3, 2, 1), (3, 6, 2),
]
TOY_ITEMS = 8


def write_mmrec(folder, name="toy", inter=TOY_INTER, seed=0):
    """An MMRec folder: <name>.inter + image_feat.npy (float16, 4-d) + text_feat.npy (float64, 3-d)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["userID\titemID\trating\ttimestamp\tx_label"] + [f"{u}\t{i}\t1\t{t}\t{x}" for t, (u, i, x) in enumerate(inter)]
    (folder / f"{name}.inter").write_text("\n".join(lines) + "\n")
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(TOY_ITEMS, 4)).astype(np.float16)
    text = rng.normal(size=(TOY_ITEMS, 3)).astype(np.float64)
    np.save(folder / "image_feat.npy", image)
    np.save(folder / "text_feat.npy", text)
    return {"image": image.astype(np.float32), "text": text.astype(np.float32)}


def write_synthetic_mmrec(folder, n_users=80, n_items=50, per_user=8, seed=0):
    """A small random MMRec folder (<name>.inter with per_user - 2 training rows, one validation and one test row
    per user; image_feat.npy 6-d, text_feat.npy 5-d), for end-to-end runs that must be quick."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = ["userID\titemID\trating\ttimestamp\tx_label"]
    for u in range(n_users):
        items = rng.choice(n_items, per_user, replace=False)
        labels = [0] * (per_user - 2) + [1, 2]
        lines += [f"{u}\t{i}\t1\t{u * per_user + t}\t{x}" for t, (i, x) in enumerate(zip(items, labels))]
    (folder / f"{folder.name}.inter").write_text("\n".join(lines) + "\n")
    np.save(folder / "image_feat.npy", rng.normal(size=(n_items, 6)).astype(np.float32))
    np.save(folder / "text_feat.npy", rng.normal(size=(n_items, 5)).astype(np.float32))
