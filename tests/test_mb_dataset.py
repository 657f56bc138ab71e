"""MultiBehaviorDataset on small exact atomic files, and the shipped ml-100k-mb."""
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from recbole.data import data_preparation as recbole_data_preparation

from recbole_spectral.config import SpectralConfig
from recbole_spectral.data import create_dataset, data_preparation, ensure_dataset_files
from recbole_spectral.data.atomic import write_multibehavior_folder
from recbole_spectral.data.builders.ml100k_mb import split_frames
from recbole_spectral.data.multibehavior import MultiBehaviorDataset
from recbole_spectral.errors import ConfigError, DataError
from recbole_spectral.quick_start import load_data_and_model, run_recbole_spectral, start_run, train_and_test
from recbole_spectral.trainer import trainer_class
from tests.helpers import FAST, ROOT

TOY_YAML = """behaviors: [view, cart, buy]
target_behavior: buy
benchmark_filename: [train, valid, test]
load_col:
  inter: [user_id, item_id, behavior]
rm_dup_inter: first
"""


def frame(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "behavior"]).astype(str)


def toy_splits():
    """5 users (u1..u5), 8 items (i1..i8). u1's viewed items i5/i6 are neither training nor test targets."""
    train = frame(
        [("u1", "i1", "buy"), ("u1", "i2", "buy"), ("u1", "i1", "view"), ("u1", "i5", "view"), ("u1", "i6", "cart"),
         ("u1", "i1", "buy"),  # duplicate target row: removed by rm_dup_inter
         ("u1", "i5", "view"),  # duplicate auxiliary row
         ("u2", "i3", "buy"), ("u2", "i4", "view"), ("u2", "i7", "cart"), ("u2", "i8", "view"),
         ("u3", "i2", "buy"), ("u3", "i8", "cart"), ("u4", "i4", "buy"), ("u4", "i1", "view"),
         ("u5", "i5", "buy"), ("u5", "i6", "view")]
    )
    valid = frame([("u1", "i3", "buy"), ("u2", "i1", "buy"), ("u4", "i7", "buy")])
    test = frame([("u1", "i4", "buy"), ("u2", "i2", "buy"), ("u3", "i5", "buy"), ("u5", "i8", "buy")])
    return {"train": train, "valid": valid, "test": test}


def write_toy(workdir, splits=None, yaml_text=TOY_YAML, name="toy"):
    splits = splits or toy_splits()
    users = [f"u{k}" for k in range(1, 7)]  # u6 has no interaction: still part of the id space
    items = [f"i{k}" for k in range(1, 10)]
    write_multibehavior_folder(workdir / "dataset_atomic", name, splits, ["view", "cart", "buy"], "buy", users, items, yaml_text)
    return name


def toy_config(name="toy", model="BPR", **options):
    return SpectralConfig(model, name, config_dict={**FAST, "load_col": {"inter": ["user_id", "item_id", "behavior"],
                                                                         "user": ["user_id"], "item": ["item_id"]},
                                                    **options})


def pairs_of(dataset, matrix):
    coo = matrix.tocoo()
    users = dataset.id2token(dataset.uid_field, coo.row)
    items = dataset.id2token(dataset.iid_field, coo.col)
    return set(zip(users.tolist(), items.tolist()))


def inter_pairs(dataset):
    inter = dataset.inter_feat
    users = dataset.id2token(dataset.uid_field, inter[dataset.uid_field].numpy())
    items = dataset.id2token(dataset.iid_field, inter[dataset.iid_field].numpy())
    return list(zip(users.tolist(), items.tolist()))


# -- MultiBehaviorDataset on a small exact example ------------------------------------------------
def test_target_rows_only_in_interactions_and_matrices_share_the_id_space(workdir):
    write_toy(workdir)
    config = toy_config()
    dataset = create_dataset(config)
    assert isinstance(dataset, MultiBehaviorDataset)
    assert dataset.user_num == 7 and dataset.item_num == 10  # .user/.item files fix the id space (+ padding)
    train, valid, test = data_preparation(config, dataset)
    # the duplicate (u1, i1, buy) is removed; the (u1, i1, view) row with the same pair leaves no trace here
    assert sorted(inter_pairs(train._dataset)) == [("u1", "i1"), ("u1", "i2"), ("u2", "i3"), ("u3", "i2"),
                                                    ("u4", "i4"), ("u5", "i5")]
    assert sorted(inter_pairs(valid._dataset)) == [("u1", "i3"), ("u2", "i1"), ("u4", "i7")]
    assert sorted(inter_pairs(test._dataset)) == [("u1", "i4"), ("u2", "i2"), ("u3", "i5"), ("u5", "i8")]
    model_view = train._dataset  # what RecBole hands a model
    assert model_view.behaviors == ["view", "cart", "buy"] and model_view.target_behavior == "buy"
    assert model_view.auxiliary_behaviors == ["view", "cart"]
    view = model_view.behavior_matrix("view")
    assert view.dtype == np.float32 and view.shape == (7, 10) and view.format == "csr"
    assert pairs_of(model_view, view) == {("u1", "i1"), ("u1", "i5"), ("u2", "i4"), ("u2", "i8"), ("u4", "i1"),
                                          ("u5", "i6")}
    assert view.data.tolist() == [1.0] * 6  # the duplicate (u1, i5, view) counts once
    assert pairs_of(model_view, model_view.behavior_matrix("cart")) == {("u1", "i6"), ("u2", "i7"), ("u3", "i8")}
    target = model_view.behavior_matrix("buy")
    assert pairs_of(model_view, target) == set(inter_pairs(train._dataset))  # training target only
    union = model_view.all_behaviors_matrix()
    assert pairs_of(model_view, union) == pairs_of(model_view, view) | pairs_of(model_view, target) | {
        ("u1", "i6"), ("u2", "i7"), ("u3", "i8")}
    assert union.data.max() == 1.0 and union.dtype == np.float32
    with pytest.raises(DataError, match="no behavior 'click'"):
        model_view.behavior_matrix("click")


def history(loader, dataset, user):
    uid = dataset.token2id(dataset.uid_field, user)
    return set(dataset.id2token(dataset.iid_field, loader.uid2history_item[uid].numpy()).tolist())


def test_all_behaviors_training_masks_only_training_target_interactions(workdir):
    write_toy(workdir)
    config = toy_config(model="LightGCN", train_on_all_behaviors=True)
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    pairs = inter_pairs(train._dataset)
    # union: 6 target pairs + every auxiliary pair that is not a target pair ((u1, i1) is both: once)
    assert len(pairs) == len(set(pairs)) == 6 + 8
    assert {("u1", "i5"), ("u1", "i6"), ("u2", "i8")} <= set(pairs)
    assert pairs_of(train._dataset, train._dataset.behavior_matrix("buy")) == {
        ("u1", "i1"), ("u1", "i2"), ("u2", "i3"), ("u3", "i2"), ("u4", "i4"), ("u5", "i5")}
    # u1 viewed i5 and carted i6: never masked; training target i1, i2 (and validation i3 at test time) are
    assert history(valid, valid._dataset, "u1") == {"i1", "i2"}
    assert history(test, test._dataset, "u1") == {"i1", "i2", "i3"}
    assert history(test, test._dataset, "u2") == {"i3", "i1"}
    u1 = dataset.token2id(dataset.uid_field, "u1")
    assert set(dataset.id2token(dataset.iid_field, list(test._sampler.used_ids[u1])).tolist()) == {"i1", "i2", "i3", "i4"}
    # training negatives still avoid every interacted item of the union
    assert set(dataset.id2token(dataset.iid_field, list(train._sampler.used_ids[u1])).tolist()) == {"i1", "i2", "i5", "i6"}
    # without the fix-up, RecBole alone would mask the viewed/carted items
    plain_train, plain_valid, plain_test = recbole_data_preparation(config, create_dataset(config))
    assert history(plain_test, plain_test._dataset, "u1") == {"i1", "i2", "i3", "i5", "i6"}


def test_target_only_masks_match_recbole(workdir):
    write_toy(workdir)
    config = toy_config()
    train, valid, test = data_preparation(config, create_dataset(config))
    assert history(valid, valid._dataset, "u1") == {"i1", "i2"}
    assert history(test, test._dataset, "u1") == {"i1", "i2", "i3"}


def test_robustness_options_are_seeded_and_exact(workdir):
    write_toy(workdir)
    base = create_dataset(toy_config())
    dropped = create_dataset(toy_config(drop_behaviors=["cart"]))
    assert dropped.behaviors == ["view", "buy"] and dropped.auxiliary_behaviors == ["view"]
    with pytest.raises(DataError):
        dropped.behavior_matrix("cart")
    assert dropped.all_behaviors_matrix().nnz == base.all_behaviors_matrix().nnz - 3
    view = pairs_of(base, base.behavior_matrix("view"))  # 6 pairs
    added = create_dataset(toy_config(noise_behaviors=["view"], noise_add_ratio=0.5, noise_seed=7))
    noisy = pairs_of(added, added.behavior_matrix("view"))
    assert view < noisy and len(noisy) == 6 + 3
    assert pairs_of(added, added.behavior_matrix("cart")) == pairs_of(base, base.behavior_matrix("cart"))
    assert (added.behavior_matrix("buy") != base.behavior_matrix("buy")).nnz == 0  # target untouched
    again = create_dataset(toy_config(noise_behaviors=["view"], noise_add_ratio=0.5, noise_seed=7))
    assert pairs_of(again, again.behavior_matrix("view")) == noisy
    removed = create_dataset(toy_config(noise_remove_ratio=0.5, noise_seed=7))
    assert pairs_of(removed, removed.behavior_matrix("view")) < view
    assert len(pairs_of(removed, removed.behavior_matrix("view"))) == 3
    assert len(pairs_of(removed, removed.behavior_matrix("cart"))) == 1  # 3 - round(1.5)
    seeds = {frozenset(pairs_of(d, d.behavior_matrix("view")))
             for d in (create_dataset(toy_config(noise_add_ratio=1.0, noise_seed=s)) for s in range(4))}
    assert len(seeds) > 1


@pytest.mark.parametrize(
    "options, message",
    [({"drop_behaviors": ["buy"]}, "drop_behaviors"), ({"noise_behaviors": ["click"]}, "noise_behaviors"),
     ({"noise_remove_ratio": 1.5}, "noise_remove_ratio"), ({"target_behavior": "click"}, "target_behavior")],
)
def test_bad_options_name_the_key(workdir, options, message):
    write_toy(workdir)
    with pytest.raises(ConfigError, match=message):
        create_dataset(toy_config(**options))


def test_bad_files_are_one_line_errors_naming_file_and_line(workdir):
    write_toy(workdir, name="bad1")
    train_file = workdir / "dataset_atomic" / "bad1" / "bad1.train.inter"
    lines = train_file.read_text().splitlines(keepends=True)
    lines[4] = lines[4].replace("view", "click")  # line 5 of the file
    train_file.write_text("".join(lines))
    with pytest.raises(DataError, match=r"bad1\.train\.inter line 5: behavior 'click'") as err:
        create_dataset(toy_config("bad1"))
    assert "\n" not in str(err.value)

    splits = toy_splits()
    splits["train"] = splits["train"][splits["train"]["behavior"] != "cart"]
    write_toy(workdir, splits, name="bad2")
    with pytest.raises(DataError, match=r"bad2\.train\.inter: behavior 'cart' named in config key 'behaviors'"):
        create_dataset(toy_config("bad2"))

    splits = toy_splits()
    splits["test"] = splits["test"].iloc[:0]
    write_toy(workdir, splits, name="bad3")
    with pytest.raises(DataError, match=r"bad3\.test\.inter: empty target split"):
        create_dataset(toy_config("bad3"))


@pytest.fixture
def one_thread():
    """On the shared 2-core machine one torch thread is several times faster than two (oversubscription)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -- ml-100k-mb -----------------------------------------------------------------------------------
def test_ml100k_mb_maps_ratings_and_leaves_out_latest_likes():
    splits = split_frames()
    train, valid, test = splits["train"], splits["valid"], splits["test"]
    assert len(train) + len(valid) + len(test) == 100000
    assert train["behavior"].value_counts().to_dict() == {
        "like": 55375 - len(valid) - len(test), "neutral": 27145, "dislike": 17480}
    assert set(valid["behavior"]) == set(test["behavior"]) == {"like"}
    assert len(test) == len(valid) == test["user_id"].nunique()
    likes = pd.concat([train[train["behavior"] == "like"], valid, test])
    latest = likes.assign(item=likes["item_id"].astype(int)).sort_values(["timestamp", "item"]).groupby("user_id").tail(1)
    assert set(zip(test["user_id"], test["item_id"])) == set(zip(latest["user_id"], latest["item_id"]))
    assert split_frames()["test"].equals(test)  # deterministic


def test_ml100k_mb_recbole_trains_on_likes_only_in_one_id_space(workdir):
    splits = split_frames()
    config = SpectralConfig("BPR", "ml-100k-mb", config_dict=FAST)
    ensure_dataset_files(config)  # builds the shipped dataset on first use
    train, valid, test = data_preparation(config, create_dataset(config))
    raw = splits["train"]
    likes = raw[raw["behavior"] == "like"]
    assert sorted(inter_pairs(train._dataset)) == sorted(zip(likes["user_id"], likes["item_id"]))
    assert sorted(inter_pairs(test._dataset)) == sorted(zip(splits["test"]["user_id"], splits["test"]["item_id"]))
    for behavior in ("dislike", "neutral"):
        rows = raw[raw["behavior"] == behavior]
        assert pairs_of(train._dataset, train._dataset.behavior_matrix(behavior)) == set(zip(rows["user_id"], rows["item_id"]))


def test_ml100k_mb_runs_lightgcn_from_the_cli_on_the_target(workdir):
    result = subprocess.run(
        [sys.executable, str(ROOT / "run_recbole_spectral.py"), "--model=LightGCN", "--dataset=ml-100k-mb",
         "--epochs=1", "--train_batch_size=8192", "--state=WARNING"],
        cwd=workdir, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "test result: hit@10:" in result.stdout
    assert (workdir / "dataset_atomic" / "ml-100k-mb" / "ml-100k-mb.test.inter").is_file()


def test_ml100k_mb_runs_bpr(workdir, one_thread):
    result = run_recbole_spectral("BPR", "ml-100k-mb", config_dict={**FAST, "train_batch_size": 8192})
    assert 0 <= result["test_result"]["hit@10"] <= 1 and "ndcg@10" in result["test_result"]


# -- metric level: a known model through the trainer and through a reloaded checkpoint ----------------
def funnel_splits():
    """5 users, 6 items. Test buys: u1 i3 and u2 i4 (each viewed in training), u3 i6 (carted; it also viewed i5),
    u4 i1 (never seen; the most bought item it has not bought), u5 i6 (neither seen nor bought by anyone; u5
    viewed i2). Training buys: i1 by u1, u3; i2 by u2, u4; i3 by u5."""
    train = frame([("u1", "i1", "buy"), ("u1", "i3", "view"), ("u2", "i2", "buy"), ("u2", "i4", "view"),
                   ("u3", "i1", "buy"), ("u3", "i5", "view"), ("u3", "i6", "cart"), ("u4", "i2", "buy"),
                   ("u5", "i3", "buy"), ("u5", "i2", "view")])
    valid = frame([("u1", "i5", "buy"), ("u2", "i6", "buy")])
    test = frame([("u1", "i3", "buy"), ("u2", "i4", "buy"), ("u3", "i6", "buy"), ("u4", "i1", "buy"), ("u5", "i6", "buy")])
    return {"train": train, "valid": valid, "test": test}


@pytest.mark.parametrize("stage_order,hits", [("latest_first", 0.8), ("earliest_first", 0.6)])
def test_historypop_hits_the_viewed_test_items_at_1_through_the_trainer_and_a_reloaded_checkpoint(stage_order, hits, workdir):
    """HistoryPop's top item: u1 i3 and u2 i4 (their only viewed items: hits), u3 i6 (latest stage first: cart
    beats view, a hit; earliest first: i5, a miss), u4 i1 (popularity: a hit), u5 i2 (viewed; its test item i6
    is not: a miss). Hit@1 = 4/5 latest first, 3/5 earliest first."""
    write_toy(workdir, funnel_splits(), name="funnel")
    config = toy_config("funnel", model="HistoryPop", stage_order=stage_order, metrics=["Hit"], topk=[1],
                        valid_metric="Hit@1", checkpoint_dir=str(workdir / "saved"))
    start_run(config)
    result, _, _ = train_and_test(config)
    assert result["test_result"]["hit@1"] == pytest.approx(hits)

    config, model, _, _, _, test_data = load_data_and_model(result["model_file"])
    assert trainer_class(config)(config, model).evaluate(test_data, load_best_model=False)["hit@1"] == pytest.approx(hits)
