; Diabetes (scikit-learn's load_diabetes, raw units), regression: premise -> bound.
; In words: a patient with BMI of 32 or more and blood pressure of 100 or more is predicted a
; disease progression of at least 100.
(declare-const bmi Real)
(declare-const blood_pressure Real)
(declare-const progression Real)
(assert (=> (and (>= bmi 32.0) (>= blood_pressure 100.0)) (>= progression 100.0)))
