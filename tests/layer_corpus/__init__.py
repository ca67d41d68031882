"""Course-style single layers written by hand for check-layer (issue 16): correct ones, benign variants and planted
bugs, listed as plain data in manifest.py. Written from the maths, independent of bpcheck's code."""
