"""The CRGCN-layout converter (``prepare crgcn``) on small exact folders, and on the real public datasets."""
import pandas as pd
import pytest

from recbole_spectral.cli import main as cli_main
from recbole_spectral.config import SpectralConfig
from recbole_spectral.data import create_dataset
from recbole_spectral.data.converters.crgcn import behavior_order, convert_crgcn
from recbole_spectral.errors import DataError
from tests.helpers import FAST

# -- the CRGCN converter --------------------------------------------------------------------------

CRGCN_FILES = {
    "count.txt": '{"user": 4, "item": 5}\n',
    "view.txt": "1 1\n1 2\n2 3\n3 4\n4 5\n",
    "cart.txt": "1 2\r\n2 3\r\n",  # CRLF line ends
    "buy.txt": "1 1\r\n1 2\r\n1 3\r\n2 3\r\n2 4\r\n3 4\r\n",  # user 4 has no training target
    "test.txt": "1 5\n2 1\n3 2\n\n",
}


def crgcn_folder(root, drop=(), **changes):
    folder = root / "raw"
    folder.mkdir(exist_ok=True)
    for file, text in {**CRGCN_FILES, **changes}.items():
        if file not in drop:
            (folder / file).write_text(text, newline="")
    return folder


def read_inter(folder, name, split):
    return pd.read_csv(folder / f"{name}.{split}.inter", sep="\t", dtype=str)


def test_behavior_order_follows_the_funnel():
    assert behavior_order(["buy", "cart", "collect", "click"], "buy") == ["click", "collect", "cart", "buy"]
    assert behavior_order(["buy", "view", "share"], "buy") == ["view", "share", "buy"]


def test_convert_crgcn_holds_out_one_target_per_user_with_two(workdir):
    summary = convert_crgcn(crgcn_folder(workdir), "mini", workdir / "dataset_atomic", seed=3)
    out = workdir / "dataset_atomic" / "mini"
    assert summary["rows"] == {"view": 5, "cart": 2, "buy": 6} and summary["behaviors"] == ["view", "cart", "buy"]
    train, valid, test = (read_inter(out, "mini", s) for s in ("train", "valid", "test"))
    assert list(train.columns) == ["user_id:token", "item_id:token", "behavior:token"]
    assert train["behavior:token"].value_counts().to_dict() == {"view": 5, "buy": 4, "cart": 2}
    # users 1 (3 buys) and 2 (2 buys) lose one training target each to validation; user 3 (1 buy) keeps it
    assert sorted(valid["user_id:token"]) == ["1", "2"] and set(valid["behavior:token"]) == {"buy"}
    buys = set(map(tuple, train[train["behavior:token"] == "buy"][["user_id:token", "item_id:token"]].values))
    held = set(map(tuple, valid[["user_id:token", "item_id:token"]].values))
    assert not buys & held and buys | held == {("1", "1"), ("1", "2"), ("1", "3"), ("2", "3"), ("2", "4"), ("3", "4")}
    assert len(test) == 3  # the blank line is skipped
    assert (out / "mini.user").read_text().split() == ["user_id:token", "1", "2", "3", "4"]
    again = convert_crgcn(crgcn_folder(workdir), "mini2", workdir / "dataset_atomic", seed=3)
    assert read_inter(workdir / "dataset_atomic" / "mini2", "mini2", "valid").equals(valid)  # seeded
    assert again["valid"] == 2
    # the written YAML makes it a multi-behavior dataset with count.txt's id space
    config = SpectralConfig("BPR", "mini", config_dict=FAST)
    assert config["behaviors"] == ["view", "cart", "buy"] and config["target_behavior"] == "buy"
    dataset = create_dataset(config)
    assert (dataset.user_num, dataset.item_num) == (5, 6)
    assert dataset.behavior_matrix("buy").nnz == 4 and dataset.behavior_matrix("view").nnz == 5


def test_convert_crgcn_uses_a_validation_file_and_the_cli(workdir, capsys):
    src = crgcn_folder(workdir, **{"validation.txt": "4 1\n"})
    code = cli_main(["prepare", "crgcn", "--src", str(src), "--name", "withval", "--seed", "1"])
    assert code == 0
    assert "4 users, 5 items; view 5, cart 2, buy 6; training target 6, valid 1" in capsys.readouterr().out
    out = workdir / "dataset_atomic" / "withval"  # $RECBOLE_SPECTRAL_DATA
    assert read_inter(out, "withval", "valid").values.tolist() == [["4", "1", "buy"]]
    assert cli_main(["prepare", "crgcn", "--src", str(src), "--name", "withval"]) == 0  # replaces its own output
    (workdir / "dataset_atomic" / "notes").mkdir()
    (workdir / "dataset_atomic" / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="refusing to replace"):
        convert_crgcn(src, "notes", workdir / "dataset_atomic")
    assert (workdir / "dataset_atomic" / "notes" / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "drop, changes, message",
    [
        (("buy.txt",), {}, r"raw/buy\.txt: target behavior file missing"),
        (("test.txt",), {}, r"raw/test\.txt: missing"),
        ((), {"count.txt": '{"user": 4}'}, r"count\.txt: key 'item' must be a positive integer"),
        ((), {"view.txt": "1 1\n1 9\n"}, r"view\.txt line 2: item id 9 outside 1\.\.5"),
        ((), {"cart.txt": "1 2\r\n5 3\r\n"}, r"cart\.txt line 2: user id 5 outside 1\.\.4"),
        ((), {"cart.txt": "1 2\nx 3\n"}, r"cart\.txt line 2: expected two integer ids"),
        ((), {"view.txt": "1 1 7\n"}, r"view\.txt line 1: expected two integer ids"),
        ((), {"test.txt": "\n"}, r"test\.txt: empty target split"),
        ((), {"buy.txt": ""}, r"buy\.txt: empty target split"),
    ],
)
def test_bad_crgcn_input_is_one_line_naming_file_and_line(workdir, capsys, drop, changes, message):
    src = crgcn_folder(workdir, drop, **changes)
    with pytest.raises(DataError, match=message) as err:
        convert_crgcn(src, "bad", workdir / "dataset_atomic")
    assert "\n" not in str(err.value)
    assert not (workdir / "dataset_atomic" / "bad").exists()
    assert cli_main(["prepare", "crgcn", "--src", str(src), "--name", "bad"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


# -- the real public datasets (../shared/datasets) -----------------------------------------------
def line_count(path):
    with open(path) as handle:
        return sum(1 for _ in handle) - 1  # header


def test_taobao_15k_statistics(shared_datasets, workdir):
    summary = convert_crgcn(shared_datasets / "multibehavior" / "taobao-15k", "taobao-15k", workdir / "dataset_atomic")
    assert (summary["users"], summary["items"]) == (15449, 11953)
    assert summary["rows"] == {"view": 873954, "cart": 195476, "buy": 92180}
    assert summary["test"] == 15449
    # no validation file: every user has >= 2 buys, so each gives one to validation
    assert summary["valid"] == 15449 and summary["train_target"] == 92180 - 15449
    out = workdir / "dataset_atomic" / "taobao-15k"
    assert line_count(out / "taobao-15k.train.inter") == 873954 + 195476 + 92180 - 15449
    assert line_count(out / "taobao-15k.test.inter") == 15449


def test_tmall_41k_statistics_and_id_space(shared_datasets, workdir):
    summary = convert_crgcn(shared_datasets / "multibehavior" / "tmall-41k", "tmall-41k", workdir / "dataset_atomic")
    assert (summary["users"], summary["items"]) == (41738, 11953)
    assert summary["rows"] == {"collect": 221514, "cart": 1996, "buy": 181428}
    assert (summary["valid"], summary["test"]) == (74158, 31572)
    dataset = create_dataset(SpectralConfig("BPR", "tmall-41k", config_dict=FAST))
    # 41,738 users although only 41,484 appear in some file: the id space is count.txt's (+ padding)
    assert (dataset.user_num, dataset.item_num) == (41738 + 1, 11953 + 1)
    assert dataset.file_size_list == [181428, 74158, 31572]
    assert {b: dataset.behavior_matrix(b).nnz for b in dataset.behaviors} == {
        "collect": 221514, "cart": 1996, "buy": 181428}
