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

# config keys each kind of dataset reads besides RecBole's (known to the configuration's unknown-key check)
DATASET_OPTIONS = {
    "plain": ("missing_data_help",),
    "multibehavior": ("missing_data_help", "BEHAVIOR_FIELD", "behaviors", "target_behavior", "train_on_all_behaviors",
                      "drop_behaviors", "noise_behaviors", "noise_add_ratio", "noise_remove_ratio", "noise_seed"),
    "multimodal": ("missing_data_help", "modalities", "feature_fill", "knn_cache_dir"),
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
    """The model fits the dataset's kind; build an on-demand dataset if needed; its files exist and are
    well-formed (:func:`check_dataset_files`). One-line errors, before a run opens its log."""
    name, path = config["dataset"], config["data_path"]
    model_class = getattr(config, "model_class", None)
    if model_class is not None and (os.path.isdir(path) or name in ON_DEMAND_BUILDERS):
        from recbole_spectral.model.base import check_dataset_kind

        check_dataset_kind(model_class, dataset_kind(config), name)  # before a shipped dataset is built
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
    check_dataset_files(config)


# RecBole's atomic column types (recbole.utils.FeatureType)
ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")


def _last_line(path):
    """(offset, bytes) of the last non-empty line of ``path``, from the end of the file only."""
    with open(path, "rb") as fp:
        size, window = fp.seek(0, os.SEEK_END), 1 << 16
        while True:  # widen the window until it holds the whole last line
            base = max(0, size - window)
            fp.seek(base)
            tail = fp.read().rstrip(b"\r\n")
            if b"\n" in tail or base == 0:
                break
            window *= 4
    start = base + tail.rfind(b"\n") + 1
    return start, tail[start - base:]


def _line_number(path, offset):
    """1-based number of the line starting at ``offset``, counting newlines in chunks."""
    newlines, remaining = 0, offset
    with open(path, "rb") as fp:
        while remaining > 0:
            chunk = fp.read(min(1 << 22, remaining))
            newlines, remaining = newlines + chunk.count(b"\n"), remaining - len(chunk)
    return newlines + 1


def check_atomic_file(path, separator="\t", encoding="utf-8"):
    """One-line DataError unless ``path``'s header is RecBole's ``name:type`` columns and its last line has
    as many columns as the header (a file cut short while being written has not)."""
    with open(path, "rb") as fp:
        header = fp.readline().decode(encoding, errors="replace").rstrip("\r\n")
    columns = header.split(separator)
    for position, column in enumerate(columns, 1):
        parts = column.split(":")
        if len(parts) != 2 or not parts[0] or parts[1] not in ATOMIC_TYPES:
            raise DataError(f"{path} line 1: column {position} '{column}' is not 'name:type' with type one of "
                            f"{', '.join(ATOMIC_TYPES)}")
    start, last = _last_line(path)
    found = len(last.decode(encoding, errors="replace").split(separator))
    if start > 0 and found != len(columns):
        raise DataError(f"{path} line {_line_number(path, start)}: {found} of the header's {len(columns)} columns; "
                        "expected complete lines (was the file cut short?)")


def check_dataset_files(config):
    """Checks that need the dataset's files but not its data, run before a log is opened: the atomic files'
    headers and last lines, the multi-behavior or multimodal options, and each modality's feature file and
    item sidecar (readable header, one sidecar line per feature row)."""
    from recbole_spectral.data.features import feature_file, load_feature_matrix, read_sidecar, sidecar_file

    name, path = config["dataset"], config["data_path"]
    separator, encoding = config["field_separator"] or "\t", config["encoding"] or "utf-8"
    atomic = _inter_files(config) + [os.path.join(path, f"{name}.{suffix}") for suffix in ("user", "item")]
    for file in atomic:
        if os.path.isfile(file):
            check_atomic_file(file, separator, encoding)
    kind = dataset_kind(config)
    if kind == "multibehavior":
        from recbole_spectral.data.multibehavior import behavior_options

        behavior_options(config)
    elif kind == "multimodal":
        from recbole_spectral.data.multimodal import modality_options

        for modality in modality_options(config)[0]:
            features = feature_file(path, name, modality)
            if not os.path.isfile(features):
                raise DataError(f"dataset '{name}': modality '{modality}' is listed in 'modalities' but its feature "
                                f"file {features} does not exist")
            rows = load_feature_matrix(features).shape[0]
            sidecar = sidecar_file(path, name, modality)
            tokens = len(read_sidecar(sidecar))
            if tokens != rows:
                raise DataError(f"{features} has {rows} rows but its sidecar {sidecar} names {tokens} items: "
                                "expected one row per item token")


def data_preparation(config, dataset):
    """RecBole's ``data_preparation``, then the dataset's own fix-up of the evaluation masks, if it has one
    (a multi-behavior dataset trained on all behaviors still masks only training target interactions)."""
    from recbole.data import data_preparation as recbole_data_preparation

    try:
        loaders = recbole_data_preparation(config, dataset)
    except ValueError as err:  # RecBole's negative sampler
        if "interacted with all items" not in str(err):
            raise
        raise DataError(_users_with_every_item(config, dataset)) from err
    restrict = getattr(dataset, "restrict_eval_history", None)
    if restrict is not None:
        restrict(*loaders)
    return loaders


def _users_with_every_item(config, dataset):
    """Why RecBole cannot sample negatives: the users whose interactions cover every item, one line."""
    import numpy as np

    users = dataset.inter_feat[dataset.uid_field].numpy()
    items = dataset.inter_feat[dataset.iid_field].numpy()
    pairs = np.unique(users.astype(np.int64) * dataset.item_num + items)
    counts = np.bincount(pairs // dataset.item_num, minlength=dataset.user_num)
    full = np.flatnonzero(counts >= dataset.item_num - 1)
    who = (f"user '{dataset.id2token(dataset.uid_field, full[0])}'" + (f" (and {len(full) - 1} more)" if len(full) > 1 else "")
           if len(full) else "a user")
    return (f"dataset '{config['dataset']}': {who} interacted with every one of its {dataset.item_num - 1} items, so no "
            "negative item can be sampled for them; remove such users from the data (or add items)")


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
