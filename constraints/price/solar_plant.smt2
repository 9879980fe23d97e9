; Solar plant (scikit-learn's make_regression with two targets, rescaled to kWh), multi-output regression:
; output relations and an output range.
; In words: the losses are at least 5% of the output and at most 40% of it; the output lies in [0, 1500] kWh.
(declare-const output_kwh Real)
(declare-const losses_kwh Real)
(assert (>= losses_kwh (* 0.05 output_kwh)))
(assert (<= losses_kwh (* 0.4 output_kwh)))
(assert (and (>= output_kwh 0.0) (<= output_kwh 1500.0)))
