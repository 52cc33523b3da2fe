"""Verify: the in-container torch check, its failure causes, and the verify stage."""
