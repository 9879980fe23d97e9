; Advised speed (own generator), regression: a cap chosen by a 0/1 column, one assert per value.
; In words: at most 50 km/h in town, at most 130 km/h elsewhere, never negative.
(declare-const urban Real)
(declare-const advised_speed Real)
(assert (=> (= urban 1.0) (<= advised_speed 50.0)))
(assert (=> (= urban 0.0) (<= advised_speed 130.0)))
(assert (>= advised_speed 0.0))
