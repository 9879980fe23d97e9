; Loan affordability (own generator), binary: a premise coupling three inputs linearly -> class.
; Hold-out problem (added after the method was developed).
; In words: if existing monthly debt plus the new instalment exceed 60% of monthly income, the loan
; is never approved. The target approved is one score, positive = yes.
(declare-const monthly_income Real)
(declare-const monthly_debt Real)
(declare-const instalment Real)
(declare-const approved Real)
(assert (=> (> (+ monthly_debt instalment) (* 0.6 monthly_income)) (< approved 0.0)))
