"""Dataset recipes: training datasets built from files that packages ship (`prepare --recipe`)."""
