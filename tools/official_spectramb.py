"""Run the authors' SpectraMB code (github.com/miaomiao-cai2/SpectraMB-KDD2026) on one of our converted splits.

The official code is never copied into this repository: fetch it and unpack it outside (e.g. /tmp), then

    RECBOLE_SPECTRAL_DATA=/tmp/mbdata python run_recbole_spectral.py prepare crgcn \\
        --src ../shared/datasets/multibehavior/taobao-15k --name taobao-15k
    python tools/official_spectramb.py write --atomic /tmp/mbdata/taobao-15k --out /tmp/official-spectramb/data/taobao
    pip install --target /tmp/official-spectramb/pydeps loguru      # the one import our venv lacks
    OMP_NUM_THREADS=1 nohup nice -n 10 python tools/official_spectramb.py run --code /tmp/spectramb-official \\
        --data /tmp/official-spectramb/data/taobao --deps /tmp/official-spectramb/pydeps > taobao-15k.log 2>&1 &
    python tools/official_spectramb.py parse taobao-15k.log [--every 5]

``write`` lays our atomic files out as the official ``data_set.DataSet`` reads them (CRGCN-family layout, the
files its ``data_process.py`` derives from ``<behavior>.txt``): ``count.txt`` (JSON users/items), per behavior
``<b>.txt`` ("user item" lines, training pairs) and ``<b>_dict.txt`` (JSON user -> items), ``all.txt`` /
``all_dict.txt`` (the union of all behaviors), ``train_dict.txt`` (= the target's dict: the BPR pairs),
``validation_dict.txt`` and ``test_dict.txt`` (our validation and test target rows). Ids are 1-based in the
order of our ``.user`` / ``.item`` files (0 is the official padding row); duplicate pairs are written once.

``run`` starts the official ``main.py`` with its README preset for the dataset (taobao:
``--content_coeff=1.25 --processed_global_coeff=0``) plus ``--device=cpu`` — a command-line option of theirs
(default ``cuda:6``), so their files stay unchanged. ``parse`` reads the log it printed into a per-epoch
trajectory (valid/test HR@10, NDCG@10, seconds) and picks the best validation epoch by the official rule
(first epoch with a strictly higher validation hit@10).
"""
import argparse
import json
import os
import re
import sys
from pathlib import Path

import pandas as pd
import yaml

from recbole_spectral.errors import DataError, SpectralError

# README presets of the official code: its data folder (main.py's data_path), its behavior list, its flags
PRESETS = {
    "taobao": {"folder": "taobao", "behaviors": ["view", "cart", "buy"],
               "flags": ["--content_coeff=1.25", "--processed_global_coeff=0"]},
    "tmall": {"folder": "Tmall", "behaviors": ["click", "collect", "cart", "buy"],
              "flags": ["--content_coeff=1", "--processed_global_coeff=0"]},
}
COLUMNS = ("user_id", "item_id", "behavior")


# -- write: our atomic files -> the official layout ------------------------------------------------

def read_tokens(path):
    """Tokens of a .user/.item file, in file order (header line skipped)."""
    if not path.is_file():
        raise DataError(f"{path} is missing: expected the token list our converter writes")
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    return frame.iloc[:, 0].tolist()


def read_rows(path, users, items):
    """(user id, item id, behavior) rows of an atomic .inter file, ids mapped to 1-based official ids."""
    if not path.is_file():
        raise DataError(f"{path} is missing: expected an atomic .inter file")
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    names = {c.split(":")[0]: c for c in frame.columns}
    if any(c not in names for c in COLUMNS):
        raise DataError(f"{path}: expected columns {list(COLUMNS)}, found {[c.split(':')[0] for c in frame.columns]}")
    out = []
    for field, ids in (("user_id", users), ("item_id", items)):
        mapped = frame[names[field]].map(ids)
        if mapped.isna().any():
            bad = frame[names[field]][mapped.isna()].iloc[0]
            raise DataError(f"{path}: {field} '{bad}' is not in the dataset's .{field[:4]} file")
        out.append(mapped.astype(int).tolist())
    return list(zip(out[0], out[1], frame[names["behavior"]].tolist()))


def pair_dict(pairs):
    """user -> items in first-occurrence order, duplicates once (the official ``generate_dict``)."""
    out = {}
    for u, i in pairs:
        items = out.setdefault(u, [])
        if i not in items:
            items.append(i)
    return out


def dumps(mapping):
    return json.dumps({str(u): items for u, items in mapping.items()})


def pair_lines(mapping):
    return "".join(f"{u} {i}\n" for u, items in mapping.items() for i in items)


def official_layout(atomic):
    """{file name: text} of the official layout for our atomic folder ``atomic`` (<name>.yaml, .user, .item,
    .train/.valid/.test.inter)."""
    atomic = Path(atomic)
    name = atomic.name
    config_file = atomic / f"{name}.yaml"
    if not config_file.is_file():
        raise DataError(f"{config_file} is missing: expected the dataset YAML (behaviors, target_behavior)")
    config = yaml.safe_load(config_file.read_text()) or {}
    behaviors, target = config.get("behaviors"), config.get("target_behavior")
    if not behaviors or target not in behaviors:
        raise DataError(f"{config_file}: expected 'behaviors' (funnel order) and a 'target_behavior' among them")
    behaviors, target = [str(b) for b in behaviors], str(target)
    users = {t: k + 1 for k, t in enumerate(read_tokens(atomic / f"{name}.user"))}
    items = {t: k + 1 for k, t in enumerate(read_tokens(atomic / f"{name}.item"))}

    train = read_rows(atomic / f"{name}.train.inter", users, items)
    unknown = sorted({b for _, _, b in train} - set(behaviors))
    if unknown:
        raise DataError(f"{atomic / f'{name}.train.inter'}: behavior '{unknown[0]}' is not in the YAML's behaviors {behaviors}")
    files = {"count.txt": json.dumps({"user": len(users), "item": len(items)})}
    union = {}
    for b in behaviors:
        per_user = pair_dict((u, i) for u, i, rb in train if rb == b)
        files[f"{b}.txt"] = pair_lines(per_user)
        files[f"{b}_dict.txt"] = dumps(per_user)
        for u, its in per_user.items():
            union.setdefault(u, set()).update(its)
    union = {u: sorted(its) for u, its in union.items()}
    files["all.txt"] = pair_lines(union)
    files["all_dict.txt"] = dumps(union)
    files["train_dict.txt"] = files[f"{target}_dict.txt"]  # data_process.py: copy of buy_dict.txt
    for split, out in (("valid", "validation_dict.txt"), ("test", "test_dict.txt")):
        path = atomic / f"{name}.{split}.inter"
        rows = read_rows(path, users, items)
        other = [b for _, _, b in rows if b != target]
        if other:
            raise DataError(f"{path}: holds a '{other[0]}' row; expected target ('{target}') rows only")
        files[out] = dumps(pair_dict((u, i) for u, i, _ in rows))
    return files, behaviors


def write(args):
    files, behaviors = official_layout(args.atomic)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for file, text in files.items():
        (out / file).write_text(text)
    count = json.loads(files["count.txt"])
    print(f"wrote {out}: {len(files)} files, behaviors {behaviors}, {count['user']} users, {count['item']} items")


# -- run: the official main.py on CPU -----------------------------------------------------------------

def command(args):
    """(cwd, argv, env) that run the official main.py on ``args.data`` with the README preset."""
    preset = PRESETS[args.data_name]
    code, data = Path(args.code).resolve(), Path(args.data).resolve()
    if not (code / "main.py").is_file():
        raise DataError(f"{code / 'main.py'} is missing: expected the unpacked official SpectraMB code")
    missing = [f for f in [f"{b}.txt" for b in preset["behaviors"]] + ["count.txt", "all.txt", "train_dict.txt"]
               if not (data / f).is_file()]
    if missing:
        raise DataError(f"{data / missing[0]} is missing: the official '{args.data_name}' preset reads behaviors "
                        f"{preset['behaviors']} (write the layout with the 'write' subcommand)")
    written = sorted(f.name[:-len("_dict.txt")] for f in data.glob("*_dict.txt")
                     if f.name not in {"all_dict.txt", "train_dict.txt", "validation_dict.txt", "test_dict.txt"})
    if written != sorted(preset["behaviors"]):
        raise DataError(f"{data}: holds behaviors {written}, but the official '{args.data_name}' preset reads "
                        f"exactly {preset['behaviors']} (others would be silently ignored)")
    link = code / "data" / preset["folder"]
    link.parent.mkdir(exist_ok=True)
    if link.is_symlink() or link.exists():
        if link.resolve() != data:
            raise DataError(f"{link} already exists and is not a link to {data}")
    else:
        link.symlink_to(data)
    argv = [args.python, "main.py", f"--data_name={args.data_name}", *preset["flags"], "--device=cpu", *args.extra]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if args.deps:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(args.deps).resolve()), env.get("PYTHONPATH")]))
    return code, argv, env


def run(args):
    code, argv, env = command(args)
    print(f"cd {code} && {' '.join(argv)}", flush=True)
    os.chdir(code)
    os.execvpe(argv[0], argv, env)  # this process becomes the official run: its PID is the run's PID


# -- parse: the log -> trajectory -----------------------------------------------------------------------

TRAIN = re.compile(r"epoch (\d+) ([\d.]+)s Train loss is \[([^\]]*)\]")
EVAL = re.compile(r"(validate|test) (\d+) cost time ([\d.]+)s, result: (\{[^}]*\})")
METRIC = re.compile(r"'(\w+@\d+)': (?:np\.float\d*\()?([-+\d.eE]+|nan)")
END = re.compile(r"training end, best iteration (\d+)")
STEPS = re.compile(r"Train\s+\d+.*?\s\d+/(\d+) \[")  # tqdm's bar: "Train     1...|    | 12/75 [00:43<..."


def parse_log(text):
    """{"epochs": [{epoch, loss, train_s, eval_s, valid: {...}, test: {...}}], "ended": best iteration or None,
    "steps": optimiser steps per epoch (tqdm's total) or None}."""
    epochs, ended, steps = {}, None, None
    for line in re.split(r"[\r\n]", text):
        if steps is None and (m := STEPS.search(line)):
            steps = int(m[1])
        if m := TRAIN.search(line):
            row = epochs.setdefault(int(m[1]), {"epoch": int(m[1]), "eval_s": 0.0})
            row["train_s"], row["loss"] = float(m[2]), float(m[3])
        elif m := EVAL.search(line):
            row = epochs.setdefault(int(m[2]), {"epoch": int(m[2]), "eval_s": 0.0})
            row["valid" if m[1] == "validate" else "test"] = {k: float(v) for k, v in METRIC.findall(m[4])}
            row["eval_s"] += float(m[3])
        elif m := END.search(line):
            ended = int(m[1])
    complete = [epochs[e] for e in sorted(epochs) if "valid" in epochs[e] and "test" in epochs[e]]
    return {"epochs": complete, "ended": ended, "steps": steps}


def best_epoch(epochs, key="hit@10"):
    """The official choice: the first epoch whose validation ``key`` is strictly above every earlier one."""
    best, score = None, 0.0
    for row in epochs:
        if row["valid"][key] > score:
            best, score = row, row["valid"][key]
    return best


def trajectory_markdown(parsed, every=1):
    epochs = parsed["epochs"]
    best = best_epoch(epochs)
    lines = ["| epoch | train loss | valid HR@10 | valid NDCG@10 | test HR@10 | test NDCG@10 | train s | eval s |",
             "|---|---|---|---|---|---|---|---|"]
    for row in epochs:
        if row["epoch"] % every and row is not best and row is not epochs[-1] and row["epoch"] != 1:
            continue
        mark = " (best valid)" if row is best else ""
        lines.append(f"| {row['epoch']}{mark} | {row.get('loss', float('nan')):.4f} | {row['valid']['hit@10']:.4f} | "
                     f"{row['valid']['ndcg@10']:.4f} | {row['test']['hit@10']:.4f} | {row['test']['ndcg@10']:.4f} | "
                     f"{row.get('train_s', float('nan')):.0f} | {row['eval_s']:.0f} |")
    return "\n".join(lines)


def summary(parsed):
    epochs = parsed["epochs"]
    if not epochs:
        return "no complete epoch in the log yet"
    best = best_epoch(epochs)
    train_s = [r["train_s"] for r in epochs if "train_s" in r]
    state = (f"early-stopped (official 'training end', best iteration {parsed['ended']})" if parsed["ended"]
             else f"not ended: {len(epochs)} epochs complete, {epochs[-1]['epoch'] - best['epoch']} since the best")
    return (f"{state}; best validation epoch {best['epoch']}: valid HR@10 {best['valid']['hit@10']:.4f}, "
            f"test HR@10 {best['test']['hit@10']:.4f}, NDCG@10 {best['test']['ndcg@10']:.4f}; "
            f"train {sum(train_s) / len(train_s):.0f} s/epoch, valid+test evaluation "
            f"{sum(r['eval_s'] for r in epochs) / len(epochs):.0f} s/epoch (mean of {len(epochs)})")


BLOCK = ("<!-- official_spectramb parse: start -->", "<!-- official_spectramb parse: end -->")


def result_lines(parsed, best, every):
    """The result table (the best-validation epoch) and the trajectory, as markdown lines."""
    return ["| run | seeds | valid HR@10 | test HR@10 | test NDCG@10 | best epoch (steps of Adam) |",
            "|---|---|---|---|---|---|",
            f"| official code, README taobao command, CPU | 1 (2026) | {best['valid']['hit@10']:.4f} | "
            f"{best['test']['hit@10']:.4f} | {best['test']['ndcg@10']:.4f} | {best['epoch']}"
            + (f" ({parsed['steps']} steps/epoch: {parsed['steps'] * best['epoch']})" if parsed["steps"] else "")
            + " |",
            "", "Trajectory (" + ("every epoch" if every == 1 else f"every {every}th epoch, the first, the best and the last")
            + "; eval s = validation + test):",
            "", trajectory_markdown(parsed, every)]


def report_block(parsed, log, every, tool=None):
    """The generated part of the report of ``tool`` (a tool module; default this one): its markers, the command
    that wrote it, its summary, and its ``result_lines`` at its ``best_epoch``."""
    tool = tool or sys.modules[__name__]
    lines = [tool.BLOCK[0], f"Written by `python tools/{Path(tool.__file__).name} parse {log} --every {every} "
             "--report <this file>`:", "", tool.summary(parsed) + "."]
    best = tool.best_epoch(parsed["epochs"]) if parsed["epochs"] else None
    if best:
        lines += ["", *tool.result_lines(parsed, best, every)]
    return "\n".join(lines + [tool.BLOCK[1]])


def update_report(path, block, markers=BLOCK):
    """Replace the generated block of the report at ``path`` (between the two ``markers``)."""
    text = path.read_text() if path.is_file() else ""
    start, end = text.find(markers[0]), text.find(markers[1])
    if start < 0 or end < start:
        raise DataError(f"{path}: expected the markers '{markers[0]}' ... '{markers[1]}' where the generated part goes")
    path.write_text(text[:start] + block + text[end + len(markers[1]):])


def parse_with(args, tool):
    """The 'parse' subcommand of a tool module (this one, tools/official_ssr.py): its ``parse_log`` on the log,
    its report block into ``args.report`` between its ``BLOCK`` markers, its trajectory and summary printed."""
    path = Path(args.log)
    if not path.is_file():
        raise DataError(f"{path} is missing: expected the log of a 'run'")
    parsed = tool.parse_log(path.read_text(errors="replace"))
    if args.report:
        update_report(Path(args.report), report_block(parsed, args.log, args.every, tool), tool.BLOCK)
    if parsed["epochs"]:
        print(tool.trajectory_markdown(parsed, args.every))
    print(tool.summary(parsed))


def finish_cli(parser, sub, tool, argv):
    """Add the 'parse' subcommand of the tool module ``tool`` to ``parser`` and run the command line ``argv``
    (a SpectralError is one line on stderr, exit code 2)."""
    p = sub.add_parser("parse", help="trajectory and best-validation test figures from a run's log")
    p.add_argument("log")
    p.add_argument("--every", type=int, default=1, help="print every n-th epoch (plus the first, best, last)")
    p.add_argument("--report", help="markdown file whose generated block (between its markers) is rewritten")
    p.set_defaults(func=lambda args: parse_with(args, tool))
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except SpectralError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("write", help="write the official data layout from our atomic folder")
    p.add_argument("--atomic", required=True, help="our converted folder, e.g. $RECBOLE_SPECTRAL_DATA/taobao-15k")
    p.add_argument("--out", required=True, help="layout folder (outside the repository)")
    p.set_defaults(func=write)
    p = sub.add_parser("run", help="run the official main.py (README preset, CPU) on a written layout")
    p.add_argument("--code", required=True, help="the unpacked official code (main.py, data_set.py, ...)")
    p.add_argument("--data", required=True, help="the folder 'write' filled")
    p.add_argument("--data-name", default="taobao", choices=sorted(PRESETS), help="official README preset")
    p.add_argument("--deps", help="folder added to PYTHONPATH (pip install --target: loguru)")
    p.add_argument("--python", default=sys.executable, help="interpreter for main.py (default: this one)")
    p.add_argument("extra", nargs="*", help="further official flags after --, e.g. -- --epochs=3")
    p.set_defaults(func=run)
    finish_cli(parser, sub, sys.modules[__name__], argv)


if __name__ == "__main__":
    main()
