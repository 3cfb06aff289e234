"""Copycat's pipeline stages: decode, embed, index, store, select, localise, DnS, evaluate."""
