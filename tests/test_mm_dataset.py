"""MultiModalDataset: features aligned to RecBole's internal item ids, fills, kNN caching, bad feature
files, the shipped ml-100k-mm and the amazon-* help."""
import logging
import os
import re

import numpy as np
import pytest
from recbole.data import data_preparation

from recbole_spectral import cli
from recbole_spectral.config import SpectralConfig
from recbole_spectral.data import create_dataset
from recbole_spectral.data.builders.ml100k_mm import build as build_ml100k_mm
from recbole_spectral.errors import ConfigError, DataError
from tests.helpers import FAST, TOY_ITEMS


def load(name, model="BPR", **settings):
    config = SpectralConfig(model, name, config_dict={**FAST, **settings})
    dataset = create_dataset(config)
    return config, dataset


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


def test_a_subset_of_modalities_can_be_chosen_from_the_config(toy):
    _, dataset = load("toy", modalities=["text"])
    assert dataset.modalities == ["text"] and dataset.item_features("text").shape == (8, 3)


@pytest.mark.parametrize("key,value,expected", [("knn_method", "fast", "expected one of ('exact', 'approximate', 'auto')"),
                                                ("knn_exact_max_items", -1, "expected an integer >= 0, got -1")])
def test_knn_settings_are_checked(toy, key, value, expected):
    with pytest.raises(ConfigError, match=f"config key '{key}': {re.escape(expected)}"):
        load("toy", **{key: value})


def test_knn_method_reaches_the_graph(toy, caplog):
    # auto with a size limit below the catalogue: the dataset asks for the approximate graph (exact without faiss)
    _, dataset = load("toy", knn_exact_max_items=3)
    caplog.set_level(logging.INFO)
    dataset.knn_graph("image", 3)
    assert "approximate kNN graph (k=3, 8 items" in caplog.text or "faiss is not installed" in caplog.text
