"""``run_recbole_spectral.py prepare <layout> ...``: convert a public raw layout into atomic files.

Each layout's converter module exposes ``prepare_cli(argv) -> exit code`` and a Python function.
"""
import importlib
import sys

from recbole_spectral.errors import SpectralError

LAYOUTS = {
    "crgcn": ("recbole_spectral.data.converters.crgcn", "multi-behavior CRGCN layout (count.txt, <behavior>.txt)"),
    "mmrec": ("recbole_spectral.data.converters.mmrec", "multimodal MMRec layout (<name>.inter, <modality>_feat.npy)"),
}


def main(argv):
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in LAYOUTS:
        lines = [f"  {name:8s} {text}" for name, (_, text) in LAYOUTS.items()]
        usage = "usage: run_recbole_spectral.py prepare <layout> --help\nlayouts:\n" + "\n".join(lines)
        if argv and argv[0] not in ("-h", "--help"):
            raise SpectralError(f"unknown layout '{argv[0]}'; available: {', '.join(LAYOUTS)}")
        print(usage, file=sys.stderr if not argv else sys.stdout)
        return 0 if argv else 2
    return importlib.import_module(LAYOUTS[argv[0]][0]).prepare_cli(argv[1:])
