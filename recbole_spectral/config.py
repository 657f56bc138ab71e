"""RecBole Config that knows the plugin's models, properties and command-line values.

Defaults load in this order, later wins:
RecBole's overall.yaml -> properties/overall.yaml -> model YAML (RecBole's, then the plugin's)
-> dataset YAML (RecBole's, then properties/dataset/<dataset>.yaml, then <data_path>/<dataset>/<dataset>.yaml
written by a converter) -> user config files
-> config_dict -> command line.
"""
import ast
import difflib
import functools
import glob
import os
from pathlib import Path

import yaml
from recbole.config import Config
from recbole.utils import ModelType

from recbole_spectral import hyperparameters, paths, registry
from recbole_spectral.data.factory import DATASET_OPTIONS, dataset_kind
from recbole_spectral.errors import ConfigError, SpectralError

_RECBOLE_PROPERTIES = os.path.join(os.path.dirname(os.path.realpath(__import__("recbole").__file__)), "properties")


def parse_cli_value(text):
    """Parse one ``--key=value`` value the way RecBole's command line does (numbers, lists, dicts, bools)."""
    if not isinstance(text, str):
        return text
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null", "~"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def split_overrides(extra):
    """``--key=value`` arguments -> {key: value-string}; anything else is an error."""
    overrides = {}
    for arg in extra:
        if not arg.startswith("--") or "=" not in arg:
            raise ConfigError(f"unrecognised argument '{arg}': overrides are written --key=value")
        key, value = arg[2:].split("=", 1)
        if key in overrides and overrides[key] != value:
            raise ConfigError(f"argument --{key} given twice with different values")
        overrides[key] = value
    return overrides


def _type_problem(key, value, default):
    """Why ``value`` cannot stand where ``default`` stood, or None when it can."""
    if default is None or value is None:
        return None
    if isinstance(default, bool):
        ok = isinstance(value, bool)
        expected = "true or false"
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
        # RecBole's own defaults use ints for some float settings (e.g. weight_decay: 0)
        ok = ok or (isinstance(value, float) and key in _INT_OR_FLOAT_KEYS)
        expected = "an integer"
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        expected = "a number"
    elif isinstance(default, (list, dict)):
        ok = isinstance(value, (list, dict, tuple, int, float, str))
        expected = "a list or dict"
    else:
        return None
    if ok:
        return None
    return f"config key '{key}': expected {expected} (default {default!r}), got {value!r}"


# RecBole 1.2.1 settings that no property file of it holds: set by its command line and distributed runs
# (run_recboles: nproc, world_size, ip, port, offset, local_rank), derived by its Config, or read by its
# data/trainer code with a built-in default (encoding, save_step, the sequence transforms' keys)
RECBOLE_RUNTIME_KEYS = frozenset({
    "model", "dataset", "config_files", "nproc", "world_size", "ip", "port", "offset", "local_rank", "single_spec",
    "device", "verbose", "MODEL_TYPE", "MODEL_INPUT_TYPE", "eval_type", "valid_metric_bigger",
    "valid_neg_sample_args", "test_neg_sample_args", "encoding", "save_step", "CROP_ITEM_SEQ", "CROP_ITEM_SEQ_LEN",
    "MASK_ITEM_SEQ", "MASK_INDEX", "INVERSE_ITEM_SEQ", "REORDER_ITEM_SEQ", "POS_ITEMS", "NEG_ITEMS", "ft_ratio",
    "eta", "beta", "mask_ratio", "tail_ratio",
})


def _yaml_keys(pattern):
    keys = set()
    for file in glob.glob(pattern):
        with open(file, encoding="utf-8") as fp:
            loaded = yaml.safe_load(fp)
        if isinstance(loaded, dict):
            keys |= set(loaded)
    return keys


@functools.lru_cache(maxsize=1)
def other_models_keys():
    """{key: [models]} for every setting of a RecBole or plugin model (property files, declarations) and every
    plugin dataset option: keys that are no typo even where the run's model does not read them."""
    owners = {}
    for file in sorted(glob.glob(os.path.join(_RECBOLE_PROPERTIES, "model", "*.yaml"))
                       + sorted(glob.glob(str(paths.properties_dir() / "model" / "*.yaml")))):
        for key in _yaml_keys(file):
            owners.setdefault(key, []).append(Path(file).stem)
    for name in registry.plugin_model_names():
        for key in getattr(registry.get_model(name), "hyperparameters", None) or {}:
            owners.setdefault(key, []).append(name)
    for key in _yaml_keys(os.path.join(_RECBOLE_PROPERTIES, "quick_start_config", "*.yaml")):
        owners.setdefault(key, []).append("RecBole's non-general models")
    for kind, keys in DATASET_OPTIONS.items():
        for key in keys:
            owners.setdefault(key, []).append(f"{kind} datasets")
    return {key: sorted(set(models)) for key, models in owners.items()}


_INT_OR_FLOAT_KEYS = {"weight_decay", "reg_weight", "dropout_prob", "alpha", "beta", "threshold"}
_POSITIVE_KEYS = ("epochs", "train_batch_size", "eval_batch_size", "learning_rate", "embedding_size")


class SpectralConfig(Config):
    """RecBole's :class:`Config` with plugin model resolution and plugin property files.

    ``cmd_config_dict`` holds command-line overrides (already split into key/value pairs); unlike
    RecBole's Config, ``sys.argv`` is never read, so library callers are not affected by their own argv.
    """

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None, cmd_config_dict=None):
        self._cmd_overrides = {k: parse_cli_value(v) for k, v in (cmd_config_dict or {}).items()}
        self.notes = []  # what the run should log once its log is open (keys passed on but not read)
        for file in config_file_list or []:
            if not os.path.isfile(file):
                raise ConfigError(f"config file '{file}' does not exist")
        try:
            super().__init__(model, dataset, config_file_list, dict(config_dict or {}))
        except SpectralError:
            raise
        except yaml.YAMLError as err:
            raise ConfigError(f"config file is not valid YAML: {str(err).splitlines()[0]}") from err
        except (ValueError, TypeError, KeyError, NotImplementedError, RuntimeError) as err:
            raise ConfigError(f"bad config: {err}") from err
        self._check_values()

    # -- RecBole hooks -------------------------------------------------------------------------
    def _load_config_files(self, file_list):
        settings = {}
        for file in file_list or []:
            with open(file, encoding="utf-8") as fp:
                try:
                    loaded = yaml.load(fp.read(), Loader=self.yaml_loader)
                except yaml.YAMLError as err:
                    raise ConfigError(f"config file '{file}' is not valid YAML: {str(err).splitlines()[0]}") from err
            if loaded is None:  # an empty file
                continue
            if not isinstance(loaded, dict):
                raise ConfigError(f"config file '{file}': expected a mapping of 'key: value' lines, "
                                  f"got a {type(loaded).__name__} (remove the leading '- ')")
            settings.update(loaded)
        return settings

    def _load_cmd_line(self):
        return dict(self._cmd_overrides)

    def _get_model_and_dataset(self, model, dataset):
        if model is None and "model" not in self.external_config_dict:
            raise ConfigError("no model given: pass --model=<Name> (or 'model' in a config file/dict)")
        if dataset is None and "dataset" not in self.external_config_dict:
            raise ConfigError("no dataset given: pass --dataset=<name> (or 'dataset' in a config file/dict)")
        model = model if model is not None else self.external_config_dict["model"]
        dataset = dataset if dataset is not None else self.external_config_dict["dataset"]
        model_class = registry.get_model(model)
        return model_class.__name__, model_class, str(dataset)

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        ours = {
            "overall": paths.properties_dir() / "overall.yaml",
            "model": paths.model_properties_file(model),
            "dataset": paths.dataset_properties_file(dataset),
            # a converted dataset carries its own properties next to its atomic files
            "data": Path(self.external_config_dict.get("data_path") or paths.default_data_dir()) / dataset / f"{dataset}.yaml",
        }
        if model_class.type != ModelType.GENERAL:
            # RecBole adds per-type quick-start files for these; keep them and lay ours on top.
            for part in ("overall", "model", "dataset", "data"):
                self._update_internal_config_dict_if_file(ours[part], dataset_file=part in ("dataset", "data"))
            return
        model_type = self.internal_config_dict["MODEL_TYPE"]
        self.internal_config_dict = {}
        rb = _RECBOLE_PROPERTIES
        for file, is_dataset in (
            (os.path.join(rb, "overall.yaml"), False),
            (ours["overall"], False),
            (os.path.join(rb, "model", f"{model}.yaml"), False),
            (ours["model"], False),
            (os.path.join(rb, "dataset", "sample.yaml"), False),
            (os.path.join(rb, "dataset", f"{dataset}.yaml"), True),
            (ours["dataset"], True),
            (ours["data"], True),
        ):
            self._update_internal_config_dict_if_file(file, dataset_file=is_dataset)
        self.internal_config_dict["MODEL_TYPE"] = model_type

    def _update_internal_config_dict_if_file(self, file, dataset_file=False):
        if not os.path.isfile(file):
            return
        try:
            loaded = self._update_internal_config_dict(str(file)) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"properties file '{file}' is not valid YAML: {str(err).splitlines()[0]}") from err
        if dataset_file:
            self.parameters["Dataset"] += [k for k in loaded if k not in self.parameters["Dataset"]]

    def _set_default_parameters(self):
        self._check_known_keys()
        # the model's declared hyperparameters and the constraints between them
        # (recbole_spectral.hyperparameters), checked on the merged settings before RecBole interprets any
        hyperparameters.check_model(self.model_class, self.final_config_dict)
        if "data_path" not in self.external_config_dict and self.dataset != "ml-100k":
            self.final_config_dict["data_path"] = str(paths.default_data_dir())
        super()._set_default_parameters()

    # -- validation ----------------------------------------------------------------------------
    def known_keys(self):
        """Every key this run reads: RecBole's defaults and options, overall.yaml, the model's YAML and
        declarations, the dataset's YAML and the options of its Dataset class."""
        return (set(self.internal_config_dict) | RECBOLE_RUNTIME_KEYS
                | set(getattr(self.model_class, "hyperparameters", None) or {})
                | set(DATASET_OPTIONS.get(dataset_kind(self), ())))

    def model_keys(self):
        """The model's own settings: its property files (RecBole's and the plugin's) and declarations."""
        files = (os.path.join(_RECBOLE_PROPERTIES, "model", f"{self.model}.yaml"), str(paths.model_properties_file(self.model)))
        return set(getattr(self.model_class, "hyperparameters", None) or {}).union(*(_yaml_keys(f) for f in files))

    def _check_known_keys(self):
        """A key no layer knows is refused with the nearest known ones (a typo would be ignored); one that
        belongs to other models only is passed on and logged."""
        known = self.known_keys()
        refuse = self.final_config_dict.get("refuse_unknown_keys", True)
        for key in self.external_config_dict:
            if key in known:
                continue
            others = other_models_keys().get(key)
            if others:
                shown = ", ".join(others[:4]) + (", ..." if len(others) > 4 else "")
                self.notes.append(f"config key '{key}' is not read by {self.model} (it is a setting of {shown}); ignored")
                continue
            close = (difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
                     or difflib.get_close_matches(key, sorted(other_models_keys()), n=3, cutoff=0.6))
            problem = (f"config key '{key}' is not a setting of {self.model}, RecBole or dataset '{self.dataset}'"
                       + (f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""))
            if refuse:
                raise ConfigError(problem + " (refuse_unknown_keys: False passes unknown keys on)")
            self.notes.append(problem + "; passed on (refuse_unknown_keys: False)")

    def _check_values(self):
        declared = getattr(self.model_class, "hyperparameters", None) or {}
        for key, value in self.external_config_dict.items():
            if key in declared:
                continue  # checked against its declaration already (_set_default_parameters)
            problem = _type_problem(key, value, self.internal_config_dict.get(key))
            if problem:
                raise ConfigError(problem)
        for key in _POSITIVE_KEYS:
            if key in declared:
                continue
            value = self.final_config_dict.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
                raise ConfigError(f"config key '{key}': expected a positive number, got {value!r}")
        seed = self.final_config_dict.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2 ** 32:
            raise ConfigError(f"config key 'seed': expected an integer from 0 to 2**32 - 1, got {seed!r}")
        self._check_valid_metric()

    def _check_valid_metric(self):
        """``valid_metric`` is one of ``metrics``, at one of the ``topk`` cutoffs where it has one (RecBole would
        stop with a KeyError at the first validation)."""
        from recbole.evaluator.base_metric import TopkMetric
        from recbole.evaluator.register import metrics_dict

        metric = str(self.final_config_dict.get("valid_metric"))
        name, at, k = metric.lower().partition("@")
        metrics = [str(m).lower() for m in self.final_config_dict.get("metrics") or []]
        topk = list(self.final_config_dict.get("topk") or [])
        if name not in metrics:
            raise ConfigError(f"config key 'valid_metric': {metric} is not among config key 'metrics' {metrics}")
        cls = metrics_dict.get(name)
        if at and not (k.isdigit() and int(k) in topk):
            raise ConfigError(f"config key 'valid_metric': {metric} needs its cutoff {k} in config key 'topk' {topk}")
        if not at and isinstance(cls, type) and issubclass(cls, TopkMetric):
            raise ConfigError(f"config key 'valid_metric': {metric} needs a cutoff from config key 'topk' {topk}, "
                              f"e.g. {metric}@{topk[0] if topk else 10}")

    def external_values(self):
        """The user's own settings (files, dict, command line), as plain values."""
        return dict(self.external_config_dict)
