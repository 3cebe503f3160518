"""Readers, writers, CRS normalisation, validation, transactional loading and the demo-city builder."""
