"""The image-model tools behind `medgemma-tui export-vision` and `train-probe`.

Each tool lives in its own module with heavy imports (numpy, PIL, onnxruntime,
and torch for the export). It is imported only when the tool runs, so building
the command line and every other command stay light. The tool parses its own
arguments, so `--help` shows the tool's own options.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    module: str  # has add_arguments(parser) and main(args) -> exit code
    help: str


TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool(
            "export-vision",
            "models.export_vision",
            "export BiomedCLIP's vision tower to INT8 ONNX (needs the export extra)",
        ),
        Tool("train-probe", "models.probe", "train a linear probe on labelled images for the image model"),
    )
}


def run_tool(name: str, argv: Sequence[str], prog: str = "medgemma-tui") -> int:
    """Run tool `name` with its own arguments; returns its exit code.

    argparse exits with status 2 on bad arguments and 0 after `--help`.
    """
    tool = TOOLS[name]
    module = importlib.import_module(tool.module)
    parser = argparse.ArgumentParser(prog=f"{prog} {name}", description=tool.help)
    module.add_arguments(parser)
    exit_code: int = module.main(parser.parse_args(list(argv)))
    return exit_code
