from __future__ import annotations

from sandbox.gemini.cli import app

app(prog_name="python -m sandbox.gemini")
