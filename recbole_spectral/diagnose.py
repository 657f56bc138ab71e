"""``run_recbole_spectral.py diagnose --model_file=saved/<checkpoint>.pth``: look inside a trained model.

Reloads a checkpoint with its dataset and split (never retrains) and writes to ``--out_dir``:

- ``diagnostics.json``: the numbers behind every figure;
- one PNG per figure and ``index.md`` showing them with one sentence each.

For every model (plugin or RecBole): test metrics by user-degree bucket (training interactions
≤ 5, 6–20, > 20) — next to a reference model's (``--reference_file``, e.g. a LightGCN checkpoint on the
same split) when one is given — hit rate of the test items by item-popularity bucket, and the popularity
profile of the recommended top-10 (how much of it is head: the 20 % most popular training items).
Bucket metrics are RecBole's metrics recomputed over groups of rows of one test evaluation.

A plugin model adds its own views through two optional methods (``recbole_spectral.model.base``):
``diagnostics()`` — figure specs of what it learned — and ``inference_ablations()`` — named context
managers that remove a part at inference (a behavior view, a band); each is scored by the same trainer
evaluation as the test metrics, and the row "nothing removed" reproduces the test result exactly.
"""
import argparse
import json
import math
import os
from contextlib import nullcontext
from logging import getLogger

import numpy as np
import torch

from recbole_spectral.errors import CheckpointError, SpectralError

USER_BUCKETS = ((0, 5, "cold (<= 5)"), (6, 20, "6-20"), (21, None, "> 20"))
HEAD_SHARE = 0.2  # head items: the most popular 20 % of items by training interactions
TOP_K = 10


# -- evaluation on the reloaded run -----------------------------------------------------------------
def _recording_trainer(config, model, train_data):
    """The run's trainer with an evaluator that keeps every row's user (metrics by group later)."""
    from recbole_spectral.cold_start import ColdStartEvaluator
    from recbole_spectral.trainer import trainer_class

    trainer = trainer_class(config)(config, model)
    trainer.evaluator = ColdStartEvaluator(config, None)
    trainer.count_training_interactions(train_data)
    return trainer


def _plain(metrics):
    return {k: float(v) for k, v in metrics.items()}


def user_degree_metrics(trainer, test_data):
    """{bucket: {"users": n, metric: value}} from the rows of one test evaluation, plus the overall result."""
    result = _plain(trainer.evaluate(test_data, load_best_model=False, show_progress=False))
    evaluator = trainer.evaluator
    degree = evaluator.user_counts[evaluator.last_users]
    buckets = {}
    for low, high, label in USER_BUCKETS:
        rows = (degree >= low) & (degree <= high if high is not None else torch.ones_like(degree, dtype=torch.bool))
        buckets[label] = {"users": int(rows.sum()), **(_plain(evaluator.metrics_for(rows)) if rows.any() else {})}
    return result, buckets


@torch.no_grad()
def top_k_items(model, test_data, k=TOP_K, batch_users=2048):
    """(users, top-k item ids) for every test user, training history masked as RecBole's full ranking does."""
    model.eval()
    uid_field = test_data._dataset.uid_field
    users = torch.as_tensor(test_data.uid_list)
    from recbole.data.interaction import Interaction

    tops = []
    for start in range(0, len(users), batch_users):
        chunk = users[start:start + batch_users]
        scores = model.full_sort_predict(Interaction({uid_field: chunk})).view(len(chunk), -1).clone()
        scores[:, 0] = -math.inf
        for row, u in enumerate(chunk.tolist()):
            history = test_data.uid2history_item[u]
            if history is not None and len(history):
                scores[row, history] = -math.inf
        tops.append(torch.topk(scores, k, dim=1).indices)
    return users, torch.cat(tops)


def popularity_profile(model, test_data, train_dataset, k=TOP_K):
    """Head share of the recommended top-k, and the hit rate of test items by popularity bucket."""
    counts = np.bincount(train_dataset.inter_feat[train_dataset.iid_field].numpy(), minlength=train_dataset.item_num)
    counts[0] = -1  # padding item
    order = np.argsort(-counts, kind="stable")
    n_head = max(int(round(HEAD_SHARE * (train_dataset.item_num - 1))), 1)
    head = np.zeros(train_dataset.item_num, dtype=bool)
    head[order[:n_head]] = True
    users, tops = top_k_items(model, test_data, k)
    top = tops.numpy()
    hits = {"head": [0, 0], "tail": [0, 0]}
    for row, u in enumerate(users.tolist()):
        positives = test_data.uid2positive_item[u]
        if positives is None:
            continue
        recommended = set(top[row].tolist())
        for item in positives.tolist():
            bucket = "head" if head[item] else "tail"
            hits[bucket][0] += item in recommended
            hits[bucket][1] += 1
    return {
        "head_items": int(n_head),
        "top_k": k,
        "head_share_of_recommendations": float(head[top].mean()) if top.size else float("nan"),
        "head_share_of_catalogue": float(n_head / (train_dataset.item_num - 1)),
        "test_items": {b: {"count": n, f"hit@{k}": (h / n if n else float("nan"))} for b, (h, n) in hits.items()},
    }


def inference_ablations(model, trainer, test_data, test_result):
    """{name: metrics} for each part the model can remove at inference; "nothing removed" first."""
    ablations = getattr(model, "inference_ablations", None)
    if ablations is None:
        return None
    rows = {}
    for name, context in [("nothing removed", nullcontext), *ablations().items()]:
        with context():
            model.eval()
            rows[name] = _plain(trainer.evaluate(test_data, load_best_model=False, show_progress=False))
    if rows["nothing removed"] != test_result:
        raise AssertionError("the unablated evaluation does not reproduce the test result")
    return rows


# -- figures ---------------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw(spec, path):
    """Draw one figure spec: ``kind`` lines | bars | heatmap | box, ``data`` and labels (see model/base.py)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=spec.get("size", (6.0, 3.6)))
    kind, data = spec["kind"], spec["data"]
    if kind == "lines":
        for label, values in data.items():
            ax.plot(spec.get("x") or range(len(values)), values, label=label)
        ax.legend(fontsize=7)
    elif kind == "bars":
        groups = list(data)
        series = list(dict.fromkeys(name for values in data.values() for name in values))
        width = 0.8 / max(len(series), 1)
        for j, name in enumerate(series):
            xs = [i + (j - (len(series) - 1) / 2) * width for i in range(len(groups))]
            ax.bar(xs, [data[g].get(name, 0.0) for g in groups], width, label=name)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(groups, rotation=20, ha="right", fontsize=8)
        if len(series) > 1:
            ax.legend(fontsize=7)
    elif kind == "heatmap":
        image = ax.imshow(np.asarray(data), cmap="viridis")
        fig.colorbar(image, ax=ax)
        labels = spec.get("labels")
        if labels:
            ax.set_xticks(range(len(labels)))
            ax.set_xticklabels(labels, fontsize=8)
            ax.set_yticks(range(len(labels)))
            ax.set_yticklabels(labels, fontsize=8)
    elif kind == "box":
        ax.boxplot(list(data.values()), showfliers=False)
        ax.set_xticks(range(1, len(data) + 1))
        ax.set_xticklabels(list(data), rotation=20, ha="right", fontsize=8)
    else:
        raise ValueError(f"unknown figure kind {kind!r}")
    ax.set_title(spec["title"], fontsize=10)
    ax.set_xlabel(spec.get("xlabel", ""))
    ax.set_ylabel(spec.get("ylabel", ""))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _finite(value):
    """``value`` as JSON-ready plain numbers (numpy and tensors included)."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _finite(value.detach().cpu().numpy())
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


# -- the command -------------------------------------------------------------------------------------------
def _checked(model_file):
    if not isinstance(model_file, str) or not model_file:
        raise CheckpointError("--model_file: expected the path of a checkpoint written by a run (saved/<Model>-*.pth)")
    return model_file


def _load(model_file):
    from recbole_spectral.quick_start import load_data_and_model

    return load_data_and_model(_checked(model_file))


def diagnose(model_file, out_dir=None, reference_file=None):
    """Write the figures, ``diagnostics.json`` and ``index.md`` for ``model_file``; returns the JSON dict."""
    if reference_file:  # both files are checked before anything is loaded (one line naming the file)
        from recbole_spectral.checkpoint import read_checkpoint

        read_checkpoint(reference_file, dataset=read_checkpoint(_checked(model_file))["config"]["dataset"])
    config, model, _, train_data, _, test_data = _load(model_file)
    out_dir = out_dir or os.path.join("diagnostics", os.path.splitext(os.path.basename(model_file))[0])
    os.makedirs(out_dir, exist_ok=True)
    trainer = _recording_trainer(config, model, train_data)
    test_result, by_degree = user_degree_metrics(trainer, test_data)
    report = {"model": config["model"], "dataset": config["dataset"], "model_file": os.path.abspath(model_file),
              "test_result": test_result, "by_user_degree": {config["model"]: by_degree}}
    if reference_file:
        ref_config, ref_model, _, ref_train, _, ref_test = _load(reference_file)
        _, ref_buckets = user_degree_metrics(_recording_trainer(ref_config, ref_model, ref_train), ref_test)
        report["by_user_degree"][f"{ref_config['model']} (reference)"] = ref_buckets
    report["popularity"] = popularity_profile(model, test_data, train_data._dataset)
    ablations = inference_ablations(model, trainer, test_data, test_result)
    if ablations is not None:
        report["removed_at_inference"] = ablations

    # the field's headline metric: HR@10 for multi-behavior data, Recall@20 otherwise
    from recbole_spectral.model.base import dataset_kind_of

    preferred = ("hit@10", "recall@20") if dataset_kind_of(train_data._dataset) == "multibehavior" else ("recall@20", "hit@10")
    metric = next((m for m in (*preferred, "ndcg@10") if m in test_result), next(iter(test_result)))
    figures = [{
        "name": "user_degree", "kind": "bars", "title": f"test {metric} by user degree (training interactions)",
        "ylabel": metric, "data": {bucket: {name: rows[bucket].get(metric, 0.0) for name, rows in report["by_user_degree"].items()}
                                   for bucket in by_degree},
        "sentence": f"Test {metric} of the users in each training-degree bucket (users per bucket in the JSON)"
                    + (", next to the reference model." if reference_file else "."),
    }, {
        "name": "popularity", "kind": "bars", "title": f"head items ({int(HEAD_SHARE * 100)} % most popular): share and hit rate",
        "data": {"recommended top-10": {"head share": report["popularity"]["head_share_of_recommendations"]},
                 "catalogue": {"head share": report["popularity"]["head_share_of_catalogue"]},
                 "test items hit (head)": {"head share": report["popularity"]["test_items"]["head"][f"hit@{TOP_K}"]},
                 "test items hit (tail)": {"head share": report["popularity"]["test_items"]["tail"][f"hit@{TOP_K}"]}},
        "sentence": f"How much of each user's top-{TOP_K} comes from the {int(HEAD_SHARE * 100)} % most popular items, "
                    "against their share of the catalogue, and the hit rate of head and tail test items.",
    }]
    if ablations is not None:
        figures.append({
            "name": "removed_at_inference", "kind": "bars", "title": f"test {metric} with one part removed at inference",
            "ylabel": metric, "data": {name: {metric: rows[metric]} for name, rows in ablations.items()},
            "sentence": f"Test {metric} when one part is removed at inference, same evaluator as the test result "
                        "(the first bar is the test result itself).",
        })
    model_figures = getattr(model, "diagnostics", None)
    if model_figures is not None:
        with torch.no_grad():
            figures += model_figures()
    report["figures"] = {}
    lines = [f"# Diagnostics: {config['model']} on {config['dataset']}", "",
             f"Checkpoint `{model_file}`; test result: "
             + ", ".join(f"{k} {v:.4f}" for k, v in test_result.items()), ""]
    for spec in figures:
        draw(spec, os.path.join(out_dir, f"{spec['name']}.png"))
        report["figures"][spec["name"]] = _finite({k: v for k, v in spec.items() if k in ("title", "data", "x", "labels")})
        lines += [f"## {spec['title']}", "", spec["sentence"], "", f"![{spec['name']}]({spec['name']}.png)", ""]
    report = _finite(report)
    with open(os.path.join(out_dir, "diagnostics.json"), "w") as fp:
        json.dump(report, fp, indent=1, allow_nan=True)
    with open(os.path.join(out_dir, "index.md"), "w") as fp:
        fp.write("\n".join(lines))
    getLogger().info(f"diagnostics written to {out_dir}")
    return report


def parser():
    p = argparse.ArgumentParser(prog="run_recbole_spectral.py diagnose",
                                description="Draw what a trained model learned, from its checkpoint (never retrains).")
    p.add_argument("--model_file", required=True, help="a checkpoint written by a run, e.g. saved/SSR-...pth")
    p.add_argument("--out_dir", default=None, help="default diagnostics/<checkpoint name>")
    p.add_argument("--reference_file", default=None, help="a checkpoint of another model on the same split (e.g. LightGCN)")
    return p


def main(argv):
    args, extra = parser().parse_known_args(argv)
    if extra:
        raise SpectralError(f"diagnose: unrecognised arguments {' '.join(extra)}")
    report = diagnose(args.model_file, args.out_dir, args.reference_file)
    out_dir = args.out_dir or os.path.join("diagnostics", os.path.splitext(os.path.basename(args.model_file))[0])
    print(f"{report['model']} on {report['dataset']}: {len(report['figures'])} figures, diagnostics.json and "
          f"index.md in {out_dir}")
    return 0
