"""The README's "Serve" block runs as written: start the server, wait for /health, curl a chat, stop.

Only the port changes (8000 -> a free one), so the test never collides with a server on the machine.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from alignkit.serve.app import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def serve_block() -> str:
    text = (REPO / "README.md").read_text()
    after = text[text.index("## Serve") :]
    return re.search(r"```bash\n(.*?)```", after, flags=re.DOTALL).group(1)


def test_the_readme_serve_block_runs_as_written(tmp_path):
    block = serve_block()
    assert "alignkit serve" in block and "curl" in block and "kill $!" in block
    port = str(free_port())
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        ["bash", "-e", "-c", block.replace("8000", port)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    # the server's start line, then curl's two bodies back to back (curl adds no newline)
    line = result.stdout.strip().splitlines()[-1]
    health, end = json.JSONDecoder().raw_decode(line)
    answer = json.loads(line[end:])
    assert health == {"status": "ok"}
    assert answer["model"] == "toy" and answer["choices"][0]["message"]["role"] == "assistant"
    assert answer["usage"]["completion_tokens"] >= 1
