"""The plugin skeleton: model resolution, config layering, CLI errors, safe checkpoints, tuning."""

import pytest
import torch

from recbole_spectral import registry
from recbole_spectral.config import SpectralConfig, parse_cli_value
from recbole_spectral.errors import ConfigError, DataError, SpectralError
from recbole_spectral.quick_start import (
    load_data_and_model,
    objective_function,
    run_recbole_spectral,
)
from tests.helpers import FAST, run_cli


def test_unknown_model_is_one_line_listing_models():
    with pytest.raises(SpectralError) as err:
        registry.get_model("NoSuchModel")
    message = str(err.value)
    assert "\n" not in message
    assert "NoSuchModel" in message and "LightGCN" in message and "BPR" in message


def test_recbole_models_fall_through():
    assert registry.get_model("LightGCN").__module__ == "recbole.model.general_recommender.lightgcn"
    assert registry.get_model("EASE").__name__ == "EASE"


def test_cli_values_parse_like_recbole():
    assert parse_cli_value("0.01") == 0.01
    assert parse_cli_value("[10,20]") == [10, 20]
    assert parse_cli_value("True") is True and parse_cli_value("false") is False
    assert parse_cli_value("adam") == "adam"


def test_config_layers_later_wins(workdir, tmp_path):
    # properties/overall.yaml sets topk [10, 20] over RecBole's [10]
    config = SpectralConfig("BPR", "ml-100k", config_dict={"state": "WARNING"})
    assert config["topk"] == [10, 20]
    user_file = tmp_path / "user.yaml"
    user_file.write_text("learning_rate: 0.005\nepochs: 7\n")
    config = SpectralConfig("BPR", "ml-100k", [str(user_file)], {"epochs": 3}, {"epochs": "5"})
    assert config["learning_rate"] == 0.005  # file beats defaults
    assert config["epochs"] == 5  # command line beats config_dict beats file
    config = SpectralConfig("BPR", "ml-100k", [str(user_file)], {"epochs": 3})
    assert config["epochs"] == 3


@pytest.mark.parametrize(
    "overrides, key",
    [({"learning_rate": "abc"}, "learning_rate"), ({"epochs": "2.5"}, "epochs"), ({"epochs": "0"}, "epochs")],
)
def test_bad_config_values_name_the_key(workdir, overrides, key):
    with pytest.raises(ConfigError) as err:
        SpectralConfig("BPR", "ml-100k", cmd_config_dict=overrides)
    assert f"'{key}'" in str(err.value) and "\n" not in str(err.value)


def test_unknown_dataset_is_a_clear_error(workdir):
    with pytest.raises(DataError) as err:
        run_recbole_spectral("BPR", "no-such-data", config_dict=FAST)
    assert "no-such-data" in str(err.value) and "ml-100k" in str(err.value)


def test_missing_atomic_file_is_named(workdir):
    (workdir / "dataset_atomic" / "empty").mkdir()
    with pytest.raises(DataError) as err:
        run_recbole_spectral("BPR", "empty", config_dict=FAST)
    assert "empty.inter" in str(err.value)


def test_cli_errors_are_one_line(workdir):
    for args, needle in [
        (["--model=NoSuchModel", "--dataset=ml-100k"], "available"),
        (["--model=BPR", "--dataset=nope"], "unknown dataset"),
        (["--model=BPR", "--dataset=ml-100k", "--learning_rate=fast"], "learning_rate"),
    ]:
        proc = run_cli(*args, cwd=workdir)
        assert proc.returncode != 0
        assert needle in proc.stderr
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.parametrize("model", ["BPR", "LightGCN"])
def test_cli_trains_reloads_best_and_tests(workdir, model):
    proc = run_cli(f"--model={model}", "--dataset=ml-100k", "--epochs=2", "--state=INFO", cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Loading model structure and parameters from" in proc.stderr
    assert "test result: recall@10:" in proc.stdout


def test_checkpoint_is_weights_only_and_reloads(workdir):
    result = run_recbole_spectral("BPR", "ml-100k", config_dict=FAST)
    [checkpoint_file] = list((workdir / "saved").glob("BPR-*.pth"))
    checkpoint = torch.load(checkpoint_file, weights_only=True)
    assert checkpoint["config"]["model"] == "BPR" and checkpoint["config"]["dataset"] == "ml-100k"
    config, model, dataset, train_data, valid_data, test_data = load_data_and_model(str(checkpoint_file))
    assert torch.equal(model.user_embedding.weight, checkpoint["state_dict"]["user_embedding.weight"])
    # evaluating the reloaded model reproduces the run's test result
    from recbole_spectral.trainer import trainer_class

    trainer = trainer_class(config)(config, model)
    assert trainer.evaluate(test_data, load_best_model=False) == result["test_result"]


def test_resume_from_checkpoint(workdir):
    from recbole_spectral.quick_start import build_run

    config = SpectralConfig("BPR", "ml-100k", config_dict={**FAST, "epochs": 2})
    _, (train_data, valid_data, _), _, trainer = build_run(config)
    trainer.fit(train_data, valid_data, verbose=False)
    config = SpectralConfig("BPR", "ml-100k", config_dict={**FAST, "epochs": 3})
    _, (train_data, valid_data, _), model, resumed = build_run(config)
    resumed.resume_checkpoint(trainer.saved_model_file)
    assert resumed.start_epoch == 2
    resumed.fit(train_data, valid_data, verbose=False)
    assert list(resumed.train_loss_dict) == [2]


def test_hypertuning_over_objective_function(workdir):
    pytest.importorskip("hyperopt")
    from recbole.trainer import HyperTuning

    params = workdir / "params.hyper"
    params.write_text("learning_rate choice [0.01,0.001]\n")
    fixed = workdir / "fixed.yaml"
    fixed.write_text("model: BPR\ndataset: ml-100k\nepochs: 1\nuse_gpu: False\neval_batch_size: 100000\n")
    tuner = HyperTuning(objective_function, algo="exhaustive", max_evals=2, params_file=str(params),
                        fixed_config_file_list=[str(fixed)])
    tuner.run()
    assert len(tuner.params2result) == 2
    best = max(tuner.params2result, key=lambda key: tuner.params2result[key]["best_valid_score"])
    assert tuner.params2str(tuner.best_params) == best  # the trial with the higher validation score
    assert all(r["model"] == "BPR" for r in tuner.params2result.values())
