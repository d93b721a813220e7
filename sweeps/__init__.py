"""The sweep service: Ray Tune + Optuna over TrainConfig, one training run per trial."""
