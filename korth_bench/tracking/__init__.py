"""Watching trials where researchers already look: MLflow runs and TensorBoard event files.

No Ray here: ``tracking.settings`` parses the ``logging:`` section of a search space,
``tracking.mlflow_runs`` keeps one parent run per sweep and one child run per trial,
``tracking.tensorboard_runs`` writes one event directory per trial, and ``tracking.tracker``
combines them for one sweep (the Tune callback ``sweep.tracking`` feeds it) or one ``train`` run.
Nothing korth-bench writes depends on them: a tracker that fails reports it once per trial and
the trial goes on.
"""
