"""Multimodal data: MMRec conversion, features aligned to RecBole's internal item ids, fills, bad input,
ml-100k-mm built on demand, amazon-* help, and the real tiktok data (skipped when ../shared is absent)."""
import logging
import os

import numpy as np
import pytest
import yaml
from recbole.data import data_preparation

from recbole_spectral import cli
from recbole_spectral.config import SpectralConfig
from recbole_spectral.data import create_dataset
from recbole_spectral.data.builders.ml100k_mm import build as build_ml100k_mm
from recbole_spectral.data.converters.mmrec import convert
from recbole_spectral.errors import DataError
from tests.helpers import FAST

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


def load(name, model="BPR", **settings):
    config = SpectralConfig(model, name, config_dict={**FAST, **settings})
    dataset = create_dataset(config)
    return config, dataset


@pytest.fixture
def toy(workdir):
    """The toy MMRec folder converted into the test's data folder; returns (atomic folder, source rows)."""
    source = write_mmrec(workdir / "mmrec" / "toy")
    convert(str(workdir / "mmrec" / "toy"), "toy", log=lambda line: None)
    return workdir / "dataset_atomic" / "toy", source


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


# -- alignment --------------------------------------------------------------------------------------
def test_feature_row_of_internal_id_is_the_source_row_of_its_token(toy, caplog):
    _, source = toy
    caplog.set_level(logging.INFO)
    config, dataset = load("toy")
    assert dataset.modalities == ["image", "text"]
    assert dataset.item_num == 7 + 1  # items 0..6 have interactions; item 7 has none; +1 padding
    tokens = dataset.field2id_token[dataset.iid_field]
    assert tokens[1] == "5"  # the id space really is remapped: internal id 1 is MMRec itemID 5
    for modality, rows in source.items():
        features = dataset.item_features(modality)
        assert features.dtype == np.float32 and features.shape == (8, rows.shape[1])
        np.testing.assert_array_equal(features[0], 0)  # padding
        for internal_id in range(1, dataset.item_num):
            np.testing.assert_array_equal(features[internal_id], rows[int(tokens[internal_id])])
    assert "1 rows unused" in caplog.text  # item 7: features but never in an interaction file
    assert "0 of 7 items without a feature row" in caplog.text


def test_every_split_copy_shares_features_and_batches_never_carry_them(toy):
    config, dataset = load("toy")
    train, valid, test = data_preparation(config, dataset)
    for data in (train, valid, test):
        assert data._dataset.modalities == ["image", "text"]
        assert data._dataset.item_features("image") is dataset.item_features("image")
    assert dataset.item_feat is None  # features are not RecBole item features
    batch = next(iter(train))
    assert set(batch.columns) == {"user_id", "item_id", "neg_item_id"}
    with pytest.raises(DataError, match="has no modality 'audio'; modalities: image, text"):
        dataset.item_features("audio")


@pytest.mark.parametrize("fill", ["mean", "zeros"])
def test_items_without_a_feature_row_are_filled(toy, fill, caplog):
    folder, source = toy
    # text covers MMRec items 0..5 only (own sidecar); item 6 has interactions but no text row
    np.save(folder / "toy.text.npy", source["text"][:6])
    (folder / "toy.text.items.txt").write_text("".join(f"{i}\n" for i in range(6)))
    caplog.set_level(logging.INFO)
    _, dataset = load("toy", feature_fill=fill)
    tokens = list(dataset.field2id_token[dataset.iid_field])
    text = dataset.item_features("text")
    expected = source["text"][:6].mean(axis=0) if fill == "mean" else np.zeros(3)
    np.testing.assert_allclose(text[tokens.index("6")], expected, rtol=1e-6)
    assert f"1 of 7 items without a feature row filled with {fill}" in caplog.text
    np.testing.assert_array_equal(dataset.item_features("image")[tokens.index("6")], source["image"][6])


def test_knn_graph_of_a_modality_is_cached_under_the_dataset(toy):
    folder, _ = toy
    _, dataset = load("toy")
    graph = dataset.knn_graph("image", 3)
    assert graph.shape == (8, 8) and graph._nnz() == 7 * 3  # padding row isolated
    assert (folder / "knn_cache" / "toy.image.mean.k3.npz").is_file()
    assert dataset.knn_graph("image", 3) is graph


# -- bad input: one line naming the file and what was expected --------------------------------------
def _bad_features(folder, source):
    yield "rows", lambda: np.save(folder / "toy.image.npy", source["image"][:7]), "has 7 rows but its sidecar"
    nan = source["image"].copy()
    nan[3, 1] = np.nan
    yield "nan", lambda: np.save(folder / "toy.image.npy", nan), "row 3 (item '3') holds NaN or inf"
    huge = source["image"].astype(np.float64)
    huge[2, 0] = 1e300
    yield "float32-range", lambda: np.save(folder / "toy.image.npy", huge), "row 2 holds values outside the float32 range"
    obj = np.array([[1.0, "x"]] * TOY_ITEMS, dtype=object)
    yield "object", lambda: np.save(folder / "toy.image.npy", obj, allow_pickle=True), "object/pickled array"
    yield "1-d", lambda: np.save(folder / "toy.image.npy", np.arange(8.0)), "shape (8,): expected a 2-d array"
    yield "missing", lambda: os.remove(folder / "toy.image.npy"), "modality 'image' is listed in 'modalities' but its feature file"


@pytest.mark.parametrize("case", ["rows", "nan", "float32-range", "object", "1-d", "missing"])
def test_bad_feature_files_are_one_line_errors(toy, case):
    folder, source = toy
    breakers = {name: (apply, message) for name, apply, message in _bad_features(folder, source)}
    apply, message = breakers[case]
    apply()
    with pytest.raises(DataError) as err:
        load("toy")
    text = str(err.value)
    assert message in text and "toy.image.npy" in text and "\n" not in text


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


# -- shipped datasets ----------------------------------------------------------------------------------
def test_ml100k_mm_is_deterministic_real_content(tmp_path):
    first = build_ml100k_mm(str(tmp_path / "a"))
    build_ml100k_mm(str(tmp_path / "b"))
    for file in sorted(os.listdir(first)):
        if file != "README.txt":
            assert (tmp_path / "a" / "ml-100k-mm" / file).read_bytes() == (tmp_path / "b" / "ml-100k-mm" / file).read_bytes(), file
    text = np.load(os.path.join(first, "ml-100k-mm.text.npy"))
    genre_year = np.load(os.path.join(first, "ml-100k-mm.genre_year.npy"))
    assert text.shape == (1682, 64) and genre_year.shape == (1682, 20)
    assert (np.linalg.norm(text, axis=1) > 0).all()  # every title has a text vector (even "M", "8 1/2")
    # row 0 = item '1', Toy Story (1995): Animation, Children's, Comedy among 19 sorted genres
    genres = sorted(["Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
                     "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
                     "War", "Western", "unknown"])
    assert [genres[i] for i in np.flatnonzero(genre_year[0, :19])] == ["Animation", "Children's", "Comedy"]
    counts = [len((tmp_path / "a" / "ml-100k-mm" / f"ml-100k-mm.{s}.inter").read_text().splitlines()) - 1
              for s in ("train", "valid", "test")]
    assert sum(counts) == 100000 and counts[1] == counts[2] and 0.79 < counts[0] / 100000 < 0.81


def test_lightgcn_runs_on_ml100k_mm_from_the_command_line(workdir, capsys):
    # cli.main is what run_recbole_spectral.py calls; in-process to keep the suite fast
    code = cli.main(["--model=LightGCN", "--dataset=ml-100k-mm", "--epochs=1", "--state=WARNING",
                     "--eval_batch_size=1000000", "--train_batch_size=65536"])
    assert code == 0, capsys.readouterr().err[-2000:]
    assert "test result: recall@10" in capsys.readouterr().out
    assert (workdir / "dataset_atomic" / "ml-100k-mm" / "ml-100k-mm.text.npy").is_file()


@pytest.mark.parametrize("name", ["amazon-sports", "amazon-baby", "amazon-clothing"])
def test_amazon_datasets_explain_where_to_get_them(workdir, capsys, name):
    assert cli.main(["--model=BPR", f"--dataset={name}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "https://github.com/enoche/MMRec" in err and "drive.google.com" in err
    assert f"python run_recbole_spectral.py prepare mmrec --src <download>/{name.split('-')[1]} --name {name}" in err


# -- real data -------------------------------------------------------------------------------------------
def test_tiktok_converts_to_the_published_split_and_trains(workdir, shared_datasets, capsys):
    src = shared_datasets / "multimodal" / "tiktok"
    summary = convert(str(src), "tiktok", log=lambda line: None)
    assert summary["modalities"] == {"image": (6710, 128), "audio": (6710, 128)}
    config, dataset = load("tiktok")
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


def test_a_subset_of_modalities_can_be_chosen_from_the_config(toy):
    _, dataset = load("toy", modalities=["text"])
    assert dataset.modalities == ["text"] and dataset.item_features("text").shape == (8, 3)
