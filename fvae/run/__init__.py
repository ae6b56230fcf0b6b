"""The run: a config (`config`), its run directory (`rundir`, `checkpoints`, `writer`), the
pieces it assembles (`assemble`), training to early stopping (`trainer`, `stopping`), the
evaluation report (`report`) and tables of several runs (`table`). Everything with side
effects lives here; the numbers come from fvae.compute and fvae.analysis."""
