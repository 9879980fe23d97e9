; Customer tiers (own generator), multiclass: a disjunctive premise of single-input bounds -> class
; exclusion. Hold-out problem (added after the method was developed).
; In words: a customer who is under 21, or whose account is less than 3 months old, is never offered
; the premium tier (basic or plus scores above premium).
(declare-const age Real)
(declare-const tenure_months Real)
(declare-const |tier=basic| Real)
(declare-const |tier=plus| Real)
(declare-const |tier=premium| Real)
(assert (=> (or (< age 21.0) (< tenure_months 3.0))
            (or (> |tier=basic| |tier=premium|) (> |tier=plus| |tier=premium|))))
