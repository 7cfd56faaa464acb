"""Tests of the protocols package: run files (writer, reader, journal, crash safety)."""
