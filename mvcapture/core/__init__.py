"""Pure numeric core (numpy/torch, no Qt): skeletons, Procrustes, losses, metrics."""
