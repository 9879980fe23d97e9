; Energy parts (own generator), multi-output regression: an equality on outputs whose smallest part is the
; last target listed. In words: heating, cooling and everything else add up to the metered total exactly;
; none is negative.
(declare-const total_kwh Real)
(declare-const heating_kwh Real)
(declare-const cooling_kwh Real)
(declare-const other_kwh Real)
(assert (= (+ heating_kwh cooling_kwh other_kwh) total_kwh))
(assert (and (>= heating_kwh 0.0) (>= cooling_kwh 0.0) (>= other_kwh 0.0)))
