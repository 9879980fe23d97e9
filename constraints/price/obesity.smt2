; Metabolic-risk screening (own generator), binary: a premise that couples inputs non-linearly.
; In words: a BMI of 35 or more (weight >= 35 x height^2) is always high risk. The target risk is one
; score, positive = high. Non-linear premise: only the general path (CEGIS) can take it.
(declare-const height_m Real)
(declare-const weight_kg Real)
(declare-const risk Real)
(assert (=> (>= weight_kg (* 35.0 height_m height_m)) (> risk 0.0)))
