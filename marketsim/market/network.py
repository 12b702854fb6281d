"""Word-of-mouth awareness on a social graph: networkx builds the graph, scipy.sparse runs diffusion.

Awareness is a boolean (n_sellers, n_consumers) array: a consumer only considers sellers it knows.
Each step every buyer tells each neighbour about its seller with probability ``spread`` and
consumers forget sellers they did not buy from with probability ``decay``.
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
from scipy import sparse

from marketsim.config.scenario import BarabasiAlbert, EdgeList, ErdosRenyi, Graph, WattsStrogatz


def build_graph(spec: Graph, n: int, rng: np.random.Generator) -> nx.Graph:
    """The social graph over consumers 0..n-1 described by ``spec``."""
    seed = int(rng.integers(2**31 - 1))
    if isinstance(spec, WattsStrogatz):
        return nx.watts_strogatz_graph(n, min(spec.k, n - 1), spec.p, seed=seed)
    if isinstance(spec, BarabasiAlbert):
        return nx.barabasi_albert_graph(n, min(spec.m, n - 1), seed=seed)
    if isinstance(spec, ErdosRenyi):
        return nx.fast_gnp_random_graph(n, min(spec.mean_degree / max(n - 1, 1), 1.0), seed=seed)
    if isinstance(spec, EdgeList):
        graph = nx.read_edgelist(Path(spec.path), nodetype=int)
        bad = [v for v in graph.nodes if not 0 <= v < n]
        if bad:
            raise ValueError(f"edge list {spec.path} names node {bad[0]}, outside 0..{n - 1} (consumers.size = {n})")
        graph.add_nodes_from(range(n))
        return graph
    raise TypeError(f"unknown graph spec {spec!r}")


def adjacency(graph: nx.Graph, n: int) -> sparse.csr_array:
    """Symmetric 0/1 adjacency matrix in CSR form, nodes in order 0..n-1."""
    return nx.to_scipy_sparse_array(graph, nodelist=range(n), dtype=np.float32, format="csr")


def initial_awareness(n_sellers: int, n: int, share: float, rng: np.random.Generator) -> np.ndarray:
    """Each consumer knows each seller independently with probability ``share``."""
    return rng.random((n_sellers, n)) < share


def spread_awareness(
    aware: np.ndarray,
    buyers: np.ndarray,
    choice: np.ndarray,
    adj: sparse.csr_array,
    spread: float,
    decay: float,
    rng: np.random.Generator,
) -> None:
    """Update ``aware`` in place after a step in which consumer ``buyers[k]`` bought from ``choice[k]``."""
    n_sellers, n = aware.shape
    bought = sparse.csr_array((np.ones(len(buyers), dtype=np.float32), (buyers, choice)), shape=(n, n_sellers))
    told = (adj @ bought).tocoo()  # told[i, j] = neighbours of i that bought from j
    consumer, seller, times = told.row, told.col, told.data
    fresh = ~aware[seller, consumer]
    consumer, seller, times = consumer[fresh], seller[fresh], times[fresh]
    learns = rng.random(len(times)) < 1.0 - (1.0 - spread) ** times
    if decay > 0:
        kept = rng.random(aware.shape) >= decay
        kept[choice, buyers] = True
        aware &= kept
    aware[seller[learns], consumer[learns]] = True
    aware[choice, buyers] = True
