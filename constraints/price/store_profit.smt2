; Retail store day (own generator), two-output regression: a relation between the outputs.
; In words: the day's operating profit is never more than 40% of its revenue (the best gross margin);
; revenue is never negative.
(declare-const revenue_eur Real)
(declare-const profit_eur Real)
(assert (<= profit_eur (* 0.4 revenue_eur)))
(assert (>= revenue_eur 0.0))
