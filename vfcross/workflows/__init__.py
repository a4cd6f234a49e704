"""The workflows that run the stages: the command line, the notebook runner, scoring, inference, multilingual runs
and the train-and-compare workflows of the notebooks (:mod:`~vfcross.workflows.compare`). Nothing below imports them."""
