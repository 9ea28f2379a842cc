"""Robustness to camera shifts: the corruption study tables, codecs, night fleet probes."""
