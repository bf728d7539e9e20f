"""Image findings reach the assessment, marked as image-text similarity, never a diagnosis.

The image model here is a tiny ONNX graph in the export format (built without
torch by tests/vision_fixtures.py): real onnxruntime, real files, not BiomedCLIP's
weights, which cannot be downloaded on this machine.
"""

from __future__ import annotations

import pytest
from conftest import collect
from vision_fixtures import make_onnx_model_dir, structured_images

from engine.config import Settings
from engine.engine import Engine
from engine.events import AnalysisRequest, Finished, ImageAnalysed, PhaseChanged
from engine.prompts import PromptContext, build_messages

pytestmark = pytest.mark.timeout(600)

LABELS = ["normal chest x-ray", "pneumonia", "pleural effusion", "eczema"]
NOTE = "Cough and fever for 3 days. RR 22, SpO2 95% on air, HR 100, T 38.2, alert."


@pytest.fixture
def vision_dir(tmp_path):
    return make_onnx_model_dir(tmp_path / "vision", LABELS, structured_images(len(LABELS), seed=3))


@pytest.fixture
def image_path(tmp_path):
    path = tmp_path / "xray.png"
    structured_images(len(LABELS), seed=3)[1].save(path)
    return path


async def test_image_findings_join_the_prompt_and_the_assessment(vision_dir, image_path):
    engine = Engine(Settings.resolve(vision_model=str(vision_dir), threads=2))
    try:
        events = await collect(
            engine.run(AnalysisRequest(note=NOTE, image_path=str(image_path), max_tokens=200))
        )
    finally:
        await engine.close()
    assert PhaseChanged("image") in events
    analysed = next(e for e in events if isinstance(e, ImageAnalysed))
    assert analysed.error is None and len(analysed.findings) == 3
    assert analysed.findings[0].label == "pneumonia"  # the reference image of that label
    assert all("not a diagnosis" in f.method for f in analysed.findings)
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert [f.label for f in finished.assessment.image_findings] == [f.label for f in analysed.findings]
    prompt = build_messages(NOTE, PromptContext(image_lines=("pneumonia: 40%",)))[0]["content"]
    assert "not a diagnosis" in prompt and "pneumonia: 40%" in prompt


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda p: p.write_text("not an image"), "not"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: None, "not found"),
    ],
)
async def test_a_bad_image_is_refused_in_one_line_and_the_note_is_still_assessed(
    tmp_path, vision_dir, make, words
):
    path = tmp_path / "scan.png"
    make(path)
    engine = Engine(Settings.resolve(vision_model=str(vision_dir), threads=2))
    try:
        events = await collect(engine.run(AnalysisRequest(note=NOTE, image_path=str(path), max_tokens=60)))
    finally:
        await engine.close()
    analysed = next(e for e in events if isinstance(e, ImageAnalysed))
    assert analysed.findings == [] and words in analysed.error.lower() and "\n" not in analysed.error
    assert isinstance(events[-1], Finished) and events[-1].assessment.image_findings == []


async def test_without_an_image_model_the_image_is_refused_clearly(image_path):
    engine = Engine(Settings.resolve(threads=2))
    try:
        events = await collect(
            engine.run(AnalysisRequest(note=NOTE, image_path=str(image_path), max_tokens=30))
        )
    finally:
        await engine.close()
    analysed = next(e for e in events if isinstance(e, ImageAnalysed))
    assert "no image model" in analysed.error and "export-vision" in analysed.error
    assert isinstance(events[-1], Finished)
