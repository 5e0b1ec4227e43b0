"""Datasets: registry, imbalance, readers and the device-resident loader."""
from trainables.data.registry import DATASETS, DatasetInfo, get_dataset, register_dataset

__all__ = ["DATASETS", "DatasetInfo", "get_dataset", "register_dataset"]
