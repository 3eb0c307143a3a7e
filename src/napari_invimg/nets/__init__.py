"""Network architectures (pure torch) and their small shipped weights."""
