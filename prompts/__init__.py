"""Versioned prompt templates, rendered for completion or chat models; imports nothing of ours."""
