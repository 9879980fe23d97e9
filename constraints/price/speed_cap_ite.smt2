; Advised speed (own generator), regression: the cap chosen with ite on a 0/1 column, in one assert.
; In words: at most 50 km/h in town, at most 130 km/h elsewhere, never negative.
(declare-const urban Real)
(declare-const advised_speed Real)
(assert (<= advised_speed (ite (= urban 1.0) 50.0 130.0)))
(assert (>= advised_speed 0.0))
