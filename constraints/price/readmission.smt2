; Hospital readmission (own generator), binary: box premise on two inputs -> class.
; In words: a patient aged 75 or more with 4 or more prior admissions is always flagged for readmission.
(declare-const age Real)
(declare-const prior_admissions Real)
(declare-const readmitted Real)
(assert (=> (and (>= age 75.0) (>= prior_admissions 4.0)) (> readmitted 0.0)))
