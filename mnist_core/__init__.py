"""mnist_core: the engine behind mnist-studio (data, architectures, training, evaluation,
preprocessing, run folders, plots and a CLI). It never imports streamlit, and importing the package
does not import TensorFlow: only the functions that build, train or run a model do."""

from .config import ArchConfig, ConfigError, TrainConfig, preset_config

__all__ = ["ArchConfig", "ConfigError", "TrainConfig", "preset_config"]
