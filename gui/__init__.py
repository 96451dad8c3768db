"""Batch Size Lab desktop workbench: PySide6 widgets over the engine. No training maths here (see DESIGN.md)."""
