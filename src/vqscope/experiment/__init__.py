"""Research workflow: feature cache, multi-dataset training from a TOML file, evaluation.

    config.py     the TOML file as typed dataclasses, strict about keys and values
    data.py       datasets + cached clip features -> packed matrices, targets on 0-100
    splits.py     official splits, k-fold, or all; stable under file order
    multihead.py  one trunk, one head per dataset, balanced batches, early stopping
    runner.py     `vqscope train`: all of the above, then the model file
"""

from .config import ExperimentConfig, default_cache_dir, load_config, name_for_spec, parse_config

__all__ = ["ExperimentConfig", "default_cache_dir", "load_config", "name_for_spec", "parse_config"]
