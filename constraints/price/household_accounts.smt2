; Household accounts (own generator), multi-output regression: an equality on outputs.
; In words: housing, food and everything else (savings included) add up to the household's income exactly;
; none is negative.
(declare-const income Real)
(declare-const housing Real)
(declare-const food Real)
(declare-const other Real)
(assert (= (+ housing food other) income))
(assert (and (>= housing 0.0) (>= food 0.0) (>= other 0.0)))
