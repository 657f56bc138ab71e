"""Command line: ``run_recbole_spectral.py [SUBCOMMAND] --model=... --dataset=... [--key=value ...]``.

The dispatcher on top of the package: without a subcommand it trains and tests one model
(``quick_start``); ``prepare`` / ``compare`` / ``tune`` / ``diagnose`` / ``study`` are lazy imports of the module that implements
them. Bad input ends with one line on stderr and exit code 2, never a traceback.
"""
import argparse
import importlib
import sys

from recbole_spectral.config import split_overrides
from recbole_spectral.errors import SpectralError

# name -> "module:function(argv) -> exit code"; each subcommand lives in its own module
SUBCOMMANDS = {
    "prepare": "recbole_spectral.prepare:main",
    "compare": "recbole_spectral.compare:main",
    "tune": "recbole_spectral.tuning:main",
    "diagnose": "recbole_spectral.diagnose:main",
    "study": "recbole_spectral.study:main",
}


def run_parser(prog="run_recbole_spectral.py"):
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Train and test a recommender (plugin or RecBole) on a dataset.",
        epilog=(
            "Any other --key=value overrides a config value (parsed like RecBole's command line). "
            f"Subcommands: {', '.join(SUBCOMMANDS) or 'none'} (run '<subcommand> --help')."
        ),
    )
    parser.add_argument("--model", "-m", required=True, help="model name, e.g. SSR, SpectraMB, LightGCN, BPR")
    parser.add_argument("--dataset", "-d", required=True, help="dataset name, e.g. ml-100k, ml-100k-mb, ml-100k-mm")
    parser.add_argument("--config_files", default=None, help="space-separated YAML config files")
    parser.add_argument("--nproc", type=int, default=1, help="processes for distributed training (default 1)")
    return parser


def run_main(argv):
    args, extra = run_parser().parse_known_args(argv)
    overrides = split_overrides(extra)
    config_files = args.config_files.split() if args.config_files else None
    if args.nproc > 1 or "world_size" in overrides:
        from recbole_spectral.distributed import run_distributed

        result = run_distributed(args.model, args.dataset, config_files, overrides, nproc=args.nproc)
    else:
        from recbole_spectral.quick_start import run_recbole_spectral

        result = run_recbole_spectral(args.model, args.dataset, config_files, cmd_config_dict=overrides)
    print_result(result)
    return 0


def format_metrics(metrics):
    return "  ".join(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}" for k, v in (metrics or {}).items())


def print_result(result):
    print(f"best valid: {format_metrics(result['best_valid_result'])}")
    print(f"test result: {format_metrics(result['test_result'])}")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in SUBCOMMANDS:
            module, function = SUBCOMMANDS[argv[0]].split(":")
            return getattr(importlib.import_module(module), function)(argv[1:])
        return run_main(argv)
    except SpectralError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
