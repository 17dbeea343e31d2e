"""Data modules, one per modality; importing this package registers them all."""

from inrbench.data import (  # noqa: F401  (registration side effects)
    audio,
    celeba,
    cifar,
    image,
    images,
    megapixel,
    memmap,
    shape3d,
    video,
)
from inrbench.data.base import SignalDataModule, SignalSpec
from inrbench.data.registry import (
    create_datamodule,
    list_datamodules,
    register_datamodule,
    served_spec,
)

__all__ = ["SignalDataModule", "SignalSpec", "create_datamodule", "list_datamodules",
           "register_datamodule", "served_spec"]
