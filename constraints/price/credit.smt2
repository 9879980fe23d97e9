; Loan applications (own generator), binary: a premise on a thin slab at the domain's edge.
; In words: an applicant with a credit score below 310 is never approved. Credit scores range over
; 300-850 (the domain box is set to that range), so the premise is the lowest 1.8% of the range.
; The target approved is one score, positive = yes.
(declare-const credit_score Real)
(declare-const approved Real)
(assert (=> (< credit_score 310.0) (< approved 0.0)))
