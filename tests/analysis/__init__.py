"""Tests of the analysis package: catalogue, metrics, variation, figures and exports."""
