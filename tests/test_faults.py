"""Faults and bad input, as a careful user meets them: a non-finite score or loss stops the run (or is
recorded as a failed evaluation) and never enters a pool, a sort or an export; every bad file or
checkpoint is named in its error; settings are checked before any work; a killed write leaves nothing
stale behind, and a killed search keeps the metrics of its finished rounds."""

import csv
import errno
import gzip
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import InstantiationException

from naolit import checkpoints
from naolit.benchmarks import NB201Table
from naolit.controller import NAOController, fit_controller
from naolit.controller.fit import check_predictor
from naolit.data import LanguageModelingDataModule, read_text
from naolit.faults import NonFiniteError
from naolit.fit import run as fit_run
from naolit.io import atomic_path, remove_stale_temporaries
from naolit.search import ArchPool, SearchLoop, TabularEvaluator
from naolit.search.report import SearchReport
from naolit.search.strategies import RandomSearch
from naolit.search.job import STATE_FILE, build_loop
from naolit.search.job import run as tabular_run
from naolit.spaces import InvalidArchitecture, RNNCellSpace

from conftest import CHILD_ENV, CONF, DATA, NB201_CSV, ROOT
from search_helpers import SPACE, TINY_CONTROLLER, WS_PTB, WS_SEARCH, MatchEvaluator

QUICK_RE = ["strategy=re", "search.budget=31", "logger=none"]  # 30 random architectures, then one child


def composed(out: Path, overrides: list[str]):
    """The config of `python train.py overrides` writing to ``out``, as @hydra.main hands it to the job."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*overrides, f"paths.output_dir={out}"])
    GlobalHydra.instance().clear()
    return cfg


@pytest.fixture(scope="module")
def ws_checkpoint(tmp_path_factory, ptb_data):
    """The last.ckpt of a tiny weight-sharing search on PTB."""
    out = tmp_path_factory.mktemp("ws")
    fit_run(composed(out, [*WS_PTB, *WS_SEARCH, "trainer.max_epochs=2", "logger=none"]))
    return out / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def re_state(tmp_path_factory):
    """The search_state.pt of a tiny regularised-evolution search on NAS-Bench-201."""
    out = tmp_path_factory.mktemp("re")
    tabular_run(composed(out, ["+experiment=nb201_nao", *QUICK_RE]))
    return out / STATE_FILE


@pytest.fixture(scope="module")
def table_frame():
    return pd.read_csv(NB201_CSV)


# ---- non-finite values ---------------------------------------------------------------------------
class NaNAfterFirstBatch(MatchEvaluator):
    """MatchEvaluator, except that after its first batch an architecture with 'none' on edge 0->1 scores NaN."""

    def score(self, archs):
        scores = super().score(archs)
        first = len(self.batches) == 1
        return [s if first or arch[0] != 1 else math.nan for s, arch in zip(scores, self.batches[-1])]


def test_a_nonfinite_score_stops_the_search_naming_the_architecture_and_round():
    loop = SearchLoop(RandomSearch(SPACE, initial_size=10, per_round=10), NaNAfterFirstBatch(), seed=0, budget=40)
    saved = []
    with pytest.raises(NonFiniteError, match=r"^search round 1: architecture \{'space': 'nb201', 'arch_str': "
                                             r"'\|none~0\|\+.*'\} scored matches=nan \(search.on_nonfinite=skip"):
        loop.run(on_round=lambda lp, new: saved.append(lp.state_dict()))
    assert [state["round"] for state in saved] == [1]  # the last good state is the one before the NaN
    assert all(math.isfinite(r.score) for r in loop.pool.history + list(loop.pool.live.values()))


def test_skip_records_failed_architectures_in_the_history_only(tmp_path):
    evaluator = NaNAfterFirstBatch()
    loop = SearchLoop(RandomSearch(SPACE, initial_size=10, per_round=10), evaluator, seed=0, budget=40,
                      on_nonfinite="skip")
    report = SearchReport(loop, tmp_path / "search", export_top=40)
    failed_per_round = []
    loop.run(on_round=lambda lp, new: failed_per_round.append(report.publish_round(new, [], lp.round)["search/failed"]))
    failures = loop.pool.failures
    assert failures and sum(failed_per_round) == len(failures) and failed_per_round[0] == 0
    assert all(r.score is None and r.failure == "matches=nan" and r.arch[0] == 1 for r in failures)
    assert len(loop.pool.seen) == 40 and loop.done  # a failed evaluation is spent budget, and never proposed again
    assert not {SPACE.canonical(r.arch) for r in failures} & set(loop.pool.live)
    assert all(math.isfinite(r.score) for r in loop.pool.records())

    paths = report.export()
    history = list(csv.DictReader((tmp_path / "search" / "history.csv").open()))
    assert len(history) == 40 and [int(r["round"]) for r in history] == sorted(int(r["round"]) for r in history)
    failed_rows = [r for r in history if r["failure"]]
    assert len(failed_rows) == len(failures) and all(r["matches"] == "" for r in failed_rows)
    pool = pd.read_csv(tmp_path / "search" / "pool.csv")
    assert "failure" not in pool and pool["matches"].notna().all() and len(pool) == 40 - len(failures)
    exported = [SPACE.load_genotype(p) for p in paths]
    assert exported == [r.arch for r in loop.pool.records()] and not set(exported) & {r.arch for r in failures}


def test_a_search_whose_every_architecture_failed_stops():
    class AllNaN(MatchEvaluator):
        def score(self, archs):
            return [math.nan for _ in super().score(archs)]

    loop = SearchLoop(RandomSearch(SPACE, initial_size=10, per_round=10), AllNaN(), seed=0, budget=40,
                      on_nonfinite="skip")
    with pytest.raises(NonFiniteError, match=r"search round 0: every architecture evaluated so far failed \(10 non"):
        loop.run()


def test_the_pool_refuses_a_nonfinite_score():
    pool = ArchPool(SPACE)
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match=f"is {bad}: only finite scores enter the pool"):
            pool.add((1, 2, 3, 4, 5, 1), bad, 0, "random")
    assert not pool.history and not pool.live


def test_a_nan_in_the_controller_loss_stops_its_fit():
    controller = NAOController(SPACE, embedding_size=8, hidden_size=16, predictor_hidden_size=16)
    with torch.no_grad():
        controller.predictor.parameters().__next__().fill_(math.nan)
    archs = SPACE.sample(20, torch.Generator().manual_seed(0))
    with pytest.raises(NonFiniteError, match=r"the controller's training loss is nan \(step 0\): it diverged; "
                                             r"lower controller.model.lr \(now 0.001\)"):
        fit_controller(controller, archs, torch.rand(20), steps=2)


def test_a_predictor_collapsed_to_a_constant_names_the_settings_that_collapse_it():
    controller = NAOController(SPACE, embedding_size=8, hidden_size=16, predictor_hidden_size=16, weight_decay=0.01)
    with torch.no_grad():
        controller.predictor.mlp[-1].weight.zero_()  # what dead ReLUs or a large weight decay leave
        controller.predictor.mlp[-1].bias.zero_()
    archs = SPACE.sample(20, torch.Generator().manual_seed(0))
    with pytest.raises(NonFiniteError, match=r"its predictor gives all 20 architectures the same score 0\.5; it "
                                             r"diverged or collapsed to a constant: lower controller.model.lr \(now "
                                             r"0.001\) or controller.model.weight_decay \(now 0.01\)$"):
        check_predictor(controller, archs, torch.rand(20))


@pytest.mark.slow
def test_a_diverged_controller_stops_the_search_with_exit_status_1(search_cfg, train_main, caplog):
    cfg = search_cfg("diverged", "controller.model.lr=1e6", "logger=csv")
    with pytest.raises(SystemExit) as stop:
        train_main(cfg)
    assert stop.value.code == 1
    out = Path(cfg.paths.output_dir)
    state = torch.load(out / STATE_FILE, weights_only=True)
    assert "controller" in caplog.text and "lower controller.model.lr (now 1e+06)" in caplog.text
    assert (f"search round {state['round']}: " in caplog.text
            and f"The last good state is {out / STATE_FILE}, saved before round {state['round']}" in caplog.text)
    assert pd.read_csv(out / "search" / "history.csv")["c10valid_valid_acc_200ep"].notna().all()
    assert not (out / "search" / "top1.json").exists()  # nothing exported from a stopped search
    metrics = pd.read_csv(out / "csv" / "metrics.csv")
    assert metrics["search/round"].tolist() == list(range(1, state["round"] + 1))
    assert (metrics.filter(like="controller/").notna().sum() == state["round"] - 1).all()  # no nan logged


@pytest.mark.slow
def test_a_diverged_supernet_exits_1_naming_its_architecture_and_its_last_good_checkpoint(tmp_path, ptb_data):
    out = tmp_path / "diverged"
    diverged = subprocess.run([sys.executable, "train.py", *WS_PTB, *WS_SEARCH, "model.lr=1e6", f"hydra.run.dir={out}"],
                              cwd=ROOT, env={**CHILD_ENV, "NAOLIT_DATA_DIR": str(DATA)}, capture_output=True,
                              text=True, timeout=600)
    output = diverged.stdout + diverged.stderr
    assert diverged.returncode == 1, output[-3000:]
    last = out / "checkpoints" / "last.ckpt"
    assert "stopped: the training loss of architecture {'space': 'rnn', 'nodes': [[0, " in output
    assert f"The last good state is {last}: resume from it with ckpt_path={last}" in output
    assert "Traceback" not in output
    checkpoint = torch.load(last, weights_only=True)
    assert all(torch.isfinite(w).all() for w in checkpoint["state_dict"].values())
    assert not (out / "search" / "pool.csv").exists()  # it diverged before its first round


def test_a_nonfinite_accuracy_in_the_table_is_named_with_its_line(table_frame, tmp_path):
    frame = table_frame.copy()
    frame.loc[11, "c10valid_valid_acc_200ep"] = math.nan
    frame.loc[20, "c10_test_acc_200ep"] = math.inf
    frame.to_csv(tmp_path / "nan.csv", index=False)
    with pytest.raises(ValueError, match=r"nan.csv: column c10valid_valid_acc_200ep: 1 of its values are missing or "
                                         r"not finite numbers \(line 13: nan\); expected a finite value"):
        TabularEvaluator(str(tmp_path / "nan.csv"))
    with pytest.raises(ValueError, match=r"column c10_test_acc_200ep: 1 of .* \(line 22: inf\)"):
        NB201Table(tmp_path / "nan.csv").column("c10_test_acc_200ep")


# ---- bad files ----------------------------------------------------------------------------------
def garble(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    frame = frame.copy()
    if what == "empty arch_str":
        frame.loc[4, "arch_str"] = None
    elif what == "unknown op":
        frame.loc[4, "arch_str"] = "|conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    elif what == "index out of order":
        frame.loc[[4, 5], "index"] = [5, 4]
    elif what == "repeated architecture":
        frame.loc[9, "arch_str"] = frame.loc[4, "arch_str"]
    elif what == "text in a metric":
        frame["c10valid_valid_acc_200ep"] = frame["c10valid_valid_acc_200ep"].astype(object)
        frame.loc[4, "c10valid_valid_acc_200ep"] = "91.2%"
    return frame


@pytest.mark.parametrize("what, message", [
    ("empty arch_str", r"line 6: arch_str is nan, expected a NAS-Bench-201 cell string such as '\|nor_conv_3x3~0\|"),
    ("unknown op", r"line 6: arch_str '\|conv_9x9~0\|.*': unknown op 'conv_9x9', expected one of \['none'"),
    ("index out of order", r"line 6: index is 5, expected 4 \(the rows in the official index order"),
    ("repeated architecture", r"line 11: arch_str '.*' repeats line 6: expected every architecture once"),
    ("text in a metric", r"column c10valid_valid_acc_200ep: 1 of its values .* \(line 6: '91.2%'\)"),
])
def test_a_garbled_table_row_is_named_with_its_line(table_frame, tmp_path, what, message):
    path = tmp_path / "nb201.csv"
    garble(table_frame, what).to_csv(path, index=False)
    with pytest.raises(ValueError, match=message) as err:
        TabularEvaluator(str(path))
    assert str(err.value).startswith(str(path))


def test_a_truncated_or_binary_table_is_named(tmp_path):
    data = NB201_CSV.read_bytes()
    if NB201_CSV.suffix == ".gz":  # the shipped table: cut its text, not its compressed bytes
        data = gzip.decompress(data)
    (tmp_path / "cut.csv").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut.csv: expected 15625 rows with columns \['index', 'arch_str'\], got 78"):
        NB201Table(tmp_path / "cut.csv")
    (tmp_path / "binary.csv").write_bytes(gzip.compress(data[:5000]))
    with pytest.raises(ValueError, match=r"binary.csv: not a readable CSV table .*expected the NAS-Bench-201 table"):
        NB201Table(tmp_path / "binary.csv")


def test_a_truncated_ptb_gzip_is_named(tmp_path, ptb_data):
    (tmp_path / "ptb").mkdir()
    for split in ("valid", "test"):
        (tmp_path / "ptb" / f"ptb.{split}.txt.gz").symlink_to(DATA / "ptb" / f"ptb.{split}.txt.gz")
    whole = (DATA / "ptb" / "ptb.train.txt.gz").read_bytes()
    train = tmp_path / "ptb" / "ptb.train.txt.gz"
    train.write_bytes(whole[: len(whole) // 3])
    with pytest.raises(ValueError, match=f"{train}: not a complete gzip file \\(Compressed file ended.*\\): the file "
                                         "is damaged or truncated; delete it and call prepare_data"):
        LanguageModelingDataModule("ptb", tmp_path).setup("fit")


def test_a_text_file_that_is_not_utf8_is_named(tmp_path):
    (tmp_path / "wiki.valid.tokens").write_bytes(b"the cat\n\xff\xfe sat\n")
    with pytest.raises(ValueError, match=r"wiki.valid.tokens: not UTF-8 text \(byte 8: b'\\xff'\)"):
        read_text(tmp_path / "wiki.valid.tokens")


@pytest.mark.parametrize("content, message", [
    (b'{"space": "rnn", "nodes": [[0, "tanh"]', r"not valid JSON \(Expecting ',' delimiter"),
    (b"\x89PNG\r\n\x1a\n", r"not valid JSON \('utf-8' codec can't decode"),
    (b"[[0, 1]]", r"genotype is a list, expected a JSON object of space 'rnn'"),
    (b'{"space": "nb201", "arch_str": "|none~0|"}', r"genotype is for space 'nb201', expected space 'rnn'"),
])
def test_a_bad_genotype_file_is_named(tmp_path, content, message):
    path = tmp_path / "best_genotype.json"
    path.write_bytes(content)
    with pytest.raises(InvalidArchitecture, match=f"{path}: {message}"):
        RNNCellSpace().resolve(str(path))


# ---- checkpoints --------------------------------------------------------------------------------
class Foreign:
    """An object no naolit checkpoint holds."""


def bad_checkpoint(kind: str, folder: Path, re_state: Path) -> Path:
    path = folder / f"{kind.replace(' ', '_')}.pt"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        data = re_state.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "text":
        path.write_text("round: 3\n")
    elif kind == "foreign objects":
        torch.save({"round": 3, "pool": Foreign()}, path)
    elif kind == "plain dict":
        torch.save({"weights": torch.ones(2)}, path)
    return path


@pytest.mark.parametrize("kind, error, message", [
    ("missing", FileNotFoundError, r"does not exist: expected the search_state.pt of a tabular search's run folder"),
    ("empty", ValueError, r"is not a checkpoint \(empty\): expected the search_state.pt"),
    ("truncated", ValueError, r"is not a checkpoint \(truncated, or not a file torch.save wrote\): expected the"),
    ("text", ValueError, r"is not a checkpoint \(truncated, or not a file torch.save wrote\)"),
    ("foreign objects", ValueError, r"holds Python objects other than tensors and plain values \(test_faults.Foreign\)"
                                    r", which naolit never writes, so it was not loaded"),
    ("plain dict", ValueError, r"is a dict with keys \['weights'\], not a naolit checkpoint: expected the search_st"),
])
def test_a_bad_search_state_is_named_and_never_loaded_unsafely(search_cfg, re_state, tmp_path, kind, error, message):
    path = bad_checkpoint(kind, tmp_path, re_state)
    with pytest.raises(error, match=f"ckpt_path={path} {message}") as err:
        tabular_run(search_cfg("resumed", *QUICK_RE, f"ckpt_path={path}"))
    assert "weights_only" not in str(err.value)
    assert not (tmp_path / "resumed" / "search").exists()  # refused before any work


def test_a_run_folder_without_a_search_state_is_named(search_cfg, tmp_path):
    with pytest.raises(FileNotFoundError, match=f"ckpt_path={tmp_path}/search_state.pt does not exist: expected the "
                                                f"search_state.pt of a tabular search's run folder"):
        tabular_run(search_cfg("resumed", *QUICK_RE, f"ckpt_path={tmp_path}"))


def test_a_foreign_checkpoint_names_the_job_that_wrote_it(search_cfg, re_state, ws_checkpoint):
    with pytest.raises(ValueError, match=f"ckpt_path={ws_checkpoint} is a Lightning checkpoint of a weight-sharing "
                                         f"search written by task 'ptb_ws_small' \\(entry naolit.fit.run, model "
                                         f"RNNSupernet, search True\\): expected the search_state.pt"):
        tabular_run(search_cfg("lightning", f"ckpt_path={ws_checkpoint}"))
    with pytest.raises(ValueError, match=f"ckpt_path={re_state} is a tabular search's state written by task 'nb201' "
                                         r"\(.*strategy RegularizedEvolution.*\): its strategy is "
                                         r"'RegularizedEvolution', this job's is 'NAOStrategy'; resume it with the "
                                         r"settings that wrote it"):
        tabular_run(search_cfg("other_strategy", f"ckpt_path={re_state}"))
    with pytest.raises(ValueError, match="its metric is 'c10valid_valid_acc_200ep', this job's is "
                                         "'c100_valid_acc_12ep'"):
        tabular_run(search_cfg("other_column", *QUICK_RE, "evaluator.column=c100_valid_acc_12ep",
                               f"ckpt_path={re_state}"))


def edited(checkpoint: Path, folder: Path, edit) -> Path:
    state = torch.load(checkpoint, weights_only=True)
    edit(state)
    torch.save(state, folder / "edited.ckpt")
    return folder / "edited.ckpt"


def test_a_wrong_lightning_checkpoint_is_named_before_any_work(tmp_path, ws_checkpoint, re_state, monkeypatch):
    def resume(path):
        return fit_run(composed(tmp_path / "resumed", [*WS_PTB, *WS_SEARCH, f"ckpt_path={path}"]))

    monkeypatch.setattr("naolit.fit.build", lambda cfg: pytest.fail("the checkpoint was not checked first"))
    with pytest.raises(ValueError, match=f"ckpt_path={re_state} is a tabular search's state written by task 'nb201' "
                                         r".*: expected a Lightning checkpoint \(run folder/checkpoints/last.ckpt\) "
                                         r"of a job like this one \(model RNNSupernet\)"):
        resume(re_state)
    data = ws_checkpoint.read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[:-100])
    with pytest.raises(ValueError, match=r"cut.ckpt is not a checkpoint \(truncated, or not a file torch.save wrote"):
        resume(tmp_path / "cut.ckpt")
    other_model = edited(ws_checkpoint, tmp_path, lambda c: c["naolit"].update(model="CNNSupernet"))
    with pytest.raises(ValueError, match=r"its model is 'CNNSupernet', this job's is 'RNNSupernet'"):
        resume(other_model)
    no_search = edited(ws_checkpoint, tmp_path, lambda c: c["callbacks"].pop("SearchCallback"))
    with pytest.raises(ValueError, match=r"is a Lightning checkpoint without a search state written by task "
                                         r"'ptb_ws_small' .*, with the search's state"):
        resume(no_search)
    with pytest.raises(FileNotFoundError, match=r"missing.ckpt does not exist: expected a Lightning checkpoint"):
        resume(tmp_path / "missing.ckpt")


def test_lightning_checkpoints_load_with_weights_only_and_name_their_writer(ws_checkpoint):
    checkpoint = torch.load(ws_checkpoint, weights_only=True)
    assert checkpoint["naolit"] == {"task_name": "ptb_ws_small", "entry": "naolit.fit.run", "model": "RNNSupernet",
                                    "search": True}
    assert checkpoint["callbacks"]["SearchCallback"]["report"]["logged"]  # the round metrics, for a resumed run


# ---- writes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("code, message", [(errno.ENOSPC, "No space left on device while writing {}: the disk is full"),
                                           (errno.EACCES, "Permission denied while writing {}: no permission to write")])
def test_a_failed_write_names_its_file_and_keeps_the_previous_one(tmp_path, monkeypatch, code, message):
    path = tmp_path / STATE_FILE
    checkpoints.save({"round": 1}, path)

    def refuse(self, data):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(Path, "write_bytes", refuse)
    with pytest.raises(OSError, match=message.format(path)) as err:
        checkpoints.save({"round": 2}, path)
    assert err.value.errno == code
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"round": 1} and not list(tmp_path.glob(".*"))


def test_a_full_disk_stops_a_tabular_search_naming_the_state_file(search_cfg, monkeypatch):
    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    cfg = search_cfg("full", *QUICK_RE)
    with pytest.raises(OSError, match=f"No space left on device while writing {cfg.paths.output_dir}/{STATE_FILE}: "
                                      "the disk is full: free some space there, or write elsewhere"):
        tabular_run(cfg)


def test_a_full_disk_under_lightning_names_the_run_folder(tmp_path, monkeypatch, ptb_data):
    def full(checkpoint, path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("lightning_fabric.plugins.io.torch_io._atomic_save", full)
    with pytest.raises(OSError, match=f"No space left on device while writing {tmp_path / 'full'}: the disk is full"):
        fit_run(composed(tmp_path / "full", [*WS_PTB, *WS_SEARCH, "trainer.max_epochs=1", "search.every_n_epochs=1",
                                             "logger=none"]))


def test_every_atomic_write_names_its_file_on_a_full_disk(tmp_path):
    with pytest.raises(OSError, match=f"No space left on device while writing {tmp_path / 'pool.csv'}: the disk is"):
        with atomic_path(tmp_path / "pool.csv") as tmp:
            tmp.write_text("rank,valid_ppl\n")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert not list(tmp_path.iterdir())


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    dead = tmp_path / ".search_state.4194305.tmp.pt"  # above Linux's largest process id: never running
    alive = tmp_path / f".pool.{os.getpid()}.tmp.csv"
    others = [tmp_path / "search_state.pt", tmp_path / ".hidden.tmp"]
    for path in [dead, alive, *others]:
        path.write_text("x")
    assert remove_stale_temporaries(tmp_path) == [dead]
    assert sorted(tmp_path.iterdir()) == sorted([alive, *others])


# ---- settings checked before any work -------------------------------------------------------------
@pytest.mark.parametrize("overrides, message", [
    (["controller.fit.batch_size=0"], "controller.fit: batch_size must be >= 1, got 0"),
    (["controller.fit.steps=-1"], "controller.fit: steps must be >= 1, got -1"),
    (["controller.fit.normalize=zscore"], r"controller.fit: normalize must be one of \['minmax', 'rank'\], got 'zsc"),
])
def test_bad_controller_fit_settings_stop_a_search_before_its_first_round(search_cfg, overrides, message):
    cfg = search_cfg("bad", *overrides)
    with pytest.raises(InstantiationException, match=message):
        tabular_run(cfg)
    assert not (Path(cfg.paths.output_dir) / "search").exists()


@pytest.mark.parametrize("overrides, message", [
    (["search.budget=5"], r"search: budget must be >= the strategy's initial_size=10 \(the random architectures "
                          r"that start the search\), got 5"),
    (["search.on_nonfinite=ignore"], r"search: on_nonfinite must be one of \['stop', 'skip'\], got 'ignore'"),
])
def test_bad_search_settings_are_named(search_cfg, overrides, message):
    with pytest.raises(ValueError, match=message):
        build_loop(search_cfg("bad", *overrides))


def test_weight_sharing_settings_are_checked_before_the_data_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr("naolit.data.download._download", lambda url: pytest.fail(f"downloaded {url}"))
    overrides = [*WS_PTB, *WS_SEARCH, f"paths.data_dir={tmp_path / 'empty'}"]
    for bad, message in [("controller.fit.batch_size=0", "controller.fit: batch_size must be >= 1, got 0"),
                         ("search.budget=5", "search: budget must be >= the strategy's initial_size=10 .*, got 5"),
                         ("search.on_nonfinite=maybe", "on_nonfinite must be one of")]:
        with pytest.raises(InstantiationException, match=message):
            fit_run(composed(tmp_path / "bad", [*overrides, bad]))


def test_a_search_round_that_never_comes_is_named(tmp_path, ptb_data):
    with pytest.raises(ValueError, match=r"search: every_n_epochs must be <= trainer.max_epochs=4, or no search round "
                                         r"would run; got 5"):
        fit_run(composed(tmp_path / "late", [*WS_PTB, *WS_SEARCH, "search.every_n_epochs=5", "logger=none"]))


# ---- a killed search ------------------------------------------------------------------------------
KILL_DURING_THIRD_SAVE = """
import os, runpy, signal, sys
from naolit import checkpoints
from naolit.io import atomic_path

saves = []

def save(checkpoint, path):
    saves.append(path)
    if len(saves) == 4:  # the state of round 2 (after the one of the random start) killed mid-write: the
                         # temporary file written, not yet renamed
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"half a state")
            os.kill(os.getpid(), signal.SIGKILL)
    return original(checkpoint, path)

original, checkpoints.save = checkpoints.save, save
sys.argv = ["train.py", *sys.argv[1:]]
runpy.run_path("train.py", run_name="__main__")
"""


@pytest.mark.slow
def test_a_search_killed_mid_write_resumes_to_the_same_results_and_keeps_its_round_metrics(tmp_path):
    overrides = ["+experiment=nb201_nao", "search.budget=42", "strategy.initial_size=30", "controller.fit.steps=3",
                 *TINY_CONTROLLER, "logger=csv"]

    def train(out, *extra, script=None):
        command = [sys.executable, "-c", script, *overrides] if script else [sys.executable, "train.py", *overrides]
        return subprocess.run([*command, f"hydra.run.dir={out}", *extra], cwd=ROOT, capture_output=True, text=True,
                              env={**CHILD_ENV, "NAOLIT_DATA_DIR": str(DATA), "PYTHONPATH": str(ROOT)}, timeout=600)

    killed = train(tmp_path / "run", script=KILL_DURING_THIRD_SAVE)
    assert killed.returncode == -9, killed.stderr[-3000:]
    run = tmp_path / "run"
    assert torch.load(run / STATE_FILE, weights_only=True)["round"] == 2
    assert len(list(run.glob(".*.tmp*"))) == len(list(run.glob(".search_state.*.tmp.pt"))) == 1
    rounds = pd.read_csv(run / "csv" / "metrics.csv")["search/round"].tolist()
    assert rounds == [1, 2, 3]  # every finished round, the one whose state write was killed included

    resumed = train(run, f"ckpt_path={run / STATE_FILE}")  # in place: the same folder
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not list(run.glob(".*.tmp*"))  # the stale temporary file is gone
    whole = train(tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    for name in ("pool.csv", "history.csv", "curve.csv", "best_genotype.json", "top1.json"):
        assert (run / "search" / name).read_bytes() == (tmp_path / "whole" / "search" / name).read_bytes(), name
    resumed_metrics, whole_metrics = (pd.read_csv(folder / "csv" / "metrics.csv").dropna(subset=["search/round"])
                                      for folder in (run, tmp_path / "whole"))
    assert resumed_metrics["search/round"].tolist() == list(range(1, 6))  # 30 random, then 4 rounds of 3
    kept = ["search/round", "search/evaluated", "search/best_score", "search/best_test", "controller/kendall_tau"]
    pd.testing.assert_frame_equal(resumed_metrics[kept].reset_index(drop=True), whole_metrics[kept].reset_index(drop=True))

