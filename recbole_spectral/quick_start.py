"""Python API: train/evaluate one model, HyperTuning objective, reload a saved model.

Mirrors ``recbole.quick_start`` without importing it (it imports ray at import time), and routes
every model (plugin or RecBole) through the plugin's Config, dataset seam and safe-checkpoint trainer.
"""
import logging
from logging import getLogger

from recbole.utils import init_logger, init_seed, set_color

from recbole_spectral.config import SpectralConfig
from recbole_spectral.data import create_dataset, data_preparation, ensure_dataset_files
from recbole_spectral.checkpoint import read_checkpoint
from recbole_spectral.trainer import trainer_class


def init_logging(config):
    """RecBole's logger, re-initialised for each run (basicConfig ignores later calls otherwise)."""
    root = logging.getLogger()
    for handler in root.handlers[:]:
        root.removeHandler(handler)
        handler.close()
    init_logger(config)


def build_run(config, split_seed=None, trainer_wrapper=None):
    """Dataset, dataloaders, model and trainer for ``config``, seeded like RecBole's run_recbole.

    ``split_seed`` seeds dataset building and splitting (default ``config["seed"]``), so runs with
    different seeds can share one split; ``trainer_wrapper`` maps the trainer class to a subclass.
    """
    init_seed(config["seed"] if split_seed is None else split_seed, config["reproducibility"])
    dataset = create_dataset(config)
    getLogger().info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = config.model_class(config, train_data._dataset).to(config["device"])  # a name or a class
    getLogger().info(model)
    cls = trainer_class(config)
    trainer = (trainer_wrapper(cls) if trainer_wrapper else cls)(config, model)
    return dataset, (train_data, valid_data, test_data), model, trainer


def train_and_test(config, saved=True, verbose=True, callback_fn=None):
    """Fit with early stopping on the validation metric, then test the best checkpoint."""
    _, (train_data, valid_data, test_data), model, trainer = build_run(config)
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, verbose=verbose, saved=saved,
        show_progress=config["show_progress"], callback_fn=callback_fn,
    )
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])
    logger = getLogger()
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    result = {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
    }
    return result, model, trainer


def run_recbole_spectral(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True,
                         cmd_config_dict=None):
    """Train and test ``model`` on ``dataset``; returns the same dict as RecBole's ``run_recbole``."""
    config = SpectralConfig(model, dataset, config_file_list, config_dict, cmd_config_dict)
    ensure_dataset_files(config)  # a missing dataset fails before the log is opened
    init_logging(config)
    getLogger().info(config)
    result, _, _ = train_and_test(config, saved=saved)
    return result


def objective_function(config_dict=None, config_file_list=None, saved=True):
    """Objective for ``recbole.trainer.HyperTuning``: one run, result dict including ``model``."""
    config = SpectralConfig(config_dict=config_dict, config_file_list=config_file_list)
    init_logging(config)
    logging.getLogger().setLevel(logging.ERROR)
    result, _, _ = train_and_test(config, saved=saved, verbose=False)
    return {"model": config["model"], **result}


def load_data_and_model(model_file):
    """Rebuild config, model (with the saved weights), dataset and dataloaders from a checkpoint."""
    checkpoint = read_checkpoint(model_file)  # CheckpointError: one line naming the file and what it is not
    saved = checkpoint["config"]
    config = SpectralConfig(saved["model"], saved["dataset"], config_dict=saved["settings"])
    init_seed(config["seed"], config["reproducibility"])
    init_logging(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = config.model_class(config, train_data._dataset).to(config["device"])
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return config, model, dataset, train_data, valid_data, test_data
