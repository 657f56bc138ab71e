"""Hyperparameter search: RecBole params files, hyperopt through the tune command, Ray Tune on CPU."""
import csv
import json
import math
import subprocess
import sys

import pytest
import yaml

from recbole_spectral.errors import ConfigError
from recbole_spectral.tuning.space import (
    check_algo,
    grid_size,
    parse_params_file,
    plain_params,
)
from tests.helpers import ROOT, run_cli

FIXED = ["--epochs=1", "--eval_batch_size=100000", "--train_batch_size=8192", "--use_gpu=False"]


def test_params_file_in_recboles_format(tmp_path):
    path = tmp_path / "space.hyper"
    path.write_text("learning_rate loguniform -8,-4\nembedding_size choice [32, 64]\n\n"
                    "reg_weight uniform 0.0,0.01   # a comment\nn_layers quniform 1,3,1\n")
    assert parse_params_file(path) == [
        ("learning_rate", "loguniform", (-8.0, -4.0)),
        ("embedding_size", "choice", ([32, 64],)),
        ("reg_weight", "uniform", (0.0, 0.01)),
        ("n_layers", "quniform", (1.0, 3.0, 1.0)),
    ]
    # integral quniform samples are integers in the config (n_layers 2, not 2.0)
    assert plain_params(parse_params_file(path), {"n_layers": 2.0, "reg_weight": 0.005}) == {"n_layers": 2, "reg_weight": 0.005}
    with pytest.raises(ConfigError, match="exhaustive search needs 'choice' parameters only; learning_rate"):
        check_algo(parse_params_file(path), "exhaustive")


@pytest.mark.parametrize("line, message", [
    ("learning_rate normal 0,1", "line 2: unknown type 'normal'"),
    ("embedding_size choice 64", "line 2: choice needs a non-empty list"),
    ("reg_weight uniform 1", "line 2: uniform needs low,high"),
    ("learning_rate", "line 2: expected '<name>"),
])
def test_bad_params_lines_are_named(tmp_path, line, message):
    path = tmp_path / "bad.hyper"
    path.write_text(f"n_layers choice [1,2]\n{line}\n")
    with pytest.raises(ConfigError, match=message):
        parse_params_file(path)


def test_shipped_spaces_use_the_models_hyperparameters():
    import yaml

    for model in ("SpectraMB", "SSR"):
        space = parse_params_file(ROOT / "properties" / "tuning" / f"{model}.hyper")
        defaults = yaml.safe_load((ROOT / "properties" / "model" / f"{model}.yaml").read_text())
        # every tuned name is a hyperparameter the model reads (learning_rate is RecBole's)
        assert {p[0] for p in space} - {"learning_rate"} <= set(defaults), model
    ssr = parse_params_file(ROOT / "properties" / "tuning" / "SSR.hyper")
    # RecBole's own parser reads them too
    from recbole.trainer.hyper_tuning import HyperTuning

    assert set(HyperTuning._build_space_from_file(str(ROOT / "properties" / "tuning" / "SSR.hyper"))) == {p[0] for p in ssr}
    assert grid_size([p for p in ssr if p[1] == "choice"]) == 12


def test_two_trial_hyperopt_search_through_the_tune_command(workdir):
    (workdir / "lr.hyper").write_text("learning_rate choice [0.01,0.0001]\n")
    proc = run_cli("tune", "--model=BPR", "--dataset=ml-100k", "--params_file=lr.hyper", "--algo=exhaustive",
                   "--output_dir=out", *FIXED, cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "trial 1: {'learning_rate': " in proc.stdout and "trial 2: {'learning_rate': " in proc.stdout
    assert "2 of 2 trials finished" in proc.stdout

    out = workdir / "out"
    with open(out / "trials.csv", newline="") as fp:
        trials = list(csv.DictReader(fp))
    assert sorted((t["learning_rate"], t["status"]) for t in trials) == [("0.0001", "ok"), ("0.01", "ok")]
    best = yaml.safe_load((out / "best_params.yaml").read_text())
    scores = {t["learning_rate"]: float(t["best_valid_score"]) for t in trials}
    assert best["best_valid_score"] == max(scores.values())
    assert best["best_params"] == {"learning_rate": float(max(scores, key=scores.get))}
    assert best["model"] == "BPR" and best["backend"] == "hyperopt" and best["valid_metric"] == "NDCG@10"
    assert set(best["test_result"]) >= {"recall@10", "ndcg@10"}
    results = (out / "results.txt").read_text()  # RecBole's export_result format
    assert results.startswith(f"learning_rate:{trials[0]['learning_rate']}\nValid result:\nrecall@10 : ")
    assert results.count("Test result:") == 2
    assert "plotly" in (out / "tuning.html").read_text()[:5000].lower()


def test_a_failing_trial_is_recorded_and_the_search_goes_on(workdir):
    from recbole_spectral.tuning import tune_hyperopt

    (workdir / "space.hyper").write_text("embedding_size choice [16,-4]\n")  # -4 fails the config check
    summary = tune_hyperopt("Pop", "ml-100k", str(workdir / "space.hyper"), "exhaustive", None, 10,
                            config_dict={"epochs": 1, "eval_batch_size": 100000, "state": "ERROR"},
                            output_dir=str(workdir / "out"))
    assert summary["trials"] == 2 and summary["finished"] == 1 and summary["best_params"] == {"embedding_size": 16}
    with open(workdir / "out" / "trials.csv", newline="") as fp:
        rows = {r["embedding_size"]: r for r in csv.DictReader(fp)}
    assert rows["16"]["status"] == "ok" and rows["-4"]["status"] == "failed"
    assert rows["-4"]["error"].startswith("ConfigError: config key 'embedding_size'")


def test_bad_tune_input_is_one_line(workdir, capsys):
    from recbole_spectral.cli import main

    (workdir / "lr.hyper").write_text("learning_rate uniform 0.001,0.01\n")
    assert main(["tune", "--model=BPR", "--dataset=ml-100k", "--params_file=lr.hyper", "--algo=exhaustive"]) == 2
    err = capsys.readouterr().err
    assert "exhaustive search needs 'choice' parameters only" in err and len(err.strip().splitlines()) == 1
    assert main(["tune", "--model=BPR", "--dataset=ml-100k", "--params_file=missing.hyper"]) == 2
    assert "params file 'missing.hyper' does not exist" in capsys.readouterr().err


def test_two_trial_ray_tune_search_on_cpu(workdir):
    pytest.importorskip("ray")
    (workdir / "space.hyper").write_text("learning_rate loguniform -4.7,-4.5\nembedding_size choice [16,32]\n")
    proc = run_cli("tune", "--backend=ray", "--algo=random", "--max_evals=2", "--num_cpus=2", "--model=BPR",
                   "--dataset=ml-100k", "--params_file=space.hyper", "--output_dir=ray-out", "--grace_period=1",
                   "--epochs=2", *FIXED[1:], cwd=workdir)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    out = workdir / "ray-out"
    with open(out / "trials.csv", newline="") as fp:
        trials = list(csv.DictReader(fp))
    assert len(trials) == 2
    # trials report every epoch, so ASHA may stop the weaker one after its first epoch
    assert {t["status"] for t in trials} <= {"ok", "pruned"} and "ok" in {t["status"] for t in trials}
    for t in trials:
        assert math.exp(-4.7) <= float(t["learning_rate"]) <= math.exp(-4.5)
        assert t["embedding_size"] in ("16", "32")
    best = yaml.safe_load((out / "best_params.yaml").read_text())
    assert best["backend"] == "ray" and set(best["test_result"]) >= {"recall@10", "ndcg@10"}
    # the trials ran in Ray's own trial folders (RecBole's log/ is there, not in this cwd) and reported
    # the validation score after every epoch, then a final result with the test metrics
    reports = {d.name: [json.loads(line) for line in (d / "result.json").read_text().splitlines()]
               for d in (out / "ray").glob("ray_trial_*")}
    assert len(reports) == 2 and all((out / "ray" / name / "log").is_dir() for name in reports)
    assert not (workdir / "log").exists()
    finished = [r for r in reports.values() if r[-1].get("finished")]
    assert finished and [r.get("epoch") for r in finished[0]] == [1, 2, None]
    assert sorted(r[-1]["test/recall@10"] for r in finished) == sorted(
        float(t["test_recall@10"]) for t in trials if t["status"] == "ok")
    assert best["best_valid_score"] == max(r[-1]["valid_score"] for r in finished)


def test_ray_is_imported_only_on_the_ray_path():
    code = ("import sys, recbole_spectral.tuning, recbole_spectral.compare, recbole_spectral.distributed, "
            "recbole_spectral.cli; assert 'ray' not in sys.modules, 'ray imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
