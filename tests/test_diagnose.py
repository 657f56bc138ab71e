"""``diagnose``: figures, numbers and an index from a checkpoint, without retraining; bad input is one line."""
import json
import math

import pytest
import torch

from recbole_spectral.cli import main as cli_main
from recbole_spectral.diagnose import diagnose
from recbole_spectral.errors import CheckpointError
from recbole_spectral.quick_start import run_recbole_spectral
from tests.helpers import FAST


def finite_numbers(value):
    if isinstance(value, dict):
        return all(finite_numbers(v) for v in value.values())
    if isinstance(value, list):
        return all(finite_numbers(v) for v in value)
    return not isinstance(value, float) or math.isfinite(value)


def checkpoint_of(workdir, model, dataset, **settings):
    result = run_recbole_spectral(model, dataset, config_dict={**FAST, "train_batch_size": 4096, **settings})
    return result["model_file"], result["test_result"]


def test_any_model_gets_degree_buckets_and_a_popularity_profile(workdir):
    model_file, test_result = checkpoint_of(workdir, "BPR", "ml-100k")
    reference_file, _ = checkpoint_of(workdir, "LightGCN", "ml-100k")
    report = diagnose(model_file, str(workdir / "diag"), reference_file=reference_file)
    assert report["test_result"] == pytest.approx(dict(test_result))  # the reloaded run, not a new one
    buckets = report["by_user_degree"]["BPR"]
    assert sum(b["users"] for b in buckets.values()) == 943
    assert set(report["by_user_degree"]) == {"BPR", "LightGCN (reference)"}
    profile = report["popularity"]
    assert 0 <= profile["head_share_of_recommendations"] <= 1 and profile["head_items"] == round(0.2 * 1682)
    for name in ("user_degree", "popularity"):
        assert (workdir / "diag" / f"{name}.png").stat().st_size > 1000
        assert f"![{name}]({name}.png)" in (workdir / "diag" / "index.md").read_text()
    stored = json.loads((workdir / "diag" / "diagnostics.json").read_text())
    assert finite_numbers({k: v for k, v in stored.items() if k != "by_user_degree"})


def test_bucket_metrics_recombine_into_the_test_metric(workdir):
    model_file, _ = checkpoint_of(workdir, "BPR", "ml-100k")
    report = diagnose(model_file, str(workdir / "diag"))
    buckets = [b for b in report["by_user_degree"]["BPR"].values() if b["users"]]
    weighted = sum(b["users"] * b["hit@10"] for b in buckets) / sum(b["users"] for b in buckets)
    assert weighted == pytest.approx(report["test_result"]["hit@10"], abs=1e-3)  # RecBole rounds to 4 places


def test_bad_input_is_one_line(workdir, capsys):
    text = workdir / "notes.pth"
    text.write_text("not a checkpoint\n")
    assert cli_main(["diagnose", f"--model_file={text}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "notes.pth" in err and "\n" not in err
    assert cli_main(["diagnose", f"--model_file={workdir / 'missing.pth'}"]) == 2
    assert "missing.pth" in capsys.readouterr().err
    native = workdir / "native.pth"
    torch.save({"state_dict": {}, "config": "a RecBole Config"}, native)  # no plugin format key
    with pytest.raises(CheckpointError, match="native.pth"):
        diagnose(str(native), str(workdir / "x"))


def test_ssr_bands_removed_at_inference_and_band_figures(workdir):
    model_file, test_result = checkpoint_of(workdir, "SSR", "ml-100k-mm")
    report = diagnose(model_file, str(workdir / "ssr"))
    removed = report["removed_at_inference"]
    assert removed["nothing removed"] == pytest.approx(dict(test_result))  # the same evaluator as the test
    assert set(removed) == {"nothing removed", "without band 1", "without band 2", "without band 3"}
    assert removed["without band 1"] != removed["nothing removed"]
    shares = [v["share"] for v in report["figures"]["band_energy"]["data"].values()]
    assert sum(shares) == pytest.approx(1.0, abs=1e-6)
    assert {"band_energy", "band_mixing_users", "band_mixing_items", "band_alignment"} <= set(report["figures"])
    for name in report["figures"]:
        assert (workdir / "ssr" / f"{name}.png").is_file()
    assert finite_numbers(report["figures"]) and finite_numbers(report["removed_at_inference"])


def test_spectramb_views_removed_at_inference_and_view_figures(workdir):
    model_file, test_result = checkpoint_of(workdir, "SpectraMB", "ml-100k-mb", n_layers=1, history_term=True)
    report = diagnose(model_file, str(workdir / "smb"))
    removed = report["removed_at_inference"]
    assert removed["nothing removed"] == pytest.approx(dict(test_result))  # the same evaluator as the test
    assert set(removed) == {"nothing removed", "without dislike", "without neutral", "without like",
                            "without the fused views", "without the history term"}
    assert {"filter_response", "view_shares", "view_shares_by_activity"} <= set(report["figures"])
    responses = report["figures"]["filter_response"]["data"]
    assert set(responses) == {"dislike", "neutral", "like", "global"} and len(responses["like"]) == 64 // 2 + 1
    for name in report["figures"]:
        assert (workdir / "smb" / f"{name}.png").is_file()
    assert finite_numbers(report["figures"]) and finite_numbers(removed)


def test_view_shares_sum_to_one_per_node():
    from recbole_spectral.model.multibehavior.spectramb import SpectraMB
    from tests.helpers import TinyMultiBehaviorDataset, model_config

    torch.manual_seed(0)
    model = SpectraMB(model_config("SpectraMB", embedding_size=8, attention_size=4), TinyMultiBehaviorDataset())
    with torch.no_grad():
        shares = model.view_shares()
    torch.testing.assert_close(shares[1:].sum(1), torch.ones(shares.shape[0] - 1))


def test_a_checkpoint_whose_dataset_is_gone_is_one_line(workdir, capsys):
    import shutil

    model_file, _ = checkpoint_of(workdir, "SpectraMB", "ml-100k-mb")
    shutil.rmtree(workdir / "dataset_atomic" / "ml-100k-mb")
    (workdir / "dataset_atomic" / "ml-100k-mb").mkdir()  # an empty folder: the atomic files are missing
    assert cli_main(["diagnose", f"--model_file={model_file}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "ml-100k-mb" in err and "\n" not in err
