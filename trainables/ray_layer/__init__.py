"""The Ray layer of ``trainables``: the only modules of the package that import ``ray``.

- ``private``: the one shim for every Ray-private API the project touches (trainables, study,
  search_spaces); each access is wrapped and says the Ray version it was read from;
- ``trainable``: the Tune function trainable (one trial in one process);
- ``storage``: checkpoints on the trial's storage, reported epochs, lost-epoch re-reporting;
- ``train_driver``: a data-parallel trial as a Ray Train run inside its Tune trial;
- ``pack_trainable`` / ``pack_storage``: a trial pack (K trials as one Tune trial) and its
  members' trial folders in the study's storage (docs/packing.md);
- ``dashboard``: what a trial shows to Ray's dashboard (actor name, log prefix, gauges);
- ``dispatch``: THE function that picks the trainable for a trial's resources.

This package file imports nothing, so ``trainables.ray_layer.private`` stays cheap to import
(its constants are read by light CLI commands that must not pay for importing Ray).
"""
