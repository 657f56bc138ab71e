from recbole_spectral.version import __version__  # noqa: F401
