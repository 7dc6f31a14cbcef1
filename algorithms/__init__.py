"""Processing algorithms of the S1S2 Toolkit (one module per algorithm)."""
