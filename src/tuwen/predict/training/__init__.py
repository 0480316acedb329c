"""Training: settings, the split, the loop, a model's members and blend, the ablation and its report."""
