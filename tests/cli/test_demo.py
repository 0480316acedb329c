"""`tuwen demo` runs every stage on a small synthetic catalog and narrates each one."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tuwen import Workspace
from tuwen.cli.main import app


def test_demo_runs_every_stage_and_leaves_a_usable_workspace(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--workspace", str(tmp_path / "ws"), "--products", "140"])
    assert result.exit_code == 0, result.output
    output = result.output
    for step in ("1. Generated a SYNTHETIC catalog", "2. Ingested 140 products", "3. Embedded", "6. Text vs photo",
                 "fusion:gated", "7. Search", "“red glass”", "“蓝色纯棉”", "8. Recommendations", "profile:", "Done."):
        assert step in output, step
    assert output.count("what it shows:") >= 7  # every step says what its output shows
    assert "category depends on the shape, visible only in the photo, and on the material" in output
    ablation = output.split("6. Text vs photo")[1].split("7. Search")[0]
    scores = {line.split()[0]: float(line.split()[1]) for line in ablation.splitlines()
              if len(line.split()) == 2 and line.split()[1].replace(".", "").isdigit()}
    best_fusion = max(v for k, v in scores.items() if k.startswith("fusion:"))
    best_single = max(v for k, v in scores.items() if not k.startswith("fusion:"))
    assert best_fusion > best_single  # the catalog is built so that only both modalities tell every category
    assert f"beats the best single modality by {best_fusion - best_single:+.3f}" in ablation
    assert "skipped" not in output  # the synthetic catalog has everything every step needs
    search = output.split("7. Search")[1].split("8. Recommendations")[0]
    assert search.count("[red/glass]") >= 1 and search.count("/cotton]") >= 3  # the catalog answers its queries
    recommendations = output.split("8. Recommendations")[1].split("profile:")[0]
    assert "photo closest to “" in recommendations or "title and description closest to “" in recommendations
    assert "syn-0" not in recommendations.split("— ", 1)[1].split("\n")[0]  # reasons name titles, not ids
    ws = Workspace(tmp_path / "ws", create=False)
    assert ws.info()["products"] == 140
    assert list((ws.artifacts / "reports").glob("*.md")), "the ablation report was written"
    assert ws.search("red", k=2).hits
