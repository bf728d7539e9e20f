"""The safety layer's package shape: the prompt builder loads only the prompt guard."""

from __future__ import annotations

import subprocess
import sys


def test_prompt_builder_imports_only_the_prompt_guard() -> None:
    code = (
        "import sys, engine.prompts\nprint(sorted(m for m in sys.modules if m.startswith('engine.safety')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['engine.safety', 'engine.safety.prompt_guard']"


def test_every_public_name_still_imports_from_engine_safety() -> None:
    import engine.safety as safety

    for name in safety.__all__:
        assert getattr(safety, name) is not None, name
