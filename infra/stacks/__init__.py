"""Thin stacks, one per concern."""
