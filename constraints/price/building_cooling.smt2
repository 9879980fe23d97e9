; Building cooling load (own generator), regression: a premise coupling two inputs linearly -> bound.
; Hold-out problem (added after the method was developed).
; In words: when it is more than 8 degrees warmer outside than the setpoint, the cooling load is at
; least 5 kW; the cooling load is never negative.
(declare-const outdoor_temp_c Real)
(declare-const setpoint_c Real)
(declare-const cooling_kw Real)
(assert (=> (> (- outdoor_temp_c setpoint_c) 8.0) (>= cooling_kw 5.0)))
(assert (>= cooling_kw 0.0))
