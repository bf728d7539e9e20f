"""Every benchmark still runs: each one, briefly, through `python -m benchmarks`' own runner.

Nothing here looks at timings; the figures of a quick run are not measurements.
"""

from __future__ import annotations

import math

import pytest
from llama_server import llama_server_binary

from benchmarks.__main__ import BENCHMARKS, HERE, machine, run

pytestmark = pytest.mark.timeout(900)


@pytest.mark.parametrize("benchmark", BENCHMARKS, ids=lambda b: b.name)
def test_benchmark_runs_and_records_its_figures(benchmark):
    if not (HERE / f"bench_{benchmark.name}.py").exists():
        pytest.skip(f"bench_{benchmark.name}.py is not in this tree")
    if benchmark.name == "server" and llama_server_binary() is None:
        pytest.skip("llama-server is not built here (scripts/build_llama_server.sh; CI builds it)")
    figures, problem, _elapsed = run(benchmark, quick=True)
    assert problem == ""
    assert figures, "a benchmark records at least one headline figure"
    for figure in figures:
        assert figure["label"]
        assert not math.isnan(float(figure["value"])), figure


def test_the_report_describes_the_machine():
    lines = machine()
    assert any(line.startswith("- CPU: ") for line in lines)
    assert any("llama.cpp build" in line for line in lines)
