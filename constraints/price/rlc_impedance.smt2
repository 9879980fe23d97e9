; RLC circuit impedance (sklearn make_friedman2), regression: premise -> bound.
; In words: |Z| >= R, so with a resistance of 80 ohm or more the impedance is at least 75 ohm;
; and an impedance is never negative.
(declare-const resistance_ohm Real)
(declare-const impedance_ohm Real)
(assert (=> (>= resistance_ohm 80.0) (>= impedance_ohm 75.0)))
(assert (>= impedance_ohm 0.0))
