"""Filmroom's reader-station agent. Imports nothing from Django or the apps: it talks to the
documented HTTP API like any third-party client."""
