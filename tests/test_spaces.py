import json

import pytest
import torch

from naolit.spaces import CNNCellSpace, InvalidArchitecture, NB201Space, RNNCellSpace
from naolit.spaces.cnn import NAO_OPS

SPACES = [CNNCellSpace(), CNNCellSpace(ops=NAO_OPS), CNNCellSpace(num_nodes=3), RNNCellSpace(),
          RNNCellSpace(num_nodes=4), NB201Space()]
IDS = ["cnn", "cnn_nao", "cnn3", "rnn", "rnn4", "nb201"]


def test_reference_encodings_have_the_sizes_of_nao():
    assert (CNNCellSpace().seq_len, CNNCellSpace().vocab_size) == (40, 12)
    assert (RNNCellSpace().seq_len, RNNCellSpace().vocab_size) == (22, 16)
    assert (NB201Space().seq_len, NB201Space().vocab_size) == (6, 6)


@pytest.mark.parametrize("space", SPACES, ids=IDS)
def test_samples_are_valid_and_round_trip(space, tmp_path):
    batch = space.sample(200, torch.Generator().manual_seed(0))
    assert batch.shape == (200, space.seq_len) and space.is_valid_batch(batch).all()
    for arch in batch.tolist()[:50]:
        arch = space.validate(arch)
        assert space.from_genotype(json.loads(json.dumps(space.to_genotype(arch)))) == arch
    arch = tuple(batch[0].tolist())
    assert space.load_genotype(space.save_genotype(arch, tmp_path / "a.json")) == arch


@pytest.mark.parametrize("space", SPACES, ids=IDS)
def test_sampling_is_uniform_over_each_position(space):
    batch = space.sample(20000, torch.Generator().manual_seed(1))
    for position in range(space.seq_len):
        allowed = space.allowed[position].nonzero().flatten()
        counts = torch.stack([(batch[:, position] == t).sum() for t in allowed]).float()
        assert counts.sum() == 20000
        assert (counts / counts.mean() - 1).abs().max() < 0.1


@pytest.mark.parametrize("space", SPACES, ids=IDS)
def test_draw_writes_a_png(space, tmp_path):
    path = space.draw(tuple(space.sample(1)[0].tolist()), tmp_path / "cell.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cnn_branch_swap_twins_share_canonical_form_and_hash():
    space = CNNCellSpace()
    batch = space.sample(300, torch.Generator().manual_seed(2))
    twins = space.augment(batch, torch.Generator().manual_seed(3))
    assert (twins != batch).any()
    assert torch.equal(space.canonicalize(twins), space.canonicalize(batch))
    for a, b in zip(batch.tolist()[:20], twins.tolist()[:20]):
        assert space.arch_hash(a) == space.arch_hash(b)
    # distinct architectures (different canonical forms) hash differently
    keys = {space.canonical(a) for a in batch.tolist()}
    assert len({space.arch_hash(k) for k in keys}) == len(keys)


def test_cnn_swapping_one_node_gives_the_same_canonical_form_but_other_changes_do_not():
    space = CNNCellSpace()
    arch = list(space.sample(1, torch.Generator().manual_seed(4))[0].tolist())
    arch[0:4] = [1, 7, 2, 8]  # node 0: (input 0, op 0), (input 1, op 1)
    swapped = arch.copy()
    swapped[0:4] = [2, 8, 1, 7]
    assert space.canonical(arch) == space.canonical(swapped)
    changed = arch.copy()
    changed[0:4] = [2, 7, 1, 8]  # different pairing of inputs and ops: another architecture
    assert space.canonical(arch) != space.canonical(changed)
    assert space.arch_hash(arch) != space.arch_hash(changed)


def test_cnn_genotype_names_cells_and_their_outputs():
    space = CNNCellSpace(num_nodes=2)
    arch = (1, 4, 2, 8, 3, 5, 1, 6) * 2  # node 0: (0, sep3), (1, identity); node 1: (node 0, sep5), (0, avg)
    genotype = space.to_genotype(arch)
    assert genotype["normal"] == [[[0, "sep_conv_3x3"], [1, "identity"]], [[2, "sep_conv_5x5"], [0, "avg_pool_3x3"]]]
    assert genotype["normal_concat"] == [3]


def test_rnn_and_nb201_have_no_symmetry():
    for space in (RNNCellSpace(), NB201Space()):
        batch = space.sample(50)
        assert torch.equal(space.canonicalize(batch), batch) and torch.equal(space.augment(batch), batch)


@pytest.mark.parametrize(
    "space, arch, message",
    [
        (CNNCellSpace(), (1,) * 39, "must have 40 tokens, got 39"),
        (CNNCellSpace(), (4, 7) + (1, 7) * 19, "normal cell, node 0, branch 0 input\\): token 4 is not allowed, expected one of \\[1, 2\\]"),
        (CNNCellSpace(), (1, 3) + (1, 7) * 19, "node 0, branch 0 op\\): token 3 is not allowed"),
        (RNNCellSpace(), (2, 12) + (1, 12) * 10, "node 1 predecessor\\): token 2 is not allowed"),
        (NB201Space(), (0, 1, 1, 1, 1, 1), "edge 0->1\\): token 0 is not allowed"),
    ],
)
def test_invalid_tokens_are_rejected_naming_the_position(space, arch, message):
    with pytest.raises(InvalidArchitecture, match=message):
        space.validate(arch)
    assert not space.is_valid_batch(torch.tensor([arch + (0,) * (space.seq_len - len(arch))])).all()


@pytest.mark.parametrize(
    "space, genotype, message",
    [
        (CNNCellSpace(), {"space": "rnn"}, "genotype is for space 'rnn', expected space 'cnn'"),
        (CNNCellSpace(num_nodes=1), {"space": "cnn", "normal": [[[0, "conv_9x9"], [1, "identity"]]]}, "unknown op 'conv_9x9'"),
        (CNNCellSpace(num_nodes=1), {"space": "cnn", "normal": [[[2, "identity"], [1, "identity"]]]}, "input 2 must be an int in 0..1"),
        (RNNCellSpace(num_nodes=2), {"space": "rnn", "nodes": [[0, "tanh"], [2, "relu"]]}, "node 2: predecessor 2"),
        (RNNCellSpace(num_nodes=1), {"space": "rnn", "nodes": [[0, "gelu"]]}, "unknown activation 'gelu'"),
        (NB201Space(), {"space": "nb201", "arch_str": "|none~0|+|none~0|"}, "expected 3 '\\+'-separated node groups"),
        (NB201Space(), {"space": "nb201", "arch_str": "|none~0|+|none~0|none~1|+|none~0|none~1|conv~2|"}, "unknown op 'conv'"),
        (NB201Space(), {"space": "nb201", "arch_str": "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|"}, "must come from node 0"),
    ],
)
def test_invalid_genotypes_are_rejected_naming_the_problem(space, genotype, message):
    with pytest.raises(InvalidArchitecture, match=message):
        space.from_genotype(genotype)


def test_bad_genotype_files_name_the_file(tmp_path):
    space = NB201Space()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidArchitecture, match="bad.json: not valid JSON"):
        space.load_genotype(bad)
    with pytest.raises(FileNotFoundError, match="missing.json does not exist"):
        space.load_genotype(tmp_path / "missing.json")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: CNNCellSpace(num_nodes=0), "num_nodes must be >= 1, got 0"),
        (lambda: CNNCellSpace(ops=["sep_conv_3x3", "sep_conv_3x3"]), "distinct"),
        (lambda: CNNCellSpace(ops=["sep_conv_3x3", "warp_drive"]), "unknown op 'warp_drive'"),
        (lambda: RNNCellSpace(num_nodes=-1), "num_nodes must be >= 1, got -1"),
        (lambda: RNNCellSpace(activations=["tanh", "gelu"]), "unknown activation 'gelu'"),
    ],
)
def test_bad_space_parameters_are_rejected(make, message):
    with pytest.raises(ValueError, match=message):
        make()
