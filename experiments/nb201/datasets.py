"""The three NAS-Bench-201 datasets: which table column a search scores by, which one it reports."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dataset:
    title: str
    column: str  # the search score (evaluator.column)
    test_column: str  # what is reported of the best architecture by that score (evaluator.test_column)

    @property
    def overrides(self) -> list[str]:
        return [f"evaluator.column={self.column}", f"evaluator.test_column={self.test_column}"]


# For CIFAR-100 and ImageNet16-120 the table holds a validation accuracy after 12 epochs only: the search
# scores by it and reports the 200-epoch test accuracy, so a search can be right by its score and still
# miss the best test accuracy.
DATASETS = {
    "cifar10": Dataset("CIFAR-10", "c10valid_valid_acc_200ep", "c10_test_acc_200ep"),
    "cifar100": Dataset("CIFAR-100", "c100_valid_acc_12ep", "c100_test_acc_200ep"),
    "imagenet16": Dataset("ImageNet16-120", "in16_valid_acc_12ep", "in16_test_acc_200ep"),
}
