; Health insurance (own generator), regression: a one-hot premise on a categorical input.
; In words: a smoker's predicted yearly charges are at least 20000. smoker (yes/no) is categorical,
; so the tool one-hot encodes it as |smoker=yes| and |smoker=no|.
(declare-const |smoker=yes| Real)
(declare-const charges Real)
(assert (=> (= |smoker=yes| 1.0) (>= charges 20000.0)))
