"""Guarantees by construction: output layers that can only produce outputs satisfying the rule.

- ``recognise``: does a parsed rule fit a construction (HardNet-Aff, output gadgets, HCR), and if not, why;
  the affine rows ``b_l(x) <= A y <= b_u(x)`` compiled from the rule itself, in exact rationals.
- ``enforced``: the network with the enforcement layer appended (a ``SkipMLP`` subclass, saved in the
  model directory), and its form as a plain feed-forward ReLU network for the exact engines.
- ``hardnet``: training (end to end through the enforcement layer).
- ``hcr``, ``hcr_train``, ``hcr_certificate``: HCR's layer (direction + radius around an interior point of a
  fixed polytope), its training, and its certificate (verdict "by construction": not piecewise linear).
- ``certificate``: the exact check of a constructed network, in the format of DeepSaDe's certificate.
- ``bilinear``, ``input_rule``, ``input_enforced``, ``input_certificate``: HardNet-Aff with ``A(x)`` (an assert
  multiplies an output by an input): the rows compiled from the rule, full row rank on the box proven by z3,
  the per-input projection layer, and its certificate (verdict "by construction": not piecewise linear).
- ``constructed_verify``: what ``verify`` and ``adi`` report on the layers that are not piecewise linear
  (HCR, ``A(x)``): the part z3 proves, the part that is by construction, sampled inputs checked exactly.
- ``hcr_onnx``: HCR's network as an ONNX graph for ``export`` (no VNN-LIB: not piecewise linear).
- ``monotone_rule``, ``repair_layer``, ``repair_certificate``, ``repair_train``: label-set repair of a monotone
  rule on the predicted labels (binary, multi-label): the rule's minimal label sets, the layer that adds the
  cheapest one where the base's labels break the rule, its exact certificate over every base output, training.
- ``score_clamp_rule``, ``score_clamp``, ``score_clamp_train``, ``score_clamp_certificate``: score clamps for
  classifier rules (max/min after the scores, premise gates on boxes of inputs, rules between scores): the
  clauses compiled from the rule, the layer and its plain ReLU form, training, and the exact certificate with
  the base scores free.
- ``advise``: which methods can guarantee a rule file, with the reason for each.
"""
