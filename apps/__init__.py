"""Course-style applications built on needle (MNIST MLPs, the training demo)."""
