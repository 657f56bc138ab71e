"""Model resolution: plugin models first, then every RecBole model.

``recbole.utils.get_model`` only searches ``recbole.model.*`` and reports an unknown name with an
unrelated error, so the plugin resolves names itself and falls through to RecBole for the rest.
"""
import importlib
import pkgutil

from recbole_spectral.errors import SpectralError

# name -> module holding the class of the same name (one model per file, named after it, grouped by the
# dataset kind it needs). Adding a model = its file, properties/model/<Name>.yaml and one line here.
PLUGIN_MODELS = {
    # multi-behavior
    "SpectraMB": "recbole_spectral.model.multibehavior.spectramb",
    "CRGCN": "recbole_spectral.model.multibehavior.crgcn",
    "MBCGCN": "recbole_spectral.model.multibehavior.mbcgcn",
    "MuLe": "recbole_spectral.model.multibehavior.mule",
    "UnionLightGCN": "recbole_spectral.model.multibehavior.unionlightgcn",
    "HistoryPop": "recbole_spectral.model.multibehavior.historypop",
    "CascadingRank": "recbole_spectral.model.multibehavior.cascadingrank",
    # any dataset
    "SimGCL": "recbole_spectral.model.general.simgcl",
    # multimodal
    "SSR": "recbole_spectral.model.multimodal.ssr",
    "VBPR": "recbole_spectral.model.multimodal.vbpr",
    "FREEDOM": "recbole_spectral.model.multimodal.freedom",
    "LGMRec": "recbole_spectral.model.multimodal.lgmrec",
    "SMORE": "recbole_spectral.model.multimodal.smore",
}

_RECBOLE_SUBMODULES = (
    "general_recommender",
    "context_aware_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
)


def plugin_model_names():
    """Plugin models whose module is present in this installation."""
    return [name for name, module in PLUGIN_MODELS.items() if importlib.util.find_spec(module)]


def recbole_model_names(submodule="general_recommender"):
    package = importlib.import_module(f"recbole.model.{submodule}")
    names = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"recbole.model.{submodule}.{info.name}")
        names += [n for n in dir(module) if n.lower() == info.name and isinstance(getattr(module, n), type)]
    return sorted(names)


def available_models_line():
    return (
        f"plugin models: {', '.join(plugin_model_names())}; "
        f"RecBole general models: {', '.join(recbole_model_names())} "
        "(RecBole's sequential, context-aware and knowledge-aware models also resolve)"
    )


def get_model(name):
    """Return the model class for ``name`` or raise a one-line :class:`SpectralError`."""
    if not isinstance(name, str):
        return name
    if name in PLUGIN_MODELS and importlib.util.find_spec(PLUGIN_MODELS[name]):
        return getattr(importlib.import_module(PLUGIN_MODELS[name]), name)
    for submodule in _RECBOLE_SUBMODULES:
        module_path = f"recbole.model.{submodule}.{name.lower()}"
        if importlib.util.find_spec(module_path):
            module = importlib.import_module(module_path)
            if hasattr(module, name):
                return getattr(module, name)
    raise SpectralError(f"unknown model '{name}'; available {available_models_line()}")
