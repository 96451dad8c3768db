"""The README is documentation users rely on: its config table must be the code's."""
from scripts.config_reference import reference_table
from tests.conftest import ROOT


def test_readme_config_table_matches_the_config_dataclasses():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert reference_table() in readme, "run: .venv/bin/python scripts/config_reference.py, paste into README"
