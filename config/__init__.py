"""Typed, validated settings: defaults < optional TOML file < environment."""

from config.settings import ConfigError, Settings, load_settings, settings_fields

__all__ = ["ConfigError", "Settings", "load_settings", "settings_fields"]
