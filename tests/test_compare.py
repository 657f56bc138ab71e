"""Side-by-side comparisons: models x seeds, one split, CSV + Markdown + PNG, failures recorded."""
import csv
import statistics
import subprocess
import sys

import pytest
import yaml
from recbole.model.general_recommender.bpr import BPR

from recbole_spectral.compare import _model_digest, compare_models
from tests.helpers import FAST, ROOT

SETTINGS = {**FAST, "train_batch_size": 8192}


class ExplodingBPR(BPR):
    """A model that fails in its first training batch."""

    def calculate_loss(self, interaction):
        raise RuntimeError("boom in calculate_loss\nsecond line is not recorded")


def read_csv(path):
    with open(path, newline="") as fp:
        return list(csv.DictReader(fp))


def test_bpr_lightgcn_two_seeds_and_a_failing_model(workdir, capsys):
    out = workdir / "results"
    rows = compare_models(["BPR", "LightGCN", ExplodingBPR], "ml-100k", seeds=[2020, 2021],
                          config_dict=SETTINGS, out_dir=str(out),
                          # a class outside RecBole has no model YAML: its settings come per model
                          per_model_config={"ExplodingBPR": {"embedding_size": 64}})

    # progress names the run and the epoch
    progress = capsys.readouterr().out
    for line in ["[1/6] BPR seed=2020 started", "[3/6] LightGCN seed=2020 epoch 1/1: train",
                 "[4/6] LightGCN seed=2021 epoch 1: valid NDCG@10", "[5/6] ExplodingBPR seed=2020 failed"]:
        assert line in progress
    assert "Traceback" not in progress

    # every run is a row, in order; the failing model is recorded and the others complete
    table = read_csv(out / "runs.csv")
    assert [(r["model"], r["seed"], r["status"]) for r in table] == [
        ("BPR", "2020", "ok"), ("BPR", "2021", "ok"), ("LightGCN", "2020", "ok"), ("LightGCN", "2021", "ok"),
        ("ExplodingBPR", "2020", "failed"), ("ExplodingBPR", "2021", "failed"),
    ]
    assert [r["status"] for r in rows] == [r["status"] for r in table]
    for row in table[4:]:
        assert row["error"] == "RuntimeError: boom in calculate_loss"
        assert row["test_recall@10"] == ""
    assert "boom in calculate_loss" in (out / "errors.log").read_text()
    for row in table[:4]:
        assert row["error"] == ""
        assert 0.0 <= float(row["test_recall@20"]) <= 1.0 and 0.0 <= float(row["test_ndcg@10"]) <= 1.0
        assert row["best_epoch"] == "1" and row["epochs_run"] == "1"
        assert float(row["epoch_time_s"]) > 0 and float(row["total_time_s"]) >= float(row["epoch_time_s"])
    # BPR and LightGCN both have one user and one item embedding table: (943 + 1 + 1682 + 1) * 64
    assert {row["n_params"] for row in table[:4]} == {str((944 + 1683) * 64)}
    # different seeds give different models
    assert table[0]["test_ndcg@10"] != table[1]["test_ndcg@10"]

    # the Markdown table: mean ± std over seeds, the best mean of each metric in bold
    summary = (out / "summary.md").read_text()
    lines = summary.splitlines()
    header = next(line for line in lines if line.startswith("| model"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns[:4] == ["model", "runs ok", "recall@10", "recall@20"]
    assert columns[-5:] == ["best valid score", "best epoch", "epoch time (s)", "total time (s)", "params"]
    by_model = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
                for line in lines if line.startswith("| ") and not line.startswith("| model")}
    assert by_model["ExplodingBPR"][1] == "0/2" and by_model["BPR"][1] == "2/2"
    ndcg = columns.index("ndcg@10")
    values = [float(r["test_ndcg@10"]) for r in table[2:4]]
    expected = f"{statistics.fmean(values):.4f} ± {statistics.stdev(values):.4f}"
    lightgcn_wins = statistics.fmean(values) > statistics.fmean(float(r["test_ndcg@10"]) for r in table[:2])
    assert by_model["LightGCN"][ndcg] == (f"**{expected}**" if lightgcn_wins else expected)
    for index in range(2, columns.index("best valid score") + 1):
        assert sum(cells[index].startswith("**") for cells in by_model.values()) == 1, columns[index]
    assert "- ExplodingBPR seed 2020: RuntimeError: boom in calculate_loss" in summary

    # the chart is a real PNG image
    import matplotlib.image

    image = matplotlib.image.imread(out / "chart.png")
    assert image.shape[0] > 200 and image.shape[1] > 400


def test_cli_records_a_failed_run_and_exits_1(workdir):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run_recbole_spectral.py"), "compare", "--models=NoSuchModel",
         "--dataset=ml-100k", "--seeds=7", "--out_dir=cmp"],
        cwd=workdir, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "[1/1] NoSuchModel seed=7 failed" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    rows = read_csv(workdir / "cmp" / "runs.csv")
    assert [r["status"] for r in rows] == ["failed"]
    assert rows[0]["error"].startswith("SpectralError: unknown model 'NoSuchModel'")
    assert "NoSuchModel | 0/1" in (workdir / "cmp" / "summary.md").read_text()
    assert (workdir / "cmp" / "chart.png").is_file()


def test_bad_seeds_are_a_one_line_error(workdir):
    from recbole_spectral.cli import main

    with pytest.raises(SystemExit):
        main(["compare", "--dataset=ml-100k"])  # --models is required (argparse exits)
    assert main(["compare", "--models=BPR", "--dataset=ml-100k", "--seeds=a,b"]) == 2


def test_cold_start_metrics_match_a_hand_computation(workdir):
    import numpy as np
    import torch

    from recbole_spectral.config import SpectralConfig
    from recbole_spectral.quick_start import build_run

    config = SpectralConfig("BPR", "ml-100k", config_dict={**SETTINGS, "cold_start_threshold": 30})
    _, (train_data, valid_data, test_data), model, trainer = build_run(config)
    trainer.fit(train_data, valid_data, verbose=False)
    result = trainer.evaluate(test_data)
    assert [k for k in result if k.startswith("cold_")] == [f"cold_{k}" for k in result if not k.startswith("cold_")]

    # by hand: rank all items for each test user, history masked, over all users and over cold users
    dataset = train_data._dataset
    counts = np.bincount(dataset.inter_feat[dataset.uid_field].numpy(), minlength=dataset.user_num)
    recall, hit, cold = [], [], []
    model.eval()
    with torch.no_grad():
        for interaction, history_index, positive_u, positive_i in test_data:
            scores = model.full_sort_predict(interaction).view(-1, dataset.item_num)
            scores[:, 0] = -np.inf
            scores[history_index] = -np.inf
            top = scores.topk(10, dim=1).indices
            for row, user in enumerate(interaction[dataset.uid_field].tolist()):
                positives = set(positive_i[positive_u == row].tolist())
                hits = len(positives & set(top[row].tolist()))
                recall.append(hits / len(positives))
                hit.append(float(hits > 0))
                cold.append(counts[user] <= 30)
    cold = np.array(cold)
    assert 0 < cold.sum() < len(cold)  # ml-100k users have >= 20 ratings, 80% of them train
    assert result["recall@10"] == pytest.approx(np.mean(recall), abs=5e-5)
    assert result["cold_recall@10"] == pytest.approx(np.mean(np.array(recall)[cold]), abs=5e-5)
    assert result["cold_hit@10"] == pytest.approx(np.mean(np.array(hit)[cold]), abs=5e-5)

    # a threshold above every user makes the cold columns the overall ones; below every user, none
    trainer.evaluator.threshold = int(counts.max())
    everyone = trainer.evaluate(test_data, load_best_model=False)
    assert all(everyone[f"cold_{k}"] == everyone[k] for k in everyone if not k.startswith("cold_"))
    trainer.evaluator.threshold = 0
    nobody = trainer.evaluate(test_data, load_best_model=False)
    assert np.isnan(nobody["cold_recall@10"]) and nobody["recall@10"] == everyone["recall@10"]


def test_cold_start_threshold_must_be_a_count(workdir):
    from recbole_spectral.config import SpectralConfig
    from recbole_spectral.errors import ConfigError
    from recbole_spectral.quick_start import build_run

    with pytest.raises(ConfigError, match="cold_start_threshold"):
        build_run(SpectralConfig("Pop", "ml-100k", config_dict={**SETTINGS, "cold_start_threshold": -1}))


def test_rows_are_written_as_runs_end_and_resume_skips_finished_runs(workdir, capsys):
    out = workdir / "resumable"

    class StopAfterFirstRun(BPR):
        def calculate_loss(self, interaction):
            if (out / "runs.csv").is_file():  # the first run's row is already on disk
                raise KeyboardInterrupt
            return super().calculate_loss(interaction)

    with pytest.raises(KeyboardInterrupt):  # an interrupted comparison keeps what finished
        compare_models([StopAfterFirstRun], "ml-100k", seeds=[2020, 2021], config_dict=SETTINGS, out_dir=str(out),
                       per_model_config={"StopAfterFirstRun": {"embedding_size": 64}})
    first = read_csv(out / "runs.csv")
    assert [(r["model"], r["seed"], r["status"]) for r in first] == [("StopAfterFirstRun", "2020", "ok")]
    assert first[0]["model_file"].endswith(".pth") and len(first[0]["settings_key"]) == 12

    capsys.readouterr()
    rows = compare_models(["BPR"], "ml-100k", seeds=[2020], config_dict=SETTINGS, out_dir=str(out))
    assert [r["model"] for r in read_csv(out / "runs.csv")] == ["BPR"]  # without resume: a new table
    again = compare_models(["BPR"], "ml-100k", seeds=[2020, 2021], config_dict=SETTINGS, out_dir=str(out), resume=True)
    progress = capsys.readouterr().out
    assert "[1/2] BPR seed=2020: finished earlier with these settings (resume)" in progress
    assert "[2/2] BPR seed=2021 started" in progress
    assert again[0]["test_ndcg@10"] == pytest.approx(rows[0]["test_ndcg@10"])
    changed = compare_models(["BPR"], "ml-100k", seeds=[2020], config_dict={**SETTINGS, "learning_rate": 0.01},
                             out_dir=str(out), resume=True)
    assert "BPR seed=2020 started" in capsys.readouterr().out  # other settings: run again
    assert changed[0]["settings_key"] != again[0]["settings_key"]


def test_the_settings_key_follows_the_shipped_model_defaults(tmp_path, monkeypatch):
    from recbole_spectral import compare, paths

    yaml_file = tmp_path / "SpectraMB.yaml"
    monkeypatch.setattr(paths, "model_properties_file", lambda model: yaml_file)
    yaml_file.write_text("n_layers: 1\n")
    before = compare.settings_key("SpectraMB", "ml-100k-mb", 2020, 2020, None, {"epochs": 5})
    assert compare.settings_key("SpectraMB", "ml-100k-mb", 2020, 2020, None, {"epochs": 5}) == before
    yaml_file.write_text("# why one layer\nn_layers:   1   # a comment\n")  # comments and layout: the same run
    assert compare.settings_key("SpectraMB", "ml-100k-mb", 2020, 2020, None, {"epochs": 5}) == before
    yaml_file.write_text("n_layers: 3\n")  # a changed default is another run: resume must not reuse the old one
    assert compare.settings_key("SpectraMB", "ml-100k-mb", 2020, 2020, None, {"epochs": 5}) != before


def test_an_add_on_left_off_does_not_change_the_settings_key(tmp_path, monkeypatch):
    from recbole_spectral import compare, paths

    yaml_file, recipe = tmp_path / "MuLe.yaml", tmp_path / "history-term.yaml"
    monkeypatch.setattr(paths, "model_properties_file", lambda model: yaml_file)
    recipe.write_text("history_term: True\n")
    yaml_file.write_text("gnn_layers: 1\n")
    before = compare.settings_key("MuLe", "ml-100k-mb", 2020, 2020, None, {"epochs": 5})
    before_on = compare.settings_key("MuLe", "ml-100k-mb", 2020, 2020, None, {"epochs": 5, "history_term": True})
    # shipping the history and cascade terms (off) keeps the runs that left them off
    yaml_file.write_text("gnn_layers: 1\nhistory_term: False\nhistory_term_init: 1.0\ncascade_term: False\ncascade_term_top_k: 100\n")
    assert compare.settings_key("MuLe", "ml-100k-mb", 2020, 2020, None, {"epochs": 5}) == before
    # switched on, by a setting or a recipe file, its keys define the run
    on = compare.settings_key("MuLe", "ml-100k-mb", 2020, 2020, None, {"epochs": 5, "history_term": True})
    assert on != before_on and on != before
    assert compare.settings_key("MuLe", "ml-100k-mb", 2020, 2020, [str(recipe)], {"epochs": 5}) != before
    yaml_file.write_text("gnn_layers: 1\nhistory_term: False\nhistory_term_init: 0.5\ncascade_term: False\ncascade_term_top_k: 50\n")
    assert compare.settings_key("MuLe", "ml-100k-mb", 2020, 2020, None, {"epochs": 5}) == before
    assert compare.settings_key("MuLe", "ml-100k-mb", 2020, 2020, None, {"epochs": 5, "history_term": True}) != on


def test_resumed_calls_on_other_models_share_one_table(tmp_path, capsys):
    out = str(tmp_path / "shared")
    compare_models(["Pop"], "ml-100k", seeds=[2020], config_dict=SETTINGS, out_dir=out, resume=True)
    compare_models(["ItemKNN"], "ml-100k", seeds=[2020], config_dict=SETTINGS, out_dir=out, resume=True)
    table = read_csv(tmp_path / "shared" / "runs.csv")
    assert [(r["run"], r["model"], r["seed"]) for r in table] == [("1", "Pop", "2020"), ("2", "ItemKNN", "2020")]
    again = compare_models(["Pop"], "ml-100k", seeds=[2020], config_dict=SETTINGS, out_dir=out, resume=True)
    assert "Pop seed=2020: finished earlier" in capsys.readouterr().out
    assert [r["model"] for r in again] == ["Pop"]  # this call's rows; the table keeps ItemKNN's
    assert [r["model"] for r in read_csv(tmp_path / "shared" / "runs.csv")] == ["ItemKNN", "Pop"]


def test_an_add_on_option_left_off_keeps_a_runs_key(tmp_path):
    # shipping a new option of an add-on (off) must not turn earlier runs of that add-on into new runs
    before = {"learning_rate": 0.01, "cascade_term": True, "cascade_term_top_k": 100}
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(yaml.safe_dump(before))
    new.write_text(yaml.safe_dump({**before, "cascade_term_stages": False}))
    assert _model_digest(new, [], {}) == _model_digest(old, [], {})
    assert _model_digest(new, [], {"cascade_term_stages": True}) != _model_digest(old, [], {})
