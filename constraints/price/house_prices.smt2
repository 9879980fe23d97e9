; House prices (own generator), regression: a polytope over the output and an input, no premise.
; Hold-out problem (added after the method was developed).
; In words: the predicted price is between 1000 and 15000 per square metre of living area.
(declare-const area_m2 Real)
(declare-const price Real)
(assert (and (>= price (* 1000.0 area_m2)) (<= price (* 15000.0 area_m2))))
