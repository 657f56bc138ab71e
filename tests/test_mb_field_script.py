"""benchmarks/mb_field.py without training: its rows name resolvable models with declared settings, and its
results file puts published figures beside measured ones from compare's runs.csv."""
import csv

from recbole_spectral import registry
from tests.helpers import load_benchmark


def load_script():
    return load_benchmark("mb_field")


def test_rows_resolve_and_stop_early_with_patience_of_ten_evaluations():
    script = load_script()
    labels = [label for label, *_ in script.ROWS]
    assert labels == ["HistoryPop", "CascadingRank", "LightGCN (target only)", "LightGCN (all behaviors)",
                      "CRGCN", "MB-CGCN", "MuLe", "SpectraMB", "SpectraMB, 3 layers",
                      "SpectraMB, paper model"]
    for _, model, _, _ in script.ROWS:
        registry.get_model(model)
    assert script.COMMON["stopping_step"] >= 10 and script.COMMON["epochs"] >= 500
    assert script.COMMON["valid_metric"] == "Hit@10" and script.COMMON["topk"] == [10, 20]


def test_results_file_has_measured_and_published_figures(tmp_path):
    script = load_script()
    row_dir = tmp_path / "taobao-15k" / script.slug("CRGCN")
    row_dir.mkdir(parents=True)
    with open(row_dir / "runs.csv", "w", newline="") as fp:
        writer = csv.DictWriter(fp, fieldnames=["run", "model", "seed", "status", "best_epoch", "epochs_run",
                                                "epoch_time_s", "total_time_s", "test_hit@10", "test_ndcg@10",
                                                "test_hit@20", "test_ndcg@20"])
        writer.writeheader()
        for seed, hr in ((2020, 0.10), (2021, 0.12)):
            writer.writerow({"run": 1, "model": "CRGCN", "seed": seed, "status": "ok", "best_epoch": 20,
                             "epochs_run": 31, "epoch_time_s": 13.0, "total_time_s": 500, "test_hit@10": hr,
                             "test_ndcg@10": 0.05, "test_hit@20": 0.2, "test_ndcg@20": 0.07})
    out = tmp_path / "mb_field.md"
    script.write_results(tmp_path, ["taobao-15k"], "python benchmarks/mb_field.py", out)
    text = out.read_text()
    crgcn = next(line for line in text.splitlines() if line.startswith("| CRGCN |"))
    assert "2 (2020, 2021)" in crgcn and "0.1100 ± 0.0141" in crgcn and "0.0855 / 0.0439" in crgcn
    assert "31 (20)/31 (20)" in crgcn
    assert "| MuLe | 0 |" in text and "0.1918 / 0.1103" in text and "python benchmarks/mb_field.py" in text


def test_training_free_rows_run_one_seed_and_learned_rows_every_seed(tmp_path, monkeypatch):
    import recbole_spectral.compare as compare

    script = load_script()
    calls = {}
    monkeypatch.setattr(compare, "compare_models",
                        lambda models, dataset, seeds, **kwargs: calls.__setitem__(models[0], list(seeds)))
    script.run_rows("taobao-15k", [2020, 2021, 2022], tmp_path, ["HistoryPop", "CascadingRank", "CRGCN"])
    assert calls == {"HistoryPop": [2020], "CascadingRank": [2020], "CRGCN": [2020, 2021, 2022]}
