"""Protocol files -> checked plan -> runner -> HDF5 run files (with a run journal)."""
