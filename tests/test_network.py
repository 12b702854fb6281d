"""Social graphs and word-of-mouth diffusion."""

from __future__ import annotations

import numpy as np
import pytest

from marketsim.config.scenario import BarabasiAlbert, EdgeList, ErdosRenyi, WattsStrogatz
from marketsim.market import network


@pytest.mark.parametrize(
    "spec",
    [
        WattsStrogatz(kind="watts_strogatz", k=4, p=0.1),
        BarabasiAlbert(kind="barabasi_albert", m=2),
        ErdosRenyi(kind="erdos_renyi", mean_degree=5),
    ],
    ids=lambda s: s.kind,
)
def test_generated_graphs_cover_every_consumer(spec) -> None:
    g = network.build_graph(spec, 500, np.random.default_rng(0))
    adj = network.adjacency(g, 500)
    assert adj.shape == (500, 500)
    assert (adj != adj.T).nnz == 0  # undirected
    assert 2 < adj.sum() / 500 < 10


def test_edge_list_file(tmp_path) -> None:
    path = tmp_path / "edges.txt"
    path.write_text("0 1\n1 2\n2 3\n")
    g = network.build_graph(EdgeList(kind="edge_list", path=str(path)), 5, np.random.default_rng(0))
    assert g.number_of_nodes() == 5 and g.number_of_edges() == 3
    with pytest.raises(ValueError, match="outside 0..2"):
        network.build_graph(EdgeList(kind="edge_list", path=str(path)), 3, np.random.default_rng(0))


def test_spread_reaches_only_neighbours_of_buyers_and_decay_forgets() -> None:
    # a path 0-1-2-3-4; consumer 0 buys from seller 1
    g = network.build_graph(WattsStrogatz(kind="watts_strogatz", k=2, p=0.0), 5, np.random.default_rng(0))
    adj = network.adjacency(g, 5)
    aware = np.zeros((2, 5), dtype=bool)
    aware[1, 0] = True
    network.spread_awareness(aware, np.array([0]), np.array([1]), adj, 1.0, 0.0, np.random.default_rng(1))
    assert set(np.flatnonzero(aware[1])) == {0, 1, 4}  # ring of 5: neighbours of 0 are 1 and 4
    assert not aware[0].any()
    network.spread_awareness(
        aware, np.array([], dtype=int), np.array([], dtype=int), adj, 1.0, 1.0, np.random.default_rng(2)
    )
    assert not aware.any()  # with decay 1 and no buyers everyone forgets
