"""Building a run's Dataset: the Dataset class follows the *dataset's* properties, not the model.

A plugin model and a RecBole baseline run on the same dataset therefore get the same Dataset class,
the same id space and the same split. The kind is read from the dataset's properties:
``behaviors``/``target_behavior`` -> multi-behavior, ``modalities`` -> multimodal, otherwise plain.
"""
import importlib
import os
from logging import getLogger

from recbole_spectral.errors import DataError, SpectralError

DATASET_CLASSES = {
    "plain": "recbole.data.dataset:Dataset",
    "multibehavior": "recbole_spectral.data.multibehavior:MultiBehaviorDataset",
    "multimodal": "recbole_spectral.data.multimodal:MultiModalDataset",
}

# datasets that need no download: name -> "module:function(data_dir)" that writes its atomic files
ON_DEMAND_BUILDERS = {
    "ml-100k-mb": "recbole_spectral.data.builders.ml100k_mb:build",
    "ml-100k-mm": "recbole_spectral.data.builders.ml100k_mm:build",
}


def _load(target):
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def dataset_kind(config):
    if config["behaviors"] or config["target_behavior"]:
        return "multibehavior"
    if config["modalities"]:
        return "multimodal"
    return "plain"


def dataset_class(config):
    return _load(DATASET_CLASSES[dataset_kind(config)])


def _inter_files(config):
    name, path = config["dataset"], config["data_path"]
    suffixes = config["benchmark_filename"]
    if suffixes:
        return [os.path.join(path, f"{name}.{suffix}.inter") for suffix in suffixes]
    return [os.path.join(path, f"{name}.inter")]


def available_datasets(data_dir):
    prepared = sorted(d for d in os.listdir(data_dir) if os.path.isdir(os.path.join(data_dir, d))) if os.path.isdir(data_dir) else []
    return (
        "ml-100k (bundled with RecBole), "
        + ", ".join(f"{n} (built on demand)" for n in ON_DEMAND_BUILDERS)
        + (f", prepared in {data_dir}: {', '.join(prepared)}" if prepared else "")
    )


def ensure_dataset_files(config):
    """Build an on-demand dataset if needed and check its atomic files exist (one-line error if not)."""
    name, path = config["dataset"], config["data_path"]
    if not os.path.isdir(path) and name in ON_DEMAND_BUILDERS:
        getLogger().info(f"building dataset {name} in {path}")
        _load(ON_DEMAND_BUILDERS[name])(os.path.dirname(path))
    if not os.path.isdir(path):
        help_text = config["missing_data_help"]
        if help_text:
            raise DataError(" ".join(str(help_text).split()))
        raise DataError(
            f"unknown dataset '{name}': no folder {path}; available: {available_datasets(os.path.dirname(path))}"
        )
    missing = [f for f in _inter_files(config) if not os.path.isfile(f)]
    if missing:
        raise DataError(f"dataset '{name}': missing atomic file {missing[0]}")


def data_preparation(config, dataset):
    """RecBole's ``data_preparation``, then the dataset's own fix-up of the evaluation masks, if it has one
    (a multi-behavior dataset trained on all behaviors still masks only training target interactions)."""
    from recbole.data import data_preparation as recbole_data_preparation

    loaders = recbole_data_preparation(config, dataset)
    restrict = getattr(dataset, "restrict_eval_history", None)
    if restrict is not None:
        restrict(*loaders)
    return loaders


def create_dataset(config):
    """Build the Dataset for ``config`` (kind chosen from the dataset's properties); the run path has
    checked its files with :func:`ensure_dataset_files` before."""
    cls = dataset_class(config)
    try:
        return cls(config)
    except SpectralError:
        raise
    except (ValueError, KeyError, IndexError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(
            f"dataset '{config['dataset']}': could not load atomic files in {config['data_path']}: {first}"
        ) from err
