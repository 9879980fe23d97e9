; Subsidised households (own generator), multi-output regression: an equality behind a premise.
; In words: a subsidised household's rent is 30% of its income; rent and food together never exceed the
; income; food spending is never negative.
(declare-const income Real)
(declare-const subsidised Real)
(declare-const rent Real)
(declare-const food Real)
(assert (=> (>= subsidised 0.5) (= rent (* 0.3 income))))
(assert (<= (+ rent food) income))
(assert (>= food 0.0))
