"""bpcheck's benchmarks: each prints a table of side-by-side ratios measured in one run."""
