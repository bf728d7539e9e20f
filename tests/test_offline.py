"""The app works with the network gone: a full run with socket creation blocked.

A `sitecustomize` module on PYTHONPATH makes every interpreter of the run (the
command line, the model worker it spawns) refuse to create an internet socket
and note each attempt in a file. Local sockets (AF_UNIX), which multiprocessing
uses between the processes, stay allowed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO
from vision_fixtures import make_onnx_model_dir, structured_images

pytestmark = pytest.mark.timeout(600)

NOTE = "67-year-old woman, productive cough for 3 days. RR 23, SpO2 94% on air, BP 118/74, HR 102, T 38.4, alert."
LABELS = ["normal chest x-ray", "pneumonia", "pleural effusion"]

SITECUSTOMIZE = textwrap.dedent(
    """
    import os, socket

    _real_socket_init = socket.socket.__init__

    def _no_internet(self, family=-1, type=-1, proto=-1, fileno=None):
        if fileno is None and family in (socket.AF_INET, socket.AF_INET6, -1):
            with open(os.environ["NETWORK_ATTEMPTS"], "a") as log:
                log.write(f"{os.getpid()} socket({family})\\n")
            raise PermissionError("network blocked for this test")
        _real_socket_init(self, family, type, proto, fileno)

    socket.socket.__init__ = _no_internet
    """
)

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from tui.cli import main
    try:
        status = main(sys.argv[1:])
    except SystemExit as exit:  # --help ends with SystemExit(0)
        status = exit.code
    print("OFFLINE_ENV=" + json.dumps({k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}),
          file=sys.stderr)
    sys.exit(status)
    """
)


@pytest.fixture
def blocked_env(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    attempts = tmp_path / "attempts.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]),
        "NETWORK_ATTEMPTS": str(attempts),
    }
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("TRANSFORMERS_OFFLINE", None)
    return env, attempts


def run_blocked(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=500
    )


def test_the_block_really_refuses_internet_sockets(blocked_env):
    env, attempts = blocked_env
    probe = "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 9))\nexcept PermissionError:\n    print('blocked')"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.stdout.strip() == "blocked"
    assert attempts.read_text().count("socket(") == 1


def test_a_full_run_with_the_network_blocked(tmp_path, blocked_env):
    env, attempts = blocked_env
    vision_dir = make_onnx_model_dir(tmp_path / "vision", LABELS, structured_images(len(LABELS), seed=3))
    image = tmp_path / "xray.png"
    structured_images(len(LABELS), seed=3)[1].save(image)
    note = tmp_path / "note.txt"
    note.write_text(NOTE)
    result = run_blocked(
        env,
        "analyze",
        "--note",
        str(note),
        "--image",
        str(image),
        "--vision-model",
        str(vision_dir),
        "--max-tokens",
        "300",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["model"]["demo"] is True  # the model loaded and answered
    assert [f["label"] for f in payload["image_findings"]][:1] == ["pneumonia"]  # the image was read
    assert '"HF_HUB_OFFLINE": "1"' in result.stderr and '"TRANSFORMERS_OFFLINE": "1"' in result.stderr
    assert not attempts.exists(), attempts.read_text()

    # the stored record and the handoff export, written by the engine's own functions
    store_and_export = textwrap.dedent(
        f"""
        import json
        from pathlib import Path
        from engine import History, export_assessment
        from engine.schema import Assessment
        assessment = Assessment.model_validate(json.loads({result.stdout!r}))
        history = History()
        entry_id = history.add({NOTE!r}, assessment, image_path={str(image)!r})
        assert history.get(entry_id) is not None
        history.close()
        paths = export_assessment(assessment, {NOTE!r}, image_path={str(image)!r})
        print(all(Path(p).exists() for p in paths))
        """
    )
    stored = subprocess.run(
        [sys.executable, "-c", store_and_export],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )
    assert stored.returncode == 0 and stored.stdout.strip() == "True", stored.stderr
    assert not attempts.exists(), attempts.read_text()


def test_doctor_says_the_app_makes_no_network_connections(blocked_env):
    env, attempts = blocked_env
    result = run_blocked(env, "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the app makes no network connections" in result.stdout
    assert not attempts.exists()


def test_export_vision_says_plainly_that_it_downloads(blocked_env):
    env, _ = blocked_env
    result = run_blocked(env, "export-vision", "--help")
    assert result.returncode == 0
    assert "downloads the model from the Hugging Face hub" in result.stderr
    assert '"HF_HUB_OFFLINE": null' in result.stderr  # the one command left online
