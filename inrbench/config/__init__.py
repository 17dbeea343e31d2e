"""Configuration: the files in ``conf/``, their composition, validation, the paper rows used as
defaults, the experiment files and what a resumed run may change. It builds and runs nothing:
turning a config into objects is :mod:`inrbench.build`.
"""

from inrbench.config.compose import compose, row_config, validate
from inrbench.config.files import conf_dir, list_experiments, load_yaml, parse_overrides

__all__ = ["compose", "conf_dir", "list_experiments", "load_yaml", "parse_overrides",
           "row_config", "validate"]
