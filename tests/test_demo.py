"""`tuwen demo` runs every stage on a small synthetic catalog and narrates each one."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tuwen.cli import app
from tuwen.workspace import Workspace


def test_demo_runs_every_stage_and_leaves_a_usable_workspace(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--workspace", str(tmp_path / "ws"), "--products", "140"])
    assert result.exit_code == 0, result.output
    for step in ("1. Generated a SYNTHETIC catalog", "2. Ingested 140 products", "3. Embedded", "6. Text vs photo",
                 "fusion:gated", "7. Search", "红色连衣裙", "8. Recommendations", "profile:", "Done."):
        assert step in result.output, step
    ws = Workspace(tmp_path / "ws", create=False)
    assert ws.info()["products"] == 140
    assert list((ws.artifacts / "reports").glob("*.md")), "the ablation report was written"
    assert ws.search("red", k=2).hits
