"""Datasets: registry, imbalance, readers and the device-resident loader."""
from trainables.data.registry import (DATASETS, DatasetInfo, describe_dataset, get_dataset,
                                      list_datasets, register_dataset)

__all__ = ["DATASETS", "DatasetInfo", "describe_dataset", "get_dataset", "list_datasets",
           "register_dataset"]
