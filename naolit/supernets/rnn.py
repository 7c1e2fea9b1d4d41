"""NAO-WS's Penn Treebank supernet: every cell of the RNN space on one set of weights.

Mirror of ``naolit.models.rnn`` (one fixed cell); the body (embedding, highway node 0, tied decoder,
dropouts) and the cell math are the shared ``naolit.models.rnn_cell``.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import torch
from torch import Tensor, nn

from naolit.models.rnn_cell import ACTIVATIONS, Node, RecurrentLM, gated, lm_loss, sgd_step, start_state
from naolit.spaces import Arch, RNNCellSpace
from naolit.supernets.base import Supernet


class RNNSupernet(Supernet):
    """Shared weights of every cell of an ``RNNCellSpace``; each training batch trains one cell.

    Sharing: every cell shares the embedding, the highway weight W_0 and the decoder; node i keeps one
    weight per choice it can make, (predecessor p, activation a), and a cell uses W_i[p, a]. This is
    the NAO-WS reference's sharing (its node-i table holds one (hidden, 2 * hidden) slice per
    (p, a)). A single W_i per node, shared by all choices as in DARTS, would make two cells that differ
    only in a node's activation fight over the same weights; per-choice weights let the score of a
    cell reflect the choices it made. Weights a batch does not use get no gradient, so SGD's weight
    decay leaves them alone that step.

    Training follows the NAO-WS reference (AWD-LSTM's recipe): SGD with weight decay, gradient-norm
    clipping, the learning rate scaled by window length / ``bptt``, variational dropouts and TAR
    (``tar``); the hidden state is carried from batch to batch (detached) and reset each epoch.
    ``score`` is each cell's validation perplexity, cells stacked along the batch for speed.
    """

    metric_name = "valid_ppl"
    higher_is_better = False

    def __init__(self, space: RNNCellSpace, vocab_size: int, hidden_size: int = 300, lr: float = 8.75,
                 clip: float = 0.286, weight_decay: float = 5e-7, tar: float = 1e-3, dropout_output: float = 0.75,
                 dropout_hidden: float = 0.25, dropout_x: float = 0.75, dropout_input: float = 0.2,
                 dropout_embedding: float = 0.0, init_range: float = 0.04, bptt: int = 35, score_windows: int = 1,
                 score_chunk: int = 32, seed: int = 0, arch_sampling: str = "pool"):
        super().__init__(space, seed, arch_sampling)
        if not isinstance(space, RNNCellSpace):
            raise TypeError(f"RNNSupernet: space must be an RNNCellSpace, got {type(space).__name__}")
        for name, value in [("lr", lr), ("clip", clip), ("bptt", bptt), ("score_windows", score_windows),
                            ("score_chunk", score_chunk)]:
            if value <= 0:
                raise ValueError(f"RNNSupernet: {name} must be > 0, got {value}")
        self.save_hyperparameters(ignore=["space"])
        self.automatic_optimization = False
        self.net = RecurrentLM(vocab_size, hidden_size, dropout_output, dropout_hidden, dropout_x, dropout_input,
                               dropout_embedding, init_range)
        num_acts = len(space.activations)
        self.node_weights = nn.ParameterList(
            [self.net.node_weight() for node in range(1, space.num_nodes + 1) for _ in range(node * num_acts)])
        self.activations = [ACTIVATIONS[name] for name in space.activations]
        self.hidden: Tensor | None = None

    # ---- the cells --------------------------------------------------------------------------------
    def choices(self, arch: Arch) -> list[tuple[int, int]]:
        """(predecessor, activation index) of each node of ``arch``."""
        nodes = self.space.to_genotype(arch)["nodes"]
        return [(pred, self.space.activations.index(act)) for pred, act in nodes]

    def weight_index(self, node: int, pred: int, act: int) -> int:
        """Position in ``node_weights`` of W_node[pred, act] (node counted from 1)."""
        num_acts = len(self.activations)
        return num_acts * (node * (node - 1) // 2 + pred) + act

    def nodes(self, arch: Arch) -> list[Node]:
        """The cell ``arch`` as (predecessor, activation, shared weight) per node."""
        return [(pred, self.activations[act], self.node_weights[self.weight_index(node, pred, act)])
                for node, (pred, act) in enumerate(self.choices(arch), start=1)]

    # ---- training ---------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        self.hidden = None  # each epoch starts the streams anew

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        inputs, targets = batch
        hidden = start_state(self.hidden, self.net, inputs.size(1))
        outputs = self.net.run(inputs, hidden, self.nodes(self.next_train_arch()))
        self.hidden = outputs[-1].detach()
        nll = self.net.nll(outputs, targets).mean()
        loss = lm_loss(nll, outputs, self.hparams.tar)
        sgd_step(self, loss, self.hparams.lr, self.hparams.clip, inputs.size(0), self.hparams.bptt)
        self.log("train/loss", nll, prog_bar=True)
        self.log("train/ppl", nll.exp())
        return loss.detach()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    # ---- scoring ----------------------------------------------------------------------------------
    def score(self, archs: Sequence[Arch], batches: Iterable[Any] | None = None) -> list[float]:
        """Validation perplexity of each of ``archs`` on ``batches`` (default: the first ``score_windows``
        windows of the datamodule's validation stream), from a zero hidden state, without dropout.

        Local to this process (no collective ops). Up to ``score_chunk`` cells run at once, stacked
        along the batch dimension; the train/eval mode is restored afterwards.
        """
        if batches is None:
            batches = self.validation_batches(self.hparams.score_windows)
        windows = [(inputs.to(self.device), targets.to(self.device)) for inputs, targets in batches]
        if not windows:
            raise ValueError("RNNSupernet.score: no validation windows to score on")
        size = self.hparams.score_chunk
        with self.scoring():
            return [ppl for start in range(0, len(archs), size)
                    for ppl in self._score_together(archs[start : start + size], windows)]

    def _score_together(self, archs: Sequence[Arch], windows: list[tuple[Tensor, Tensor]]) -> list[float]:
        per_node = list(zip(*(self.choices(arch) for arch in archs)))  # [node - 1][cell] -> (pred, act)
        cells = torch.arange(len(archs), device=self.device)
        # Where each node's input state sits in the (nodes + 1) * cells stacked states of a time step.
        sources = [torch.tensor([pred for pred, _ in node], device=self.device) * len(archs) + cells
                   for node in per_node]
        weights = [torch.stack([self.node_weights[self.weight_index(n, pred, act)] for pred, act in node])
                   for n, node in enumerate(per_node, start=1)]  # per node: (cells, hidden, 2 * hidden)
        activations = [self._mixed_activation([act for _, act in node]) for node in per_node]
        hidden = self.net.init_hidden(windows[0][0].size(1)).expand(len(archs), -1, -1)
        nll, tokens = torch.zeros(len(archs), device=self.device), 0
        for inputs, targets in windows:
            outputs = self._recur_together(inputs, hidden, sources, weights, activations)
            hidden = outputs[-1]
            # the decoder one cell at a time: the logits of every cell at once would take cells times the memory
            nll += torch.stack([self.net.nll(outputs[:, cell], targets).sum() for cell in range(len(archs))])
            tokens += targets.numel()
        return (nll / tokens).exp().tolist()

    def _mixed_activation(self, acts: list[int]) -> Callable[[Tensor], Tensor]:
        """The activation of one node in every stacked cell (cell i gets activation acts[i]): the most
        common one applied to all, then each other one recomputed on its own cells only."""
        kinds = sorted(set(acts), key=acts.count, reverse=True)
        base = self.activations[kinds[0]]
        others = [(torch.tensor([i for i, a in enumerate(acts) if a == k], device=self.device), self.activations[k])
                  for k in kinds[1:]]

        def activation(h: Tensor) -> Tensor:
            out = base(h)
            for chosen, fn in others:
                out.index_copy_(0, chosen, fn(h.index_select(0, chosen)))
            return out

        return activation

    def _recur_together(self, inputs: Tensor, hidden: Tensor, sources: list[Tensor], weights: list[Tensor],
                        activations: list[Callable[[Tensor], Tensor]]) -> Tensor:
        """Outputs (seq_len, cells, batch, hidden) of stacked cells, in inference mode; ``hidden`` is
        (cells, batch, hidden). The same math as ``RecurrentLM.recur``, the states kept in one buffer."""
        xw = self.net.highway_inputs(self.net.embed(inputs))  # the same for every cell
        cells, batch, size = hidden.shape
        states = xw.new_empty(len(weights) + 1, cells, batch, size)
        flat_states = states.view(-1, batch, size)
        outputs = xw.new_empty(inputs.size(0), cells, batch, size)
        h = hidden
        for t in range(inputs.size(0)):
            states[0] = self.net.highway(xw[t], h, None)
            for node, (source, weight, activation) in enumerate(zip(sources, weights, activations)):
                s = flat_states.index_select(0, source)
                gated(s, torch.bmm(s, weight), activation, out=states[node + 1])
            h = outputs[t] = states[1:].mean(0)
        return outputs
