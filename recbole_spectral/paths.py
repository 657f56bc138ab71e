"""Where the plugin's shipped files live, from a checkout and from an installed wheel.

In a checkout (or an editable install) ``properties/`` and ``dataset_atomic/`` sit next to the
package; in a wheel the properties are package data under ``recbole_spectral/properties``.
"""
import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT_DIR = PACKAGE_DIR.parent


def properties_dir() -> Path:
    for candidate in (_CHECKOUT_DIR / "properties", PACKAGE_DIR / "properties"):
        if (candidate / "overall.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"recbole_spectral properties not found next to {PACKAGE_DIR}")


def model_properties_file(model: str) -> Path:
    return properties_dir() / "model" / f"{model}.yaml"


def recipe_file(name: str) -> Path:
    """A shipped config file of ``properties/recipes/`` (e.g. ``SpectraMB-official.yaml``), for
    ``--config_files=`` / ``config_file_list``."""
    return properties_dir() / "recipes" / name


def read_recipe(name: str) -> dict:
    """The settings of a recipe as a dict: a shipped one by name (``properties/recipes/<name>``) or any YAML
    file by path — for tools that lay a recipe over their own settings (so its values enter a run's key)."""
    import yaml

    path = Path(name) if os.path.isfile(name) else recipe_file(name)
    if not path.is_file():
        raise FileNotFoundError(f"recipe {name!r}: no such file, and not a shipped recipe in {recipe_file('')}")
    with open(path) as fp:
        return yaml.safe_load(fp) or {}


def dataset_properties_file(dataset: str) -> Path:
    return properties_dir() / "dataset" / f"{dataset}.yaml"


def default_data_dir() -> Path:
    """The folder holding one sub-folder of atomic files per dataset.

    ``$RECBOLE_SPECTRAL_DATA`` if set; the checkout's ``dataset_atomic/`` when running from a checkout;
    otherwise ``./dataset_atomic`` in the working directory (an installed wheel has no writable home).
    """
    env = os.environ.get("RECBOLE_SPECTRAL_DATA")
    if env:
        return Path(env).expanduser().resolve()
    if (_CHECKOUT_DIR / "dataset_atomic").is_dir() and (_CHECKOUT_DIR / "pyproject.toml").is_file():
        return _CHECKOUT_DIR / "dataset_atomic"
    return Path.cwd() / "dataset_atomic"
