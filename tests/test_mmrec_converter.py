"""The MMRec-layout converter (``prepare mmrec``) on a small exact folder, and on the real TikTok data
(skipped when ../shared is absent)."""
import numpy as np
import pytest
import yaml

from recbole_spectral import cli
from recbole_spectral.config import SpectralConfig
from recbole_spectral.data import create_dataset
from recbole_spectral.data.converters.mmrec import convert
from recbole_spectral.errors import DataError
from tests.helpers import FAST, TOY_INTER, TOY_ITEMS, write_mmrec


# -- conversion -----------------------------------------------------------------------------------
def test_converter_honours_x_label_and_writes_float32(toy):
    folder, source = toy
    for split, label in (("train", 0), ("valid", 1), ("test", 2)):
        rows = (folder / f"toy.{split}.inter").read_text().splitlines()
        assert rows[0] == "user_id:token\titem_id:token\trating:float\ttimestamp:float"
        expected = [(u, i) for u, i, x in TOY_INTER if x == label]
        assert [tuple(map(int, r.split("\t")[:2])) for r in rows[1:]] == expected
    for modality, rows in source.items():
        stored = np.load(folder / f"toy.{modality}.npy", allow_pickle=False)
        assert stored.dtype == np.float32  # image was float16, text float64
        np.testing.assert_array_equal(stored, rows)
    assert (folder / "toy.feature_items.txt").read_text().split() == [str(i) for i in range(TOY_ITEMS)]
    properties = yaml.safe_load((folder / "toy.yaml").read_text())
    assert properties["modalities"] == ["image", "text"]
    assert properties["benchmark_filename"] == ["train", "valid", "test"]


def test_prepare_command_converts_and_refuses_to_overwrite(workdir, capsys):
    write_mmrec(workdir / "src" / "clips")
    argv = ["prepare", "mmrec", "--src", str(workdir / "src" / "clips"), "--name", "clips", "--out", str(workdir / "out")]
    assert cli.main(argv) == 0
    assert "train 12 / valid 4 / test 4" in capsys.readouterr().out
    assert (workdir / "out" / "clips" / "clips.train.inter").is_file()
    assert cli.main(argv) == 2
    assert "already exists: pass --force" in capsys.readouterr().err
    assert cli.main(argv + ["--force"]) == 0


def test_converter_rejects_x_label_outside_0_1_2(workdir):
    bad = list(TOY_INTER)
    bad[6] = (1, 4, 3)
    write_mmrec(workdir / "bad", name="bad", inter=bad)
    with pytest.raises(DataError) as err:
        convert(str(workdir / "bad"), "bad", log=lambda line: None)
    assert str(err.value).endswith("bad.inter line 8: x_label 3 is outside 0/1/2 (train/valid/test)")


def test_converter_rejects_feature_file_shorter_than_item_ids(workdir):
    write_mmrec(workdir / "short", name="short")
    np.save(workdir / "short" / "text_feat.npy", np.zeros((5, 3)))
    with pytest.raises(DataError, match=r"text_feat.npy has 5 rows but short.inter uses itemID 6"):
        convert(str(workdir / "short"), "short", log=lambda line: None)


# -- real data -------------------------------------------------------------------------------------------
def test_tiktok_converts_to_the_published_split_and_trains(workdir, shared_datasets, capsys):
    src = shared_datasets / "multimodal" / "tiktok"
    summary = convert(str(src), "tiktok", log=lambda line: None)
    assert summary["modalities"] == {"image": (6710, 128), "audio": (6710, 128)}
    dataset = create_dataset(SpectralConfig("BPR", "tiktok", config_dict=FAST))
    assert (dataset.user_num - 1, dataset.item_num - 1) == (9308, 6710)
    assert dataset.file_size_list == [59541, 3051, 6130]
    assert dataset.modalities == ["image", "audio"]
    tokens = dataset.field2id_token[dataset.iid_field][1:].astype(np.int64)
    for modality in ("image", "audio"):
        rows = np.load(src / f"{modality}_feat.npy").astype(np.float32)
        np.testing.assert_array_equal(dataset.item_features(modality)[1:], rows[tokens])

    for model in ("BPR", "LightGCN"):
        code = cli.main([f"--model={model}", "--dataset=tiktok", "--epochs=1", "--state=WARNING",
                         "--eval_batch_size=1000000", "--train_batch_size=65536"])
        assert code == 0, capsys.readouterr().err[-2000:]
        assert "test result: recall@10" in capsys.readouterr().out
