"""``ml-100k-mb``: a multi-behavior dataset built on demand from RecBole's bundled ml-100k (no download).

Ratings map to behaviors as in the MovieLens multi-behavior benchmarks: 1-2 -> ``dislike``,
3 -> ``neutral``, 4-5 -> ``like`` (the target). Validation and test are leave-one-out by timestamp on the
target: for every user with at least 3 ``like`` rows, the latest goes to test and the second latest to
validation (ties broken by item id); everything else, and every auxiliary row, is training data.
Deterministic; nothing from it is committed.
"""
import os
from logging import getLogger

import numpy as np
import pandas as pd
import recbole

from recbole_spectral.data.atomic import write_multibehavior_folder

NAME = "ml-100k-mb"
SOURCE = os.path.join(os.path.dirname(recbole.__file__), "dataset_example", "ml-100k", "ml-100k.inter")
BEHAVIORS = ["dislike", "neutral", "like"]
TARGET = "like"


def rating_to_behavior(rating):
    return np.where(rating <= 2, "dislike", np.where(rating == 3, "neutral", "like"))


def split_frames(source=SOURCE):
    """train/valid/test DataFrames (user_id, item_id, behavior, timestamp) from an ml-100k .inter file."""
    raw = pd.read_csv(source, sep="\t", dtype={0: str, 1: str})
    raw.columns = [c.split(":")[0] for c in raw.columns]
    raw["behavior"] = rating_to_behavior(raw["rating"].to_numpy())
    raw["timestamp"] = raw["timestamp"].astype(np.int64)
    raw["_item"] = raw["item_id"].astype(int)
    raw["_user"] = raw["user_id"].astype(int)
    raw = raw.sort_values(["_user", "timestamp", "_item"], kind="mergesort").reset_index(drop=True)
    target = raw[raw["behavior"] == TARGET]
    # position from the end within each user's target rows: 0 = latest
    from_end = target.groupby("_user").cumcount(ascending=False)
    per_user = target.groupby("_user")["_user"].transform("size")
    eligible = per_user >= 3
    test_index = target.index[eligible & (from_end == 0)]
    valid_index = target.index[eligible & (from_end == 1)]
    train = raw.drop(index=test_index.union(valid_index))
    columns = ["user_id", "item_id", "behavior", "timestamp"]
    return {"train": train[columns], "valid": raw.loc[valid_index, columns], "test": raw.loc[test_index, columns]}


def build(data_dir):
    """Write ``<data_dir>/ml-100k-mb/`` (atomic files; the properties are properties/dataset/ml-100k-mb.yaml)."""
    splits = split_frames()
    path = write_multibehavior_folder(data_dir, NAME, splits, BEHAVIORS, TARGET)
    counts = splits["train"]["behavior"].value_counts()
    getLogger().info(
        f"built {path}: " + ", ".join(f"{b} {counts.get(b, 0)}" for b in BEHAVIORS)
        + f" training rows; valid {len(splits['valid'])}, test {len(splits['test'])}"
    )
    return path
