; Regulated prices (own generator), regression: an equality behind a one-hot premise.
; In words: in a regulated market the price is the cost plus 10%; the price is never below the cost.
(declare-const cost_eur Real)
(declare-const |market=regulated| Real)
(declare-const price_eur Real)
(assert (=> (= |market=regulated| 1.0) (= price_eur (* 1.1 cost_eur))))
(assert (>= price_eur cost_eur))
