"""Trained product models: features, fusion, networks, tasks, training, and the one Predictor contract."""
