; Example: a bounded regression output (goes with usecases.toy, case TOY_REG).
; In words: the predicted y is never negative and never larger than the input x1.
; Columns assumed: input x1 (the data's raw units) and the regression target y.
; Try it: a CSV with columns x1, x2, x3, y from usecases.toy.generate_regression().

(declare-const x1 Real)
(declare-const y Real)

(assert (and (>= y 0.0) (<= y x1)))
