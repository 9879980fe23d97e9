"""Training runs on one torch thread unless OMP_NUM_THREADS is set (``deepsade.threads``): many tiny parallel
regions per step stall on a loaded machine (results/threads)."""

from __future__ import annotations

import torch

from deepsade.estimator import DeepSaDe
from deepsade.threads import TRAINING_THREADS, training_threads


def test_one_thread_inside_and_the_count_restored_after(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(2)
    try:
        with training_threads() as inside:
            assert inside == TRAINING_THREADS == torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(2)


def test_a_users_omp_num_threads_is_left_to_torch(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    torch.set_num_threads(2)
    with training_threads() as inside:
        assert inside == torch.get_num_threads() == 2


def test_the_estimator_trains_on_one_thread(monkeypatch, loan_frame, loan_constraint):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    seen = []

    def record(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        raise RuntimeError("recorded")

    monkeypatch.setattr(DeepSaDe, "_train_with_method", record)
    torch.set_num_threads(2)
    try:
        DeepSaDe(loan_constraint, ["Loan_Status"], epochs=1, positive="Y").fit(loan_frame)
    except RuntimeError:
        pass
    assert seen == [1] and torch.get_num_threads() == 2
