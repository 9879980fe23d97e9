; Paediatric paracetamol dosing (own generator), regression: a product of an input and an output.
; In words: the predicted dose per kg times the body weight never exceeds 1000 mg (the single-dose
; maximum), and the dose is never negative. Non-linear: only the general path (CEGIS) can take it.
(declare-const weight_kg Real)
(declare-const dose_mg_per_kg Real)
(assert (<= (* weight_kg dose_mg_per_kg) 1000.0))
(assert (>= dose_mg_per_kg 0.0))
