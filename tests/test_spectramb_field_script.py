"""benchmarks/spectramb_field.py without training: a longer seed list of a variant starts from the finished
runs of its other seed lists, so the 3-seed ablations do not repeat the grid's seed 2020."""
import csv
import json

import pytest

from recbole_spectral.compare import read_rows
from tests.helpers import load_benchmark


def load_script():
    return load_benchmark("spectramb_field")


def write_runs(folder, rows):
    folder.mkdir(parents=True)
    with open(folder / "runs.csv", "w", newline="") as fp:
        writer = csv.DictWriter(fp, fieldnames=["run", "model", "seed", "status", "settings_key", "test_hit@10",
                                            "best_epoch", "epochs_run"])
        writer.writeheader()
        writer.writerows(rows)


def test_new_seed_list_starts_from_finished_runs_of_the_same_variant_only(tmp_path):
    script = load_script()
    write_runs(tmp_path / "v1234-seeds-2020", [
        {"run": 1, "model": "SpectraMB", "seed": 2020, "status": "ok", "settings_key": "a", "test_hit@10": 0.3}])
    write_runs(tmp_path / "v1234-seeds-2021", [
        {"run": 1, "model": "SpectraMB", "seed": 2021, "status": "error", "settings_key": "b", "test_hit@10": ""}])
    write_runs(tmp_path / "v9999-seeds-2022", [
        {"run": 1, "model": "SpectraMB", "seed": 2022, "status": "ok", "settings_key": "c", "test_hit@10": 0.1}])
    target = tmp_path / "v1234-seeds-2020-2021-2022"
    script.start_from_other_seed_lists(str(target))
    rows = read_rows(str(target))
    assert [(r["seed"], r["status"], r["settings_key"], r["test_hit@10"]) for r in rows] == [(2020, "ok", "a", 0.3)]


def test_an_existing_runs_file_is_left_alone(tmp_path):
    script = load_script()
    write_runs(tmp_path / "default-seeds-2020", [
        {"run": 1, "model": "SpectraMB", "seed": 2020, "status": "ok", "settings_key": "a", "test_hit@10": 0.3}])
    write_runs(tmp_path / "default-seeds-2020-2021", [
        {"run": 1, "model": "SpectraMB", "seed": 2021, "status": "ok", "settings_key": "b", "test_hit@10": 0.2}])
    script.start_from_other_seed_lists(str(tmp_path / "default-seeds-2020-2021"))
    assert [r["seed"] for r in read_rows(str(tmp_path / "default-seeds-2020-2021"))] == [2021]


def test_nothing_is_written_without_earlier_runs(tmp_path):
    script = load_script()
    script.start_from_other_seed_lists(str(tmp_path / "default-seeds-2020-2021-2022"))
    assert not (tmp_path / "default-seeds-2020-2021-2022").exists()


def test_runs_of_seeds_outside_the_new_list_are_not_copied(tmp_path):
    script = load_script()
    write_runs(tmp_path / "default-seeds-2020-2021-2022", [
        {"run": n, "model": "SpectraMB", "seed": seed, "status": "ok", "settings_key": key, "test_hit@10": 0.3}
        for n, (seed, key) in enumerate([(2020, "a"), (2021, "b"), (2022, "c")], 1)])
    script.start_from_other_seed_lists(str(tmp_path / "default-seeds-2021"))
    assert [r["seed"] for r in read_rows(str(tmp_path / "default-seeds-2021"))] == [2021]


def test_the_report_reads_each_variant_from_its_compare_folder(tmp_path):
    script = load_script()
    write_runs(tmp_path / "taobao-15k" / "runs" / "v1234-seeds-2020-2021-2022", [
        {"run": 1, "model": "SpectraMB", "seed": 2020, "status": "ok", "settings_key": "a", "test_hit@10": 0.3}])
    meta_dir = tmp_path / "taobao-15k" / "ablations"
    meta_dir.mkdir(parents=True)
    for label, folder in (("mean fusion", "v1234-seeds-2020-2021-2022"), ("1 layer", "v5678-seeds-2020-2021-2022")):
        (meta_dir / f"{script.slug(label)}.json").write_text(json.dumps(
            {"part": "ablations", "dataset": "taobao-15k", "label": label, "order": 0, "seeds": [2020, 2021, 2022],
             "run_dir": f"taobao-15k/runs/{folder}", "command": "python benchmarks/spectramb_field.py"}))
    entries = {e["label"]: e for e in script.collect(str(tmp_path))}
    assert [r["test_hit@10"] for r in entries["mean fusion"]["rows"]] == [0.3] and entries["1 layer"]["rows"] == []
    lines = script.table(list(entries.values()))
    assert any(line.startswith("| mean fusion | 1/3 | ") for line in lines)
    assert any(line.startswith("| 1 layer | 0/3 | — |") for line in lines)


def test_the_report_shows_a_one_seed_variant_from_the_same_settings_longer_seed_list(tmp_path):
    """The grid's seed-2020 row of a variant whose 3-seed ablation ran first (same settings, other folder)."""
    script = load_script()
    write_runs(tmp_path / "taobao-15k" / "runs" / "v1234-seeds-2020-2021-2022", [
        {"run": n, "model": "SpectraMB", "seed": seed, "status": "ok", "settings_key": "a", "test_hit@10": hit}
        for n, (seed, hit) in enumerate([(2020, 0.31), (2021, 0.32)], 1)])
    meta_dir = tmp_path / "taobao-15k" / "grid"
    meta_dir.mkdir(parents=True)
    (meta_dir / "view-softmax.json").write_text(json.dumps(
        {"part": "grid", "dataset": "taobao-15k", "label": "view softmax", "order": 0, "seeds": [2020],
         "run_dir": "taobao-15k/runs/v1234-seeds-2020", "command": "python benchmarks/spectramb_field.py"}))
    (entry,) = script.collect(str(tmp_path))
    assert [(r["seed"], r["test_hit@10"]) for r in entry["rows"]] == [(2020, 0.31)]


def test_robustness_on_a_dataset_that_is_not_converted_stops_with_one_line(monkeypatch, tmp_path):
    script = load_script()
    monkeypatch.setenv("RECBOLE_SPECTRAL_DATA", str(tmp_path))
    with pytest.raises(SystemExit, match="dataset 'taobao-15k' has no 'behaviors'") as stop:
        script.auxiliary_behaviors("taobao-15k")
    assert str(tmp_path) in str(stop.value) and "\n" not in str(stop.value)


def test_the_parts_stay_based_at_three_layers_and_one_layer_is_the_yaml_default(tmp_path):
    """The grid, ablations and robustness runs were made at the official depth before validation picked 1 layer
    for the YAML: every variant without a config file runs at 3 layers unless it sets n_layers itself, and the
    1-layer rows are the YAML default (the "default" compare folder); options are also checked at 1 layer."""
    script = load_script()

    class Args:
        out_dir = str(tmp_path)

    for part in ("grid", "ablations"):
        for label, overrides, files in script.variants(part, "ml-100k-mb", "ml-100k-mb"):
            effective = script.effective_overrides("ml-100k-mb", overrides, files)
            folder = script.run_dir(Args, "ml-100k-mb", effective, files, [2020])
            if files:  # the official recipe file sets 3 layers itself
                assert "n_layers" not in overrides, label
            elif overrides.get("n_layers") == 1 and "(vs the YAML default)" in label:  # an option at the default depth
                assert len(effective) == 1 and "n_layers" not in effective, label
            elif overrides.get("n_layers") == 1 and label.startswith(("1 layer", "YAML default")):
                assert effective == {} and folder.endswith("default-seeds-2020"), label
            elif "previous defaults" not in label:
                assert effective["n_layers"] in (2, 3), label
                assert not folder.endswith("default-seeds-2020"), label


def test_robustness_runs_on_the_three_layer_base_and_again_on_the_yaml_default(monkeypatch, tmp_path):
    """Each robustness variant is made twice: on the 3-layer base and at the YAML default's 1 layer; there,
    noise 0 % is the YAML default itself (it reuses the default's runs)."""
    script = load_script()
    monkeypatch.setattr(script, "auxiliary_behaviors", lambda dataset: ["view", "cart"])

    class Args:
        out_dir = str(tmp_path)

    rows = list(script.variants("robustness", "ml-100k-mb", "ml-100k-mb"))
    labels = [label for label, _, _ in rows]
    base = ["noise 0 % on every auxiliary behavior", "noise 10 % on every auxiliary behavior",
            "noise 30 % on every auxiliary behavior", "noise 50 % on every auxiliary behavior",
            "without view", "without cart"]
    assert labels == base + ["1 layer, " + label for label in base]
    for label, overrides, files in rows:
        effective = script.effective_overrides("ml-100k-mb", overrides, files)
        folder = script.run_dir(Args, "ml-100k-mb", effective, files, [2020])
        if label.startswith("1 layer, noise 0 %"):
            assert effective == {} and folder.endswith("default-seeds-2020"), label
        elif label.startswith("1 layer, "):
            assert "n_layers" not in effective and len(effective) == 1, (label, effective)
        else:
            assert effective["n_layers"] == 3, label
