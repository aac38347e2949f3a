"""Convergence speed from a learning curve: pure functions of the per-epoch test accuracies."""
from __future__ import annotations

from typing import Dict, Optional, Sequence

FRACTIONS_OF_BEST = (0.9, 0.95)


def first_epoch_reaching(accuracies: Sequence[float], target: float) -> Optional[int]:
    """Number of epochs (1-based count) until accuracy first reaches ``target``; None if never."""
    for index, accuracy in enumerate(accuracies):
        if accuracy is not None and accuracy >= target:
            return index + 1
    return None


def convergence_summary(test_accs: Sequence[float], elapsed_s: Sequence[float],
                        thresholds: Sequence[float]) -> Dict[str, Optional[float]]:
    """Epochs and seconds to 90% / 95% of the best test accuracy, epochs to fixed accuracies, AUC.

    Args:
        test_accs: test accuracy after each epoch, in [0, 1].
        elapsed_s: training seconds elapsed at the end of each epoch (evaluation excluded).
        thresholds: fixed accuracies for ``epochs_to_acc_<100*t>``.
    Returns:
        best_test_acc, best_test_epoch (0-based), epochs_to_{90,95}pct_best,
        seconds_to_{90,95}pct_best, epochs_to_acc_<k> and accuracy_auc (mean test accuracy over
        the epochs, the area under the learning curve divided by its length).
    """
    finite = [a for a in test_accs if a is not None]
    row: Dict[str, Optional[float]] = {}
    best = max(finite) if finite else None
    row["best_test_acc"] = best
    row["best_test_epoch"] = test_accs.index(best) if finite else None
    for fraction in FRACTIONS_OF_BEST:
        tag = f"{round(fraction * 100)}pct_best"
        epochs = first_epoch_reaching(test_accs, fraction * best) if finite else None
        row[f"epochs_to_{tag}"] = epochs
        row[f"seconds_to_{tag}"] = elapsed_s[epochs - 1] if epochs else None
    for threshold in thresholds:
        row[f"epochs_to_acc_{round(threshold * 100)}"] = first_epoch_reaching(test_accs, threshold)
    row["accuracy_auc"] = sum(finite) / len(finite) if finite else None
    return row
