"""tools/official_ssr.py: an MMRec folder linked into the data folder the released SSR code reads, our split checked
against it, the released configuration handed to their quick_start, and their log parsed with their best-epoch
rule."""
import json
from argparse import Namespace

import numpy as np
import pytest

from recbole_spectral.errors import DataError
from tools.official_ssr import (BLOCK, RELEASED_GRID, best_epoch, command, compare_split, config_dict, main,
                                parse_log, summary)

# x_label 0/1/2 = train/valid/test; user 3 has no training row (their loader drops its test row)
INTER = ("userID\titemID\trating\ttimestamp\tx_label\n"
         "0\t0\t1\t0\t0\n0\t1\t1\t0\t0\n1\t2\t1\t0\t0\n2\t1\t1\t0\t0\n"
         "0\t2\t1\t0\t1\n1\t0\t1\t0\t1\n"
         "0\t3\t1\t0\t2\n2\t0\t1\t0\t2\n3\t1\t1\t0\t2\n")


def mmrec(root, inter=INTER, rows=4):
    folder = root / "mini"
    folder.mkdir(parents=True)
    (folder / "mini.inter").write_text(inter)
    for modality in ("image", "audio"):
        np.save(folder / f"{modality}_feat.npy", np.ones((rows, 3), dtype=np.float16))
    return folder


def atomic(root, train="0\t0\n0\t1\n1\t2\n2\t1\n", valid="0\t2\n1\t0\n", test="0\t3\n2\t0\n3\t1\n"):
    """Our converted folder of the same split (RecBole atomic files)."""
    folder = root / "mini"
    folder.mkdir(parents=True)
    for split, rows in (("train", train), ("valid", valid), ("test", test)):
        (folder / f"mini.{split}.inter").write_text("user_id:token\titem_id:token\n" + rows)
    return folder


def write(src, out, *extra):
    main(["write", "--src", str(src), "--name", "mini", "--out", str(out), "--text-from", "audio", *extra])


def test_write_links_the_interactions_and_two_modalities_and_checks_our_split(tmp_path, capsys):
    src = mmrec(tmp_path / "src")
    write(src, tmp_path / "data", "--atomic", str(atomic(tmp_path / "ours")))
    folder = tmp_path / "data" / "mini"
    assert sorted(p.name for p in folder.iterdir()) == ["image_feat.npy", "mini.inter", "text_feat.npy"]
    assert (folder / "text_feat.npy").resolve() == (src / "audio_feat.npy").resolve()  # audio plays their text
    assert (folder / "image_feat.npy").resolve() == (src / "image_feat.npy").resolve()
    assert (folder / "mini.inter").read_text() == INTER  # a link, read as is
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == [
        "4 users, 4 items (max id + 1, as their loader counts)",
        "train: 4 rows, the same (user, item) pairs in both",
        "valid: 2 rows, the same (user, item) pairs in both; 2 users, of whom 0 have no training row (0 rows): "
        "their loader drops them (filter_out_cod_start_users), RecBole ranks them",
        "test: 3 rows, the same (user, item) pairs in both; 3 users, of whom 1 have no training row (1 rows): "
        "their loader drops them (filter_out_cod_start_users), RecBole ranks them",
    ]
    write(src, tmp_path / "data")  # again: the same links are kept


def test_write_refuses_bad_inputs_with_one_line(tmp_path, capsys):
    def error(*args):
        with pytest.raises(SystemExit) as stop:
            main(["write", "--name", "mini", *args])
        assert stop.value.code == 2
        return capsys.readouterr().err.strip()

    src = mmrec(tmp_path / "a")
    assert error("--src", str(src), "--out", str(tmp_path / "d")).endswith(  # no text_feat.npy there
        "text_feat.npy is missing: expected an item feature matrix (row i = itemID i)")
    assert "3 rows; expected at least 4 (max itemID + 1)" in error(
        "--src", str(mmrec(tmp_path / "b", rows=3)), "--out", str(tmp_path / "d"), "--text-from", "audio")
    assert "x_label 3; expected 0/1/2" in error(
        "--src", str(mmrec(tmp_path / "c", inter=INTER + "1\t1\t1\t0\t3\n")), "--out", str(tmp_path / "d"))
    ours = atomic(tmp_path / "ours", valid="0\t2\n1\t3\n")
    assert error("--src", str(src), "--out", str(tmp_path / "d"), "--text-from", "audio", "--atomic", str(ours)) \
        .endswith("mini.valid.inter: its (user, item) rows differ from the x_label == 1 rows of the MMRec file")
    (tmp_path / "e" / "mini").mkdir(parents=True)
    (tmp_path / "e" / "mini" / "audio_feat.npy").write_text("")
    assert "audio_feat.npy: their model loads every *_feat file of the folder; remove it" in error(
        "--src", str(src), "--out", str(tmp_path / "e"), "--text-from", "audio")


def test_compare_split_counts_rows_and_cold_users(tmp_path):
    import pandas as pd
    inter = pd.read_csv(mmrec(tmp_path / "src") / "mini.inter", sep="\t")
    lines = compare_split(inter, atomic(tmp_path / "ours"))
    assert [line.split(":")[0] for line in lines] == ["train", "valid", "test"]
    assert "of whom 1 have no training row (1 rows)" in lines[2]


def code(root, grid=None):
    """A stand-in for the unpacked library: only the files 'run' checks."""
    src = root / "code" / "src"
    (src / "utils").mkdir(parents=True)
    (src / "configs" / "model").mkdir(parents=True)
    (src / "utils" / "quick_start.py").write_text("")
    grid = grid or ["embedding_size", "num_layers", "learning_rate", "cl_weight"]
    (src / "configs" / "model" / "SSR.yaml").write_text(f"hyper_parameters: {json.dumps(grid)}\n")
    return root / "code"


def test_config_fixes_every_grid_key_to_the_released_value_on_cpu(tmp_path):
    config = config_dict(tmp_path / "data", "tiktok", ["epochs=2", "num_layers=3"])
    assert config["learning_rate"] == [0.0001] and config["cl_weight"] == [0.0001] and config["seed"] == [999]
    assert config["num_layers"] == [3] and config["epochs"] == 2  # a grid key stays a one-element list
    assert config["use_gpu"] is False and config["stopping_step"] == 20 and config["train_batch_size"] == 2048
    assert config["data_path"] == str((tmp_path / "data").resolve()) + "/"  # they concatenate data_path + dataset
    assert config["inter_file_name"] == "tiktok.inter" and config["USER_ID_FIELD"] == "userID"
    assert all(config[key] == [value] for key, value in RELEASED_GRID.items() if key != "num_layers")
    with pytest.raises(DataError, match=r"--set 'epochs': expected key=value"):
        config_dict(tmp_path, "tiktok", ["epochs"])


def test_run_command_hands_the_configuration_to_their_quick_start(tmp_path):
    src = mmrec(tmp_path / "src")
    write(src, tmp_path / "data")
    args = Namespace(code=str(code(tmp_path)), data=str(tmp_path / "data"), name="mini", work=str(tmp_path / "w"),
                     deps=str(tmp_path / "deps"), python="py", set=["epochs=2"])
    cwd, argv, _ = command(args)
    assert cwd == (tmp_path / "w").resolve()
    assert argv[:2] == ["py", "-c"] and "quick_start(model='SSR'" in argv[2] and argv[4] == "mini"
    assert json.loads(argv[3]) == [str((tmp_path / "code" / "src").resolve()), str((tmp_path / "deps").resolve())]
    assert json.loads(argv[5]) == config_dict(tmp_path / "data", "mini", ["epochs=2"])
    args.code = str(code(tmp_path / "other", grid=["num_layers", "dropout"]))
    with pytest.raises(DataError, match=r"SSR\.yaml: grid key 'dropout' has no released value here"):
        command(args)
    args.code, args.name = str(tmp_path / "code"), "tiktok"
    with pytest.raises(DataError, match=r"tiktok\.inter is missing: write the layout"):
        command(args)


# their Trainer.fit output through the stream handler ("%(asctime)-15s %(message)s", "%d %b %H:%M")
BOX = "═" * 92


def epoch_lines(epoch, loss, seconds, valid, test, valid_s=3.0, cap=300):
    def metrics(recall10, recall20, ndcg10, ndcg20):
        return f"recall@10: {recall10:.4f}    recall@20: {recall20:.4f}    ndcg@10: {ndcg10:.4f}    ndcg@20: {ndcg20:.4f}    "
    return (f"07 Dec 05:50    ╔{BOX}╗\n"
            f"07 Dec 05:50    ║ Epoch {epoch:3d}/{cap:3d} │ Train Loss: {loss:.4f} │ Time: {seconds:.2f}s\n"
            f"07 Dec 05:50    ╚{BOX}╝\n"
            f"07 Dec 05:50    ╔{BOX}╗\n"
            f"07 Dec 05:50    ║ Evaluation │ Valid: {valid[1]:.4f} │ Time: {valid_s:.2f}s\n"
            f"07 Dec 05:50    ║ Metrics: {metrics(*valid)}\n"
            f"07 Dec 05:50    ║ Test: {metrics(*test)}\n"
            f"07 Dec 05:50    ╚{BOX}╝\n")


LOG = ("07 Dec 05:47    =========1/1: Parameters: ['seed', 'num_layers']=(999, 2)\n"
       + epoch_lines(1, 0.6931, 200.5, (0.01, 0.02, 0.005, 0.008), (0.011, 0.021, 0.006, 0.009))
       + "\n🏆 New best at epoch 1: recall@20 = 0.0200\n07 Dec 05:51    🏆 SSR - Best Recall@20 = 0.0200 (Epoch 1)\n"
       + epoch_lines(2, 0.5, 100.0, (0.02, 0.03, 0.01, 0.012), (0.02, 0.025, 0.01, 0.011), valid_s=5.0)
       + "07 Dec 05:52    🏆 SSR - Best Recall@20 = 0.0300 (Epoch 2)\n"
       + epoch_lines(3, 0.4, 150.0, (0.03, 0.03, 0.02, 0.02), (0.03, 0.04, 0.02, 0.02))  # a tie: not a new best
       + f"07 Dec 05:53    ╔{BOX}╗\n07 Dec 05:53    ║ Epoch   4/300 │ Train Loss: 0.3000 │ Time: 150.00s\n")


def test_parse_log_reads_complete_epochs_and_keeps_the_first_strictly_best_validation():
    parsed = parse_log(LOG)
    assert [r["epoch"] for r in parsed["epochs"]] == [1, 2, 3]  # epoch 4 is not evaluated yet
    first = parsed["epochs"][0]
    assert first == {"epoch": 1, "loss": 0.6931, "train_s": 200.5, "valid_s": 3.0,
                     "valid": {"recall@10": 0.01, "recall@20": 0.02, "ndcg@10": 0.005, "ndcg@20": 0.008},
                     "test": {"recall@10": 0.011, "recall@20": 0.021, "ndcg@10": 0.006, "ndcg@20": 0.009}}
    assert parsed["cap"] == 300 and parsed["grid"] == 1 and parsed["best_lines"] == [1, 2]
    assert parsed["finished"] is None and parsed["nan"] is None
    assert best_epoch(parsed["epochs"])["epoch"] == 2  # epoch 3 ties at 0.03: their '>' keeps epoch 2
    assert summary(parsed) == (
        "not ended: 3 epochs complete, 1 since the best; best validation epoch 2: valid Recall@20 0.0300, "
        "test Recall@20 0.0250, NDCG@20 0.0110, Recall@10 0.0200, NDCG@10 0.0100; train 150 s/epoch, "
        "validation 4 s/epoch (mean of 3)")
    stopped = parse_log(LOG + f"07 Dec 06:30    ╔{BOX}╗\n║ ✅ Training finished at epoch 23 | Best at epoch 2\n")
    assert summary(stopped).startswith("early-stopped at epoch 23 (their patience 20); best validation epoch 2:")
    assert parse_log(LOG + "07 Dec 05:53    Loss is nan at epoch: 3, batch index: 7\n")["nan"] == 4
    smoke = parse_log(epoch_lines(1, 37.8, 764.4, (0.01, 0.02, 0.005, 0.006), (0.01, 0.02, 0.004, 0.006), cap=2)
                      + epoch_lines(2, 30.1, 700.0, (0.01, 0.03, 0.005, 0.006), (0.01, 0.02, 0.004, 0.006), cap=2))
    assert smoke["cap"] == 2 and summary(smoke).startswith("ended at the epoch cap 2, 0 epochs after the best;")


def test_parse_command_writes_the_report_block_and_prints_the_summary(tmp_path, capsys):
    log, report = tmp_path / "run.log", tmp_path / "report.md"
    log.write_text(LOG)
    report.write_text(f"# official SSR\n{BLOCK[0]}\nold\n{BLOCK[1]}\nkept\n")
    main(["parse", str(log), "--every", "2", "--report", str(report)])
    text = report.read_text()
    assert text.startswith(f"# official SSR\n{BLOCK[0]}\nWritten by") and text.endswith(f"{BLOCK[1]}\nkept\n")
    assert "| released code and configuration, CPU | 1 (999) | 0.0300 | 0.0200 | 0.0250 | 0.0100 | 0.0110 | 2 |" in text
    assert "| 2 (best valid) | 0.5000 | 0.0300 | 0.0120 | 0.0200 | 0.0250 | 0.0100 | 0.0110 | 100 | 5 |" in text
    assert "| 1 | 0.6931 |" in text and "| 3 | 0.4000 |" in text  # the first and the last epoch are always listed
    assert capsys.readouterr().out.splitlines()[-1].startswith("not ended: 3 epochs complete")
    with pytest.raises(SystemExit):
        main(["parse", str(tmp_path / "none.log")])
    assert capsys.readouterr().err.strip().endswith("none.log is missing: expected the log of a 'run'")
