"""Guarantees by construction: output layers that can only produce outputs satisfying the rule.

- ``recognise``: does a parsed rule fit a construction (HardNet-Aff, output gadgets, HCR), and if not, why;
  the affine rows ``b_l(x) <= A y <= b_u(x)`` compiled from the rule itself, in exact rationals.
- ``enforced``: the network with the enforcement layer appended (a ``SkipMLP`` subclass, saved in the
  model directory), and its form as a plain feed-forward ReLU network for the exact engines.
- ``hardnet``: training (end to end through the enforcement layer).
- ``hcr``, ``hcr_train``, ``hcr_certificate``: HCR's layer (direction + radius around an interior point of a
  fixed polytope), its training, and its certificate (verdict "by construction": not piecewise linear).
- ``certificate``: the exact check of a constructed network, in the format of DeepSaDe's certificate.
- ``advise``: which methods can guarantee a rule file, with the reason for each.
"""
