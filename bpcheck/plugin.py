"""The pytest plugin (pytest11 entry point): inert unless a test uses it."""
