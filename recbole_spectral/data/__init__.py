"""Data: raw public files -> converter -> atomic files -> Dataset -> model.

- ``converters/``: public raw layouts -> atomic files (``crgcn`` multi-behavior, ``mmrec`` multimodal);
- ``builders/``: shipped datasets built on first use from RecBole's bundled ml-100k (nothing downloaded);
- ``atomic.py`` (the one folder writer) and ``features.py`` (the one feature-file reader) they share;
- ``multibehavior.py`` / ``multimodal.py``: the RecBole Dataset classes;
- ``factory.py``: which Dataset class a dataset gets, building it, and the plugin's ``data_preparation``.
"""
from recbole_spectral.data.factory import (  # noqa: F401
    create_dataset,
    data_preparation,
    dataset_class,
    dataset_kind,
    ensure_dataset_files,
)
