"""Batch Size Lab engine: configs, data, models, training sweeps, run files and analyses. No Qt here."""

__version__ = "0.1.0"
APP_NAME = "Batch Size Lab"
