; Friedman #1 (scikit-learn's make_friedman1), regression: an output range everywhere plus premise -> bound.
; In words: y = 10 sin(pi x1 x2) + 20 (x3 - 0.5)^2 + 10 x4 + 5 x5 lies in [0, 30], so predictions must
; too; and with x4 >= 0.9 the term 10 x4 alone gives at least 9, so y is at least 8.
(declare-const x4 Real)
(declare-const y Real)
(assert (and (>= y 0.0) (<= y 30.0)))
(assert (=> (>= x4 0.9) (>= y 8.0)))
