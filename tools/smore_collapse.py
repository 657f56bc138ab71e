"""SMORE's published recipe on dense data: what its loss terms do, epoch by epoch (docs/mm_models.md, SMORE).

    RECBOLE_SPECTRAL_DATA=/tmp/data python run_recbole_spectral.py prepare mmrec --src <ml100k-text> --name ml100k-text
    OMP_NUM_THREADS=1 nice -n 10 python tools/smore_collapse.py --data /tmp/data --cl 0.03 0

For each InfoNCE weight ``cl_loss`` (everything else the shipped SMORE defaults, the published Sports recipe),
trains SMORE for ``--epochs`` epochs (batches of 2048, as the field benchmark) and prints, after each epoch:
validation Recall@20; on a fixed probe of 2048 training pairs the loss terms (BPR, InfoNCE of items, InfoNCE of
users); and how spread the behaviour (LightGCN) embeddings E_c are: the mean cosine between random pairs of
users and of items (uniformity: 0 = spread out), and the mean cosine of each node's side and behaviour
embeddings (what the InfoNCE aligns).
"""
import argparse

import numpy as np
import torch
import torch.nn.functional as F

from recbole_spectral.config import SpectralConfig
from recbole_spectral.layers.contrastive import info_nce
from recbole_spectral.quick_start import start_run, train_and_test


def mean_pair_cosine(x, n=4000, seed=0):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randint(0, x.shape[0], (n,), generator=g), torch.randint(0, x.shape[0], (n,), generator=g)
    keep = a != b
    return float((F.normalize(x[a[keep]], dim=1) * F.normalize(x[b[keep]], dim=1)).sum(1).mean())


def probe(model, pairs):
    users, items = pairs
    with torch.no_grad():
        out, side, content = model.forward()
        n_users = model.n_users
        u, p = out[users], out[n_users + items]
        neg = torch.randint(1, model.n_items, items.shape, generator=torch.Generator().manual_seed(1))
        q = out[n_users + neg]
        bpr = float(-F.logsigmoid((u * p).sum(1) - (u * q).sum(1)).mean())
        cl_items = float(info_nce(side[n_users + items], content[n_users + items], tau=model.temperature, reduction="mean"))
        cl_users = float(info_nce(side[users], content[users], tau=model.temperature, reduction="mean"))
        return {"bpr": bpr, "infonce_items": cl_items, "infonce_users": cl_users,
                "uniformity_users": mean_pair_cosine(content[1:n_users]),
                "uniformity_items": mean_pair_cosine(content[n_users + 1:]),
                "side_content_cos": float((F.normalize(side[1:], dim=1) * F.normalize(content[1:], dim=1)).sum(1).mean())}


def run(args, cl):
    config = SpectralConfig("SMORE", args.dataset, config_dict={
        "data_path": args.data, "epochs": args.epochs, "stopping_step": 100, "eval_step": 1, "seed": args.seed,
        "valid_metric": "Recall@20", "metrics": ["Recall"], "topk": [20], "train_batch_size": 2048,
        "cl_loss": cl, "use_gpu": False, "show_progress": False, "state": "WARNING", "checkpoint_dir": args.work})
    start_run(config)
    trainers, rows = [], []

    def keep(cls):
        class Kept(cls):
            def __init__(self, *a, **k):
                super().__init__(*a, **k)
                trainers.append(self)
        return Kept

    def on_valid(epoch_idx, score):
        model = trainers[0].model
        train = trainers[0].train_loss_dict.get(epoch_idx)
        row = {"cl_loss": cl, "epoch": epoch_idx + 1, "valid_recall@20": score, "train_loss": train,
               **probe(model, trainers[0].pairs)}
        rows.append(row)
        print(" | ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)

    def wrap(cls):
        kept = keep(cls)

        class WithPairs(kept):
            def fit(self, train_data, *a, **k):  # a fixed probe: 2048 training pairs
                r = train_data.dataset.inter_matrix(form="coo")
                g = np.random.default_rng(0)
                pick = g.choice(r.nnz, 2048, replace=False)
                self.pairs = (torch.as_tensor(r.row[pick], dtype=torch.long), torch.as_tensor(r.col[pick], dtype=torch.long))
                return super().fit(train_data, *a, **k)
        return WithPairs

    train_and_test(config, saved=False, verbose=False, callback_fn=on_valid, trainer_wrapper=wrap)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--dataset", default="ml100k-text")
    parser.add_argument("--cl", type=float, nargs="+", default=[0.03, 0.0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--work", default="/tmp/smore-collapse")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for cl in args.cl:
        run(args, cl)


if __name__ == "__main__":
    main()
