"""Search spaces from a RecBole params file, for hyperopt and for Ray Tune.

Params file (RecBole's format, one parameter a line, ``#`` comments)::

    learning_rate loguniform -8,-3      # exp(uniform(-8, -3)), as hyperopt's hp.loguniform
    embedding_size choice [32,64,128]
    reg_weight uniform 0.0,0.01
    n_layers quniform 1,4,1
"""
import ast
import math
import os

from recbole_spectral.errors import ConfigError

ALGOS = ("exhaustive", "random", "bayes")
KINDS = {"choice": 1, "uniform": 2, "quniform": 3, "loguniform": 2}


# -- params file -------------------------------------------------------------------------------------
def parse_params_file(path):
    """[(name, kind, args)] from a RecBole params file; a bad line is a one-line ConfigError."""
    if not os.path.isfile(path):
        raise ConfigError(f"params file '{path}' does not exist")
    with open(path) as fp:
        return parse_params_lines(fp, f"params file {path}")


def parse_params_lines(lines, source):
    """[(name, kind, args)] from params-file lines (a file, or a study plan's inline space written as
    ``name: "kind values"`` and turned into lines); ``source`` names where they come from in errors."""
    params = []
    for number, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{source}, line {number}"
        parts = line.split(None, 2)
        if len(parts) < 3:
            raise ConfigError(f"{where}: expected '<name> <choice|uniform|quniform|loguniform> <values>', got '{line}'")
        name, kind, text = parts
        if kind not in KINDS:
            raise ConfigError(f"{where}: unknown type '{kind}' (expected one of {', '.join(KINDS)})")
        if kind == "choice":
            try:
                values = ast.literal_eval(text.replace(" ", "") if text.startswith("[") else text)
            except (ValueError, SyntaxError):
                values = None
            if not isinstance(values, (list, tuple)) or not values:
                raise ConfigError(f"{where}: choice needs a non-empty list like [0.01,0.001], got '{text}'")
            args = (list(values),)
        else:
            try:
                args = tuple(float(v) for v in text.replace(",", " ").split())
            except ValueError:
                args = ()
            if len(args) != KINDS[kind] or args[0] > args[1]:
                shape = "low,high" if KINDS[kind] == 2 else "low,high,q"
                raise ConfigError(f"{where}: {kind} needs {shape} numbers with low <= high, got '{text}'")
        if any(name == p[0] for p in params):
            raise ConfigError(f"{where}: parameter '{name}' is given twice")
        params.append((name, kind, args))
    if not params:
        raise ConfigError(f"{source} defines no parameters")
    return params


def hyperopt_space(params):
    from hyperopt import hp

    space = {}
    for name, kind, args in params:
        if kind == "choice":
            space[name] = hp.choice(name, args[0])
        else:
            space[name] = getattr(hp, kind)(name, *args)
    return space


def ray_space(params, algo):
    from ray import tune

    space = {}
    for name, kind, args in params:
        if kind == "choice":
            space[name] = tune.grid_search(args[0]) if algo == "exhaustive" else tune.choice(args[0])
        elif kind == "uniform":
            space[name] = tune.uniform(*args)
        elif kind == "quniform":
            space[name] = tune.quniform(*args)
        else:  # the file holds log-space bounds, as hyperopt's hp.loguniform
            space[name] = tune.loguniform(math.exp(args[0]), math.exp(args[1]))
    return space


def check_algo(params, algo):
    if algo not in ALGOS:
        raise ConfigError(f"--algo: expected one of {', '.join(ALGOS)}, got '{algo}'")
    if algo == "exhaustive":
        continuous = [name for name, kind, _ in params if kind != "choice"]
        if continuous:
            raise ConfigError(f"exhaustive search needs 'choice' parameters only; {', '.join(continuous)} "
                              "are continuous (use --algo=random or bayes)")


def grid_size(params):
    return math.prod(len(args[0]) for _, kind, args in params if kind == "choice")


def plain_params(params, values):
    """Sampled values as config values: integral quniform samples become ints (e.g. n_layers)."""
    kinds = {name: (kind, args) for name, kind, args in params}
    out = {}
    for name, value in values.items():
        kind, args = kinds.get(name, ("choice", ()))
        if kind == "quniform" and all(float(a).is_integer() for a in args) and float(value).is_integer():
            value = int(value)
        elif hasattr(value, "item"):  # numpy scalars from samplers
            value = value.item()
        out[name] = value
    return out
