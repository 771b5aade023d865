"""Modules a reviewer would add to plug a new part into a stage (see tests/test_architecture.py)."""
