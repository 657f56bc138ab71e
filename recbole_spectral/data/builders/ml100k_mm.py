"""``ml-100k-mm``: a multimodal dataset built on demand from RecBole's bundled ml-100k (no download).

Interactions: every ml-100k rating is a positive (implicit feedback). Split: per user, a random 8:1:1
split (seed 2020, like RecBole's default RS split grouped by user) written as the benchmark files
``ml-100k-mm.{train,valid,test}.inter``, so every model sees the same split.

Two content modalities computed locally from ``ml-100k.item``:

- ``text``: TF-IDF of the movie title (word unigrams incl. 1-character words, sublinear tf) -> TruncatedSVD to 64-d
  (``random_state=2020``).
- ``genre_year``: multi-hot of the 19 genres + release year min-max scaled to [0, 1] (20-d).

Feature rows follow ``ml-100k-mm.feature_items.txt`` (the item tokens, in ``ml-100k.item`` order).
Everything is deterministic; nothing built here is committed to the repository.
"""
import os
from logging import getLogger

import numpy as np
import pandas as pd

from recbole_spectral.data.atomic import atomic_folder, write_inter, write_lines

NAME = "ml-100k-mm"
SEED = 2020
TEXT_DIM = 64
SPLIT = (0.8, 0.1, 0.1)
SPLIT_NAMES = ("train", "valid", "test")


def source_dir():
    import recbole

    return os.path.join(os.path.dirname(os.path.realpath(recbole.__file__)), "dataset_example", "ml-100k")


def _read_atomic(path):
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    frame.columns = [c.split(":")[0] for c in frame.columns]
    return frame


def split_per_user(inter, ratios=SPLIT, seed=SEED):
    """Label each row 0/1/2 (train/valid/test): per user, a random permutation cut at the ratios."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(len(inter), dtype=np.int64)
    for _, index in sorted(inter.groupby("user_id", sort=False).indices.items(), key=lambda kv: int(kv[0])):
        order = index[rng.permutation(len(index))]
        n_valid, n_test = int(ratios[1] * len(order)), int(ratios[2] * len(order))
        n_train = len(order) - n_valid - n_test
        labels[order[n_train:n_train + n_valid]] = 1
        labels[order[n_train + n_valid:]] = 2
    return labels


def text_features(titles, dim=TEXT_DIM, seed=SEED):
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    # single-character tokens count: titles such as "M", "I.Q." or "8 1/2" must not become zero rows
    tfidf = TfidfVectorizer(lowercase=True, sublinear_tf=True, token_pattern=r"(?u)\b\w+\b").fit_transform(titles)
    svd = TruncatedSVD(n_components=dim, algorithm="randomized", n_iter=7, random_state=seed)
    return svd.fit_transform(tfidf).astype(np.float32)


def genre_year_features(genres, years):
    vocabulary = sorted({g for text in genres for g in text.split()})
    multi_hot = np.zeros((len(genres), len(vocabulary)), dtype=np.float32)
    column = {g: i for i, g in enumerate(vocabulary)}
    for row, text in enumerate(genres):
        for genre in text.split():
            multi_hot[row, column[genre]] = 1.0
    year = pd.to_numeric(pd.Series(list(years)), errors="coerce").to_numpy(dtype=np.float64)
    year = np.where(np.isnan(year), np.nanmean(year), year)
    span = year.max() - year.min()
    scaled = (year - year.min()) / span if span > 0 else np.zeros_like(year)
    return np.hstack([multi_hot, scaled[:, None].astype(np.float32)])


def build(data_dir, source=None):
    """Write ``<data_dir>/ml-100k-mm/`` (atomic files + features); returns the dataset folder."""
    source = source or source_dir()
    target = os.path.join(data_dir, NAME)
    os.makedirs(data_dir, exist_ok=True)
    inter = _read_atomic(os.path.join(source, "ml-100k.inter"))
    items = _read_atomic(os.path.join(source, "ml-100k.item"))
    labels = split_per_user(inter)

    with atomic_folder(data_dir, NAME, if_exists="keep") as work:  # built meanwhile by another process: keep theirs
        for label, split in enumerate(SPLIT_NAMES):
            write_inter(inter[labels == label], os.path.join(work, f"{NAME}.{split}.inter"),
                        ["user_id", "item_id", "rating", "timestamp"])
        write_lines(os.path.join(work, f"{NAME}.feature_items.txt"), items["item_id"])
        np.save(os.path.join(work, f"{NAME}.text.npy"), text_features(items["movie_title"].tolist()))
        np.save(os.path.join(work, f"{NAME}.genre_year.npy"), genre_year_features(items["class"], items["release_year"]))
        with open(os.path.join(work, "README.txt"), "w", encoding="utf-8") as out:
            out.write(
                f"Built by recbole_spectral.data.builders.ml100k_mm from RecBole's bundled ml-100k ({source}).\n"
                "Delete this folder to rebuild it.\n"
            )
    getLogger().info(
        f"built {NAME} in {target}: {len(inter)} interactions "
        f"({', '.join(f'{s} {int((labels == i).sum())}' for i, s in enumerate(SPLIT_NAMES))}), "
        f"{len(items)} items, modalities text {TEXT_DIM}-d, genre_year"
    )
    return target
