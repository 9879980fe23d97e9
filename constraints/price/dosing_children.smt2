; Paediatric paracetamol dosing (own generator), regression: the dose in mg per kg of body weight.
; In words: a child under 12 never gets more than 700 mg in one dose (the dose per kg times the weight).
; The product of an input and the output under a premise: DeepSaDe's general path takes it
; (the sequential clamps take such a product only in an assert without a premise).
(declare-const age_years Real)
(declare-const weight_kg Real)
(declare-const dose_mg_per_kg Real)
(assert (=> (< age_years 12.0) (<= (* weight_kg dose_mg_per_kg) 700.0)))
