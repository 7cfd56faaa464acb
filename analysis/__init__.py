"""Read runs, extract device metrics, wafer statistics, network simulation, power, reports."""
