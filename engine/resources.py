"""Where the bundled resources (presets, icons, stylesheets) are, from source and from a packaged app."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

APP_DIR_NAME = "batch-size-lab"


def resources_dir() -> Path:
    # PyInstaller unpacks data files under sys._MEIPASS; from source they sit beside engine/.
    bundle = getattr(sys, "_MEIPASS", None)
    return Path(bundle) / "resources" if bundle else Path(__file__).resolve().parent.parent / "resources"


def presets() -> dict[str, Path]:
    """Preset name (file stem) → path, sorted by name."""
    return {path.stem: path for path in sorted((resources_dir() / "presets").glob("*.toml"))}


def default_workspace() -> Path:
    """Where run files go unless the user picks another folder; BATCH_SIZE_LAB_WORKSPACE overrides it."""
    override = os.environ.get("BATCH_SIZE_LAB_WORKSPACE")
    return Path(override) if override else Path(platformdirs.user_data_dir(APP_DIR_NAME)) / "runs"


def cache_dir() -> Path:
    """Generated built-in datasets live here; BATCH_SIZE_LAB_CACHE overrides it."""
    override = os.environ.get("BATCH_SIZE_LAB_CACHE")
    return Path(override) if override else Path(platformdirs.user_cache_dir(APP_DIR_NAME))
