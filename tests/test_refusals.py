"""Refusals: every bad input ends with exit code 2 and one line naming the key or file, and nothing is printed
before it — no configuration dump, no library warning, no traceback.

What the configuration and the dataset's files can tell (a model on the wrong kind of dataset, a mistyped key,
a config file that is not a mapping, a broken header, a cut-short last line, a removed feature file or
sidecar) is refused before a log is opened; what needs the loaded data (a behavior without rows, an unknown
behavior, inf in features, fewer items than ``topk``, a user who interacted with every item, a model too large
for memory) is refused while the console is still held back, so the reason is still the only line. The
per-model cases are generated from the registry, as in ``tests/test_hyperparameters.py``; most cases run the
command line in-process (``cli.main``), two run it as a real process to prove nothing comes before the line.
"""
import contextlib
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
import yaml

from recbole_spectral import cli, paths, registry
from recbole_spectral.config import RECBOLE_RUNTIME_KEYS, SpectralConfig, other_models_keys
from recbole_spectral.data.atomic import atomic_folder
from recbole_spectral.data.converters import mmrec
from recbole_spectral.data.converters.mmrec import convert
from recbole_spectral.data.factory import check_atomic_file
from recbole_spectral.errors import DataError
from recbole_spectral.quick_start import KNOWN_HARMLESS_WARNINGS, silence_known_warnings
from tests.helpers import DEFAULT_DATASET, ROOT, TOY_INTER, run_cli, write_mmrec
from tests.test_mb_dataset import toy_splits, write_toy

SMALL = ["--epochs=1", "--topk=[5]", "--valid_metric=Hit@5"]  # the toys have 7-9 items


def refusal(capsys, *argv):
    """Run the command line in-process; the refusal must be its only output line."""
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    lines = (out + err).splitlines()
    assert code == 2, out + err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, out + err
    return lines[0]


# -- from the configuration alone ----------------------------------------------------------------------
def _kind_cases():
    for name in sorted(registry.plugin_model_names()):
        needed = registry.get_model(name).dataset_kind
        for kind, dataset in DEFAULT_DATASET.items():
            if needed != "any" and kind != needed:
                yield pytest.param(name, dataset, id=f"{name}-on-{dataset}")


@pytest.mark.parametrize("model, dataset", list(_kind_cases()))
def test_a_model_on_the_wrong_kind_of_dataset_is_refused_before_the_data_is_built(workdir, capsys, model, dataset):
    line = refusal(capsys, f"--model={model}", f"--dataset={dataset}")
    assert f"{model} needs a multi" in line and f"dataset '{dataset}'" in line
    assert not os.listdir(workdir / "dataset_atomic")  # the shipped dataset was not even built


def _typo(key):
    """A near miss of ``key`` that no configuration layer knows."""
    for candidate in (key[:-1], key + "s", key[:-1] + "x", "x" + key):
        if candidate not in other_models_keys() and candidate not in RECBOLE_RUNTIME_KEYS:
            return candidate
    raise AssertionError(key)


def _declared_keys(name):
    return list(getattr(registry.get_model(name), "hyperparameters", None) or {})


@pytest.mark.parametrize("model", sorted(registry.plugin_model_names()))
def test_every_mistyped_declared_key_is_caught_with_the_nearest_keys(workdir, capsys, model):
    dataset = DEFAULT_DATASET[registry.get_model(model).dataset_kind]
    typos = {_typo(key): key for key in _declared_keys(model)}
    # every declared key, mistyped: each one is named with its nearest known keys (collected with the opt-out)
    config = SpectralConfig(model, dataset, config_dict={**dict.fromkeys(typos, 1), "refuse_unknown_keys": False})
    notes = {note.split("'")[1]: note for note in config.notes}
    assert set(notes) == set(typos)
    for typo, key in typos.items():
        assert f"'{key}'" in notes[typo].split("did you mean", 1)[1], notes[typo]
    # and without the opt-out the first is refused on the command line
    typo, key = next(iter(typos.items()))
    line = refusal(capsys, f"--model={model}", f"--dataset={dataset}", f"--{typo}=1")
    assert f"config key '{typo}'" in line and f"did you mean '{key}'" in line and "refuse_unknown_keys" in line


def test_the_issue_typo_names_the_key_and_trains_nothing(workdir, capsys):
    line = refusal(capsys, "--model=SSR", "--dataset=ml-100k-mm", "--n_band=3")
    assert line == ("error: config key 'n_band' is not a setting of SSR, RecBole or dataset 'ml-100k-mm'; "
                    "did you mean 'n_bands'? (refuse_unknown_keys: False passes unknown keys on)")
    assert not (workdir / "log").exists()


def test_keys_of_other_models_and_of_recbole_runs_are_passed_on():
    # a shared setting of a comparison (LightGCN's n_layers given to BPR too) is no typo: logged, not refused
    config = SpectralConfig("BPR", "ml-100k", config_dict={"n_layers": 2})
    assert config.notes == ["config key 'n_layers' is not read by BPR (it is a setting of AutoInt, BERT4Rec, CORE, CRGCN, "
                            "...); ignored"]
    # what RecBole's distributed runs and its command line set
    SpectralConfig("BPR", "ml-100k", config_dict={"nproc": 1, "world_size": 1, "ip": "localhost", "port": "5678",
                                                  "offset": 0, "config_files": None})
    # an unknown key passed on purpose
    config = SpectralConfig("BPR", "ml-100k", config_dict={"my_own_setting": 3, "refuse_unknown_keys": False})
    assert config["my_own_setting"] == 3 and "my_own_setting" in config.notes[0]


@pytest.mark.parametrize("recipe", sorted(p.name for p in paths.recipe_file("").glob("*.yaml")))
def test_every_key_of_the_shipped_recipes_and_search_spaces_is_known(recipe):
    model = recipe.split("-")[0]
    if model not in registry.PLUGIN_MODELS:  # an add-on's recipe (history-term, cascade-term): every model offering it
        with open(paths.recipe_file(recipe)) as fp:
            keys = set(yaml.safe_load(fp))
        offering = [m for m in registry.PLUGIN_MODELS if keys <= set(getattr(registry.get_model(m), "hyperparameters", {}))]
        assert offering
        for name in offering:
            assert SpectralConfig(name, DEFAULT_DATASET[registry.get_model(name).dataset_kind], [str(paths.recipe_file(recipe))]).notes == []
        return
    dataset = DEFAULT_DATASET[registry.get_model(model).dataset_kind]
    config = SpectralConfig(model, dataset, [str(paths.recipe_file(recipe))])
    assert config.notes == []
    with open(paths.properties_dir() / "tuning" / f"{model}.hyper") as fp:
        space = {line.split()[0] for line in fp if line.strip() and not line.startswith("#")}
    assert space and space <= config.known_keys()


@pytest.mark.parametrize("argument, line", [
    ("--seed=-5", "config key 'seed': expected an integer from 0 to 2**32 - 1, got -5"),
    ("--topk=5", "config key 'valid_metric': NDCG@10 needs its cutoff 10 in config key 'topk' [5]"),
    ("--valid_metric=NDCG@50", "config key 'valid_metric': NDCG@50 needs its cutoff 50 in config key 'topk' [10, 20]"),
    ("--valid_metric=NDCG", "config key 'valid_metric': NDCG needs a cutoff from config key 'topk' [10, 20], e.g. NDCG@10"),
    ("--valid_metric=AUC", "config key 'valid_metric': AUC is not among config key 'metrics' "
                           "['recall', 'ndcg', 'hit', 'mrr', 'precision']"),
])
def test_settings_recbole_would_fail_on_later_are_refused_first(workdir, capsys, argument, line):
    assert refusal(capsys, "--model=BPR", "--dataset=ml-100k", argument) == f"error: {line}"


def test_a_config_file_holding_a_list_must_be_a_mapping(workdir, capsys):
    (workdir / "list.yaml").write_text("- epochs: 1\n- seed: 3\n")
    line = refusal(capsys, "--model=BPR", "--dataset=ml-100k", "--config_files=list.yaml")
    assert line == ("error: config file 'list.yaml': expected a mapping of 'key: value' lines, got a list "
                    "(remove the leading '- ')")


# -- from the dataset's files, before a log is opened; then from the loaded data ------------------------
def _mb(workdir, name, splits=None, edit=None):
    write_toy(workdir, splits, name=name)
    path = workdir / "dataset_atomic" / name / f"{name}.train.inter"
    if edit:
        path.write_text(edit(path.read_text()))
    return "SpectraMB"


def _mm(workdir, name, inter=TOY_INTER, edit=None):
    write_mmrec(workdir / "mmrec" / name, name=name, inter=inter)
    convert(str(workdir / "mmrec" / name), name, log=lambda line: None)
    if edit:
        edit(workdir / "dataset_atomic" / name, name)
    return "SSR"


def _line_replaced(number, old, new):
    def edit(text):
        lines = text.splitlines(keepends=True)
        lines[number - 1] = lines[number - 1].replace(old, new)
        return "".join(lines)
    return edit


def _without_cart():
    splits = toy_splits()
    splits["train"] = splits["train"][splits["train"]["behavior"] != "cart"]
    return splits


def _removed(suffix):
    return lambda folder, name: os.remove(folder / f"{name}.{suffix}")


def _with_inf(folder, name):
    features = np.load(folder / f"{name}.text.npy")
    features[2, 1] = np.inf
    np.save(folder / f"{name}.text.npy", features)


def _broken_header(folder, name):
    path = folder / f"{name}.train.inter"
    path.write_text(path.read_text().replace("item_id:token", "item_id:tokn", 1))


# case -> (writer(workdir, name) -> model, arguments besides model and dataset, what the line says ({name}: the case)
FILE_CASES = {
    "behavior-without-rows": (lambda w, n: _mb(w, n, _without_cart()), SMALL,
                              "{name}.train.inter: behavior 'cart' named in config key 'behaviors': no 'cart' rows"),
    "unknown-behavior": (lambda w, n: _mb(w, n, edit=_line_replaced(5, "view", "click")), SMALL,
                         "{name}.train.inter line 5: behavior 'click' not allowed here"),
    "cut-short-last-line": (lambda w, n: _mb(w, n, edit=lambda t: t.rstrip("\n").rsplit("\t", 1)[0]), SMALL,
                            "{name}.train.inter line 18: 2 of the header's 3 columns"),
    "short-middle-line": (lambda w, n: _mb(w, n, edit=_line_replaced(5, "\tview", "")), SMALL,
                          "{name}.train.inter line 5: no behavior value (fewer columns than the header?)"),
    "header-without-type": (lambda w, n: _mb(w, n, edit=_line_replaced(1, "user_id:token", "user_id")), SMALL,
                            "{name}.train.inter line 1: column 1 'user_id' is not 'name:type'"),
    "feature-file-removed": (lambda w, n: _mm(w, n, edit=_removed("image.npy")), SMALL,
                             "modality 'image' is listed in 'modalities' but its feature file {path}/{name}.image.npy"),
    "sidecar-removed": (lambda w, n: _mm(w, n, edit=_removed("feature_items.txt")), SMALL,
                        "missing item sidecar {path}/{name}.feature_items.txt"),
    "inf-in-features": (lambda w, n: _mm(w, n, edit=_with_inf), SMALL, "{name}.text.npy row 2 (item '2') holds NaN or inf"),
    "header-unknown-type": (lambda w, n: _mm(w, n, edit=_broken_header), SMALL,
                            "{name}.train.inter line 1: column 2 'item_id:tokn' is not 'name:type'"),
    "fewer-items-than-topk": (lambda w, n: _mm(w, n), ["--epochs=1"],  # topk [10, 20]
                              "config key 'topk': 20 is more than the 7 items of dataset '{name}'"),
    "user-with-every-item": (lambda w, n: _mm(w, n, inter=TOY_INTER + [(0, 4, 0), (0, 6, 0)]), SMALL,
                             "dataset '{name}': user '0' interacted with every one of its 7 items"),
    "model-too-large": (lambda w, n: _mm(w, n), [*SMALL, "--embedding_size=200000000000"],
                        "not enough memory to build model SSR on dataset '{name}' (4 users, 7 items): it asked for "
                        "3,725.3 GiB; the size settings you gave: embedding_size=200000000000"),
}


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_bad_data_is_one_line_naming_the_file_or_key(workdir, capsys, case):
    writer, arguments, expected = FILE_CASES[case]
    model = writer(workdir, case)
    line = refusal(capsys, f"--model={model}", f"--dataset={case}", *arguments)
    assert expected.format(name=case, path=workdir / "dataset_atomic" / case) in line, line


def test_a_complete_last_line_longer_than_the_read_window_is_not_refused(tmp_path):
    long_sequence = " ".join(["7"] * 50_000)  # 100 KB: longer than the 64 KiB read from the end of the file
    path = tmp_path / "seq.inter"
    path.write_text(f"user_id:token\titem_seq:token_seq\nu1\t{long_sequence}\nu2\t{long_sequence}\n")
    check_atomic_file(str(path))
    path.write_text(f"user_id:token\titem_seq:token_seq\nu1\t{long_sequence}\nu2")
    with pytest.raises(DataError, match=r"seq.inter line 3: 1 of the header's 2 columns"):
        check_atomic_file(str(path))


# -- files written: a full disk, and diagnose's reference -------------------------------------------------
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full (a device that is always full)")
def test_a_conversion_onto_a_full_disk_is_one_line_and_leaves_nothing(workdir, capsys, monkeypatch):
    write_mmrec(workdir / "mmrec" / "toy")
    real_save = np.save

    def save_onto_full_disk(path, array):  # the features are written onto a device with no space left
        with open("/dev/full", "wb") as full:
            real_save(full, array)

    monkeypatch.setattr(mmrec.np, "save", save_onto_full_disk)
    line = refusal(capsys, "prepare", "mmrec", "--src", str(workdir / "mmrec" / "toy"), "--name", "toy")
    assert line.startswith(f"error: {workdir / 'dataset_atomic' / 'toy'}: could not be written: the disk holding ")
    assert "ran out of space" in line and "nothing half-written was left" in line
    assert os.listdir(workdir / "dataset_atomic") == []


def test_numpys_short_write_on_a_full_disk_is_named_too(tmp_path):
    with pytest.raises(DataError, match=r"ds: could not be written: the disk holding .* ran out of space"):
        with atomic_folder(str(tmp_path), "ds") as work:
            (tmp_path / os.path.basename(work) / "part").write_text("x")
            raise OSError("858880 requested and 28640 written")  # numpy's ndarray.tofile on a full disk
    assert os.listdir(tmp_path) == []


def test_diagnose_refuses_a_yaml_reference_before_loading_anything(workdir, capsys):
    checkpoint = workdir / "model.pth"
    torch.save({"format": "recbole-spectral/1", "config": {"model": "SSR", "dataset": "ml-100k-mm"}, "state_dict": {}},
               checkpoint)
    (workdir / "ref.yaml").write_text("epochs: 1\n")
    line = refusal(capsys, "diagnose", f"--model_file={checkpoint}", "--reference_file=ref.yaml")
    assert line == "error: ref.yaml is not a recbole-spectral checkpoint: it starts with b'epochs: 1\\n', not a torch zip archive"


# -- a real process: nothing before the line --------------------------------------------------------------
def test_in_a_real_process_the_refusal_is_the_only_line(workdir):
    # nothing at import, no configuration dump, no warning: the data had to be loaded to find this one
    write_toy(workdir, name="mb")
    train = workdir / "dataset_atomic" / "mb" / "mb.train.inter"
    train.write_text(_line_replaced(5, "view", "click")(train.read_text()))
    done = run_cli("--model=SpectraMB", "--dataset=mb", *SMALL, cwd=workdir)
    assert done.returncode == 2 and done.stdout == "", done.stdout + done.stderr
    assert done.stderr == (f"error: {train} line 5: behavior 'click' not allowed here; expected one of "
                           "['view', 'cart', 'buy'] (config key 'behaviors')\n")


# -- library warnings ------------------------------------------------------------------------------------
WARNING_TEXTS = [message for message, _, _ in KNOWN_HARMLESS_WARNINGS]


@contextlib.contextmanager
def recorded_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def test_without_the_filters_a_one_epoch_run_prints_the_four(workdir):
    # torch prints two of them once per process: a fresh process shows whether a run prints them
    _mm(workdir, "mm")
    unfiltered = ("import sys; import recbole_spectral.quick_start as q; q.KNOWN_HARMLESS_WARNINGS = (); "
                  "from recbole_spectral.cli import main; sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", unfiltered, "--model=SSR", "--dataset=mm", *SMALL], cwd=workdir,
                          capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert [text for text in WARNING_TEXTS if text in done.stderr] == WARNING_TEXTS


def test_the_silencing_is_narrow():
    with recorded_warnings() as caught:
        silence_known_warnings()
        warnings.warn_explicit(WARNING_TEXTS[0], UserWarning, "x.py", 1, module="recbole_spectral.layers.graph")
        warnings.warn_explicit(WARNING_TEXTS[0], UserWarning, "x.py", 1, module="my_project.graphs")  # another module
        warnings.warn_explicit("Sparse tensors are slow", UserWarning, "x.py", 1, module="recbole_spectral.layers.graph")
        warnings.warn_explicit(WARNING_TEXTS[2], DeprecationWarning, "x.py", 1, module="recbole.trainer.trainer")
    assert [(str(w.message), w.category) for w in caught] == [
        (WARNING_TEXTS[0], UserWarning), ("Sparse tensors are slow", UserWarning), (WARNING_TEXTS[2], DeprecationWarning)]


def test_a_one_epoch_run_on_the_shipped_defaults_prints_none_of_them(workdir):
    done = run_cli("--model=SSR", "--dataset=ml-100k-mm", "--epochs=1", cwd=workdir)
    assert done.returncode == 0, done.stderr[-2000:]
    printed = done.stdout + done.stderr
    assert not [text for text in WARNING_TEXTS if text in printed]
    assert "Warning:" not in printed  # nor any other library warning
    # the configuration dump is still printed, once the data and the model are built
    assert "General Hyper Parameters:" in done.stderr and "test result" in done.stdout
