; Household budget (own generator), multi-output regression: output relations.
; In words: predicted housing + food + leisure never exceed the household's income; food is at least
; 30% of leisure; no predicted spending is negative.
(declare-const income Real)
(declare-const housing Real)
(declare-const food Real)
(declare-const leisure Real)
(assert (<= (+ housing food leisure) income))
(assert (>= food (* 0.3 leisure)))
(assert (and (>= housing 0.0) (>= food 0.0) (>= leisure 0.0)))
