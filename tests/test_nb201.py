import pytest

from naolit.benchmarks import NB201Table
from naolit.spaces import NB201Space

from conftest import NB201_CSV


@pytest.fixture(scope="module")
def table():
    return NB201Table(NB201_CSV)


def test_every_row_of_the_table_round_trips_through_tokens(table):
    space = NB201Space()
    assert len(set(map(tuple, table.tokens.tolist()))) == 15625
    for arch_str, tokens in zip(table.frame["arch_str"], table.tokens.tolist()):
        assert space.to_arch_str(tokens) == arch_str
        assert space.from_genotype(space.to_genotype(tokens)) == tuple(tokens)


def test_the_space_enumerates_exactly_the_table(table):
    assert NB201Space().is_valid_batch(table.tokens).all()
    assert len(table.row_of) == 5 ** 6


def test_known_optimum(table):
    test = table.column("c10_test_acc_200ep")
    best = int(table.column("c10valid_valid_acc_200ep").argmax())
    assert best == 6111 and test[best] == pytest.approx(94.37, abs=0.01)
    assert table.rows([tuple(table.tokens[6111].tolist())]).tolist() == [6111]


def test_unknown_column_and_missing_file_are_named(table, tmp_path):
    with pytest.raises(KeyError, match="no column 'c10_acc'.*available"):
        table.column("c10_acc")
    with pytest.raises(FileNotFoundError, match="missing.csv does not exist"):
        NB201Table(tmp_path / "missing.csv")
